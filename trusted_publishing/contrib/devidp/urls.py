"""The development identity provider's URLs. Importing this module while DEBUG is off raises
``ImproperlyConfigured``: a production URLconf that includes it fails at start-up instead of
serving a token mint for any repository."""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import path

from . import views

if not settings.DEBUG:
    raise ImproperlyConfigured(
        "trusted_publishing.contrib.devidp.urls is included while DEBUG is off. The development "
        "identity provider signs identity tokens for any repository: include its URLs only "
        "under `if settings.DEBUG:` and never install it in production."
    )

app_name = "devidp"

urlpatterns = [
    # GitHub Actions: the issuer is the mount point itself (e.g. https://host/_dev/idp).
    path("", views.about, name="about"),
    path(".well-known/openid-configuration", views.discovery, name="discovery"),
    path(".well-known/jwks", views.jwks, name="jwks"),
    path("token", views.token, name="token"),
    # GitLab CI/CD: a second issuer one level down (e.g. https://host/_dev/idp/gitlab).
    path("gitlab", views.gitlab_about, name="gitlab-about"),
    path(
        "gitlab/.well-known/openid-configuration",
        views.gitlab_discovery,
        name="gitlab-discovery",
    ),
    path("gitlab/.well-known/jwks", views.jwks, name="gitlab-jwks"),
    path("gitlab/token", views.gitlab_token, name="gitlab-token"),
]
