"""Seed the issuer allowlist with the public providers PyPI trusts."""

from django.db import migrations

SEED = [
    ("https://token.actions.githubusercontent.com", "github", "GitHub Actions"),
    ("https://gitlab.com", "gitlab", "GitLab.com"),
    ("https://accounts.google.com", "google", "Google Cloud"),
    ("https://platform.activestate.com/api/v1/oauth/oidc", "activestate", "ActiveState"),
]


def seed(apps, schema_editor):
    TrustedIssuer = apps.get_model("trusted_publishing", "TrustedIssuer")
    for url, provider, name in SEED:
        TrustedIssuer.objects.get_or_create(
            url=url,
            defaults={"provider": provider, "name": name, "key_source": "discovery",
                      "algorithms": ["RS256"], "enabled": True},
        )


def unseed(apps, schema_editor):
    TrustedIssuer = apps.get_model("trusted_publishing", "TrustedIssuer")
    TrustedIssuer.objects.filter(url__in=[s[0] for s in SEED], publishers__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("trusted_publishing", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
