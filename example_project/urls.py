from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # /.well-known/pytp, /_/oidc/audience, /_/oidc/mint-token, /_/oidc/burn-token, ...
    path("", include("trusted_publishing.urls")),
    # /legacy/, /simple/, /files/
    path("", include("example_project.index.urls")),
]

# The development identity provider only exists in DEBUG (its URLconf refuses to load otherwise).
if settings.DEBUG and "trusted_publishing.contrib.devidp" in settings.INSTALLED_APPS:
    urlpatterns.append(path("_dev/idp/", include("trusted_publishing.contrib.devidp.urls")))
