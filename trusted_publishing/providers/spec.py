"""What a provider declares besides its claim rules: one :class:`ProviderSpec` per provider.

The registry (``providers/__init__.py``) collects them; the admin screens, the publisher forms'
defaults, ``manage.py trusted_publishing`` (its options and their mapping to form fields) and the
exchange read everything provider-specific from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..models.publishers import Publisher
from .base import ProviderRules

if TYPE_CHECKING:
    from ..forms import PublisherForm

#: Form fields every publisher form has around the provider's identifying fields.
COMMON_FORM_FIELDS = ("issuer", "enabled")


@dataclass(frozen=True)
class Split:
    """A ``LEFT/RIGHT`` option value that fills two form fields (e.g. owner and repository)."""

    fields: tuple[str, str]
    shape: str  # named in the error message, e.g. "OWNER/REPO"
    example: str  # e.g. "acme/widgets"
    at_last_slash: bool = False  # else at the first one


@dataclass(frozen=True)
class CliOption:
    """An ``add-publisher`` option ``--<name>`` and the form field it fills.

    Providers may share an option (GitHub and GitLab both read ``--repository``): the command
    shows it once, with the providers' help texts joined by "or".
    """

    name: str
    field: str | Split
    help: str | None = None
    required: bool = True

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


#: ``--environment``: the CI deployment environment, optional, for the providers that have one.
ENVIRONMENT_OPTION = CliOption(
    "environment", "environment", help="deployment environment (optional)", required=False
)


@dataclass(frozen=True)
class Column:
    """An admin changelist column shown from a model property (sorted by ``ordering``)."""

    name: str
    description: Any  # a (lazy) string
    ordering: str = "subject"


@dataclass(frozen=True)
class ProviderSpec:
    """Everything provider-specific outside the publisher model.

    * ``rules``: the claim rules; they name the provider id and the publisher model;
    * ``form``: validates the publisher (admin and CLI); its ``Meta.fields`` are ``issuer``, the
      identifying fields in display order, then ``enabled``;
    * ``public_issuers``: issuer URLs preselected for new publishers, first found wins;
    * ``cli_options``: the ``add-publisher`` options, in the order they are checked;
    * ``admin_columns``: the changelist columns before the shared ones (projects, state…);
    * ``admin_search``: fields searched besides the subject and the project names.
    """

    rules: ProviderRules
    form: type[PublisherForm]
    public_issuers: tuple[str, ...]
    cli_options: tuple[CliOption, ...]
    admin_columns: tuple[str | Column, ...]
    admin_search: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.rules.provider

    @property
    def model(self) -> type[Publisher]:
        return self.rules.model

    @property
    def identity_fields(self) -> tuple[str, ...]:
        """The model fields that identify a publisher (the form's, without issuer/enabled)."""
        fields = self.form._meta.fields or ()
        return tuple(f for f in fields if f not in COMMON_FORM_FIELDS)

    @property
    def bound_fields(self) -> tuple[str, ...]:
        """Immutable ids bound on the first exchange (shown read-only)."""
        return self.rules.bound_ids
