from django.urls import path

from . import legacy, simple

app_name = "index"

urlpatterns = [
    path("", simple.home, name="home"),
    path("legacy/", legacy.upload, name="upload"),
    path("simple/", simple.simple_root, name="simple-root"),
    path("simple/<str:project>/", simple.simple_project, name="simple-project"),
    path("files/<str:project>/<str:filename>", simple.download, name="file"),
]
