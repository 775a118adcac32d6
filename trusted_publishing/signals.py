"""Signals for integrators: side effects only (notifications, metrics), never policy.

Exchange signals (token_minted, publisher_reified) are sent after the exchange's transaction
commits. upload_authorised / upload_denied are sent from authorize_upload, i.e. inside the host's
upload request and before the host's own transaction (if any) commits. token_revoked and
exchange_failed are sent right after their rows are written.
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
