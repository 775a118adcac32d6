"""A small private package index built on django-trusted-publishing (see docs/example-index.md)."""
