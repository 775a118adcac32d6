"""Mount at the site root: clients derive ``https://<host>/_/oidc/...`` from the upload URL, and
PEP 807 discovery lives under ``/.well-known/``.

    path("", include("trusted_publishing.urls"))
"""

from django.urls import path

from . import openapi, views

app_name = "trusted_publishing"

urlpatterns = [
    path(".well-known/pytp", views.DiscoveryView.as_view(), name="discovery"),
    path("_/oidc/audience", views.AudienceView.as_view(), name="audience"),
    path("_/oidc/mint-token", views.MintTokenView.as_view(), name="mint-token"),
    # PyPI's original route, still used by maturin and old gh-action-pypi-publish / pdm.
    path("_/oidc/github/mint-token", views.MintTokenView.as_view(), name="github-mint-token"),
    path("_/oidc/burn-token", views.BurnTokenView.as_view(), name="burn-token"),
    path("_/oidc/openapi.json", openapi.OpenAPIView.as_view(), name="openapi"),
]
