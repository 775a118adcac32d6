"""A development OIDC identity provider that plays a GitHub Actions or GitLab CI job (DEBUG only).

Add ``"trusted_publishing.contrib.devidp"`` to ``INSTALLED_APPS`` and mount its URLs in DEBUG::

    if settings.DEBUG:
        urlpatterns.append(path("_dev/idp/", include("trusted_publishing.contrib.devidp.urls")))

Never in production: its system check (``trusted_publishing.devidp.E001``) is an error whenever
DEBUG is off, importing its URLconf while DEBUG is off raises ``ImproperlyConfigured``, and its
views answer 404 without DEBUG. See docs/testing.md.
"""
