from django.urls import path

from . import legacy, simple

app_name = "index"

urlpatterns = [
    path("", simple.home, name="home"),
    path("legacy/", legacy.upload, name="upload"),
    path("simple/", simple.simple_root, name="simple-root"),
    path("simple/<str:project>/", simple.simple_project, name="simple-project"),
    # hatch publish looks for existing files at <upload URL>/+simple/<project>/ (devpi's layout)
    # on any index but pypi.org: serving it there makes a re-run hatch job skip them.
    path("legacy/+simple/<str:project>/", simple.simple_project),
    path("files/<str:project>/<str:filename>", simple.download, name="file"),
]
