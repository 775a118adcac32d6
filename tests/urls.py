from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("trusted_publishing.urls")),
    path("", include("example_project.index.urls")),  # /legacy/, /simple/, /files/
]
