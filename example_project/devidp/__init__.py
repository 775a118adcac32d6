"""A development OIDC identity provider that plays a GitHub Actions job (DEBUG only).

Never install it in production: its system check (devidp.E001) is an error whenever DEBUG is off,
its URLs are only mounted in DEBUG, and its views answer 404 without DEBUG.
"""
