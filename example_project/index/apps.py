from django.apps import AppConfig


class IndexConfig(AppConfig):
    name = "example_project.index"
    label = "index"
    verbose_name = "Package index"
    default_auto_field = "django.db.models.BigAutoField"
