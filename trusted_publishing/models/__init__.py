from .events import AuditEvent
from .issuers import KeySource, Provider, TrustedIssuer
from .projects import CreatedProject
from .publishers import (
    ActiveStatePublisher,
    GitHubPublisher,
    GitLabPublisher,
    GooglePublisher,
    Publisher,
    PublisherProject,
)
from .replay import UsedIdentityToken
from .tokens import IssuedToken

__all__ = [
    "ActiveStatePublisher",
    "AuditEvent",
    "CreatedProject",
    "GitHubPublisher",
    "GitLabPublisher",
    "GooglePublisher",
    "IssuedToken",
    "KeySource",
    "Provider",
    "Publisher",
    "PublisherProject",
    "TrustedIssuer",
    "UsedIdentityToken",
]
