"""Optional parts of django-trusted-publishing, shipped in the wheel but never loaded by default.

* :mod:`trusted_publishing.contrib.devidp`: a development OIDC identity provider that plays a
  GitHub Actions or GitLab CI job, for trying Trusted Publishing locally (DEBUG only).
* :mod:`trusted_publishing.contrib.pytest_plugin`: pytest fixtures that give an index's own tests
  a trusted issuer, publishers and signed identity tokens (registered through the ``pytest11``
  entry point, so installing the package is enough).
"""
