"""Signals for integrators: side effects only (notifications, metrics), never policy.

Each is sent after the database work it reports has committed.
"""

from django.dispatch import Signal

#: kwargs: token (IssuedToken), publisher (Publisher), claims (dict, non-secret), request
token_minted = Signal()
#: kwargs: code (str), description (str), issuer_url (str), claims (dict, non-secret), request
exchange_failed = Signal()
#: kwargs: principal (PublisherPrincipal), project (str, normalised), request
upload_authorised = Signal()
#: kwargs: principal (PublisherPrincipal | None), project (str), reason (str), request
upload_denied = Signal()
#: kwargs: token (IssuedToken), actor (str), reason (str)
token_revoked = Signal()
#: kwargs: publisher (Publisher), projects (list[str])
publisher_reified = Signal()
