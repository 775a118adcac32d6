"""The app's endpoints at the site root, as a host index mounts them."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [path("", include("trusted_publishing.urls"))]
