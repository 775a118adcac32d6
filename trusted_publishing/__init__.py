"""PyPI-style Trusted Publishing (PEP 807) for Django-based Python package indexes."""

__version__ = "0.1.0"
