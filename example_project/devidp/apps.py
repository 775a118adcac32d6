from django.apps import AppConfig


class DevIdpConfig(AppConfig):
    name = "example_project.devidp"
    label = "devidp"
    verbose_name = "Development identity provider"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system check)
