from django.apps import AppConfig


class DevIdpConfig(AppConfig):
    name = "trusted_publishing.contrib.devidp"
    label = "trusted_publishing_devidp"
    verbose_name = "Development identity provider (DEBUG only)"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
