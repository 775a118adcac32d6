"""The example index: projects, releases and files, the legacy upload API and the Simple API."""
