"""The app's endpoints at the site root, plus two no-op views that show the request floor."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request

from trusted_publishing.views import TrustedPublishingView


@csrf_exempt
def noop_django(request: HttpRequest) -> HttpResponse:
    """Parse the same JSON body as the mint view and answer; no app code at all."""
    json.loads(request.body)
    return JsonResponse({"success": True})


class NoopDRF(TrustedPublishingView):
    """The mint view's base class (DRF APIView, its body reader) doing no work."""

    def post(self, request: Request) -> HttpResponse:
        self.read_json_body(request)
        return JsonResponse({"success": True})


urlpatterns = [
    path("_bench/noop", noop_django),
    path("_bench/noop-drf", NoopDRF.as_view()),
    path("", include("trusted_publishing.urls")),
]
