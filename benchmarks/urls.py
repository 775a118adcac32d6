"""The app's endpoints at the site root, plus two no-op views that show the request floor."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from trusted_publishing.views import TrustedPublishingView


@csrf_exempt
def noop_django(request: HttpRequest) -> HttpResponse:
    """Parse the same JSON body as the mint view and answer; no app code at all."""
    json.loads(request.body)
    return JsonResponse({"success": True})


class NoopView(TrustedPublishingView):
    """The mint view's base class (its dispatch and body reader) doing no work."""

    def post(self, request: HttpRequest) -> HttpResponse:
        self.read_json_body(request)
        return JsonResponse({"success": True})


urlpatterns = [
    path("_bench/noop", noop_django),
    path("_bench/noop-app", NoopView.as_view()),
    path("", include("trusted_publishing.urls")),
]
