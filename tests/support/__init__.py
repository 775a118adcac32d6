"""Test support: a fake identity provider, a real index server, distribution builders, client
environments. Used by tests/e2e (and the outage tests)."""
