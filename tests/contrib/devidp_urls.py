"""URLconf of tests/contrib/test_devidp.py: the index's Trusted Publishing endpoints and the
development identity provider. The devidp URLconf refuses to load without DEBUG, so the tests
use this module only with DEBUG on (the ``devidp`` fixture)."""

from django.urls import include, path

urlpatterns = [
    path("", include("trusted_publishing.urls")),
    path("_dev/idp/", include("trusted_publishing.contrib.devidp.urls")),
]
