"""Django admin screens: the operator UI for issuers, publishers, issued tokens and the audit trail.

Everything is registered on ``django.contrib.admin.site`` when the admin autodiscovers this
module. A host that wants its own screens calls :func:`unregister` (then registers its own
subclasses), or :func:`register` to put these on another ``AdminSite``.

Rules kept here:

* no page shows a minted token, an identity token or even a token's digest;
* issued tokens and audit events are view-only; revoking needs the
  ``trusted_publishing.revoke_issuedtoken`` permission;
* list pages do a fixed number of queries whatever the row count (counts are subqueries,
  projects are prefetched, big lists skip the full count).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.widgets import RelatedFieldWidgetWrapper
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .errors import ErrorCode
from .forms import PublisherProjectForm, PublisherProjectFormSet, TrustedIssuerForm
from .models import AuditEvent, IssuedToken, Publisher, PublisherProject, TrustedIssuer
from .providers import PROVIDERS, Column, ProviderSpec, publisher_relations

REVOKE_PERMISSION = "trusted_publishing.revoke_issuedtoken"


# --- shared helpers -----------------------------------------------------------------------------
def live_tokens_q(prefix: str = "") -> Q:
    """``IssuedToken.objects.live()`` as a Q, usable through a relation prefix."""
    now = timezone.now()
    return Q(**{f"{prefix}revoked_at__isnull": True, f"{prefix}expires_at__gt": now}) & ~Q(
        **{f"{prefix}single_use": True, f"{prefix}used_at__isnull": False}
    )


def live_token_count_subquery() -> Coalesce:
    """Per-publisher live token count as a correlated subquery (evaluated for the page only)."""
    counts = (
        IssuedToken.objects.filter(live_tokens_q(), publisher=OuterRef("pk"))
        .order_by()
        .values("publisher")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts, output_field=IntegerField()), Value(0))


def publisher_state(publisher: Publisher) -> str:
    """One line saying what the publisher does right now."""
    if not publisher.enabled:
        return str(_("disabled"))
    if publisher.pending_expires_at is not None:
        names = ", ".join(publisher.project_names()) or "?"
        if publisher.pending_expired:
            return str(_("pending — expired unused on %(date)s")) % {
                "date": f"{publisher.pending_expires_at:%Y-%m-%d}"
            }
        return str(_("pending — creates project %(names)s on first publish (until %(date)s)")) % {
            "names": names,
            "date": f"{publisher.pending_expires_at:%Y-%m-%d}",
        }
    return str(_("active"))


def _admin_url(obj: Any, view: str = "change") -> str | None:
    opts = obj._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[obj.pk])
    except NoReverseMatch:
        return None


def claims_table(claims: dict[str, Any] | None) -> str:
    """Non-secret claims as a two-column table (values JSON-encoded when not plain strings)."""
    if not claims:
        return "—"
    rows = (
        (key, value if isinstance(value, str) else json.dumps(value, sort_keys=True))
        for key, value in sorted(claims.items())
    )
    return format_html(
        '<table class="tp-claims"><tbody>{}</tbody></table>',
        format_html_join("", "<tr><th>{}</th><td><code>{}</code></td></tr>", rows),
    )


class ProjectNameFilter(admin.SimpleListFilter):
    """A free-text filter (a select with thousands of project names would be useless)."""

    title = _("project")
    parameter_name = "project"
    template = "admin/trusted_publishing/text_filter.html"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # Non-empty so the filter is shown; the template renders an input instead.
        return [("", "")]

    def has_output(self) -> bool:
        return True

    def choices(self, changelist: Any) -> Iterable[dict[str, Any]]:
        yield {
            "value": self.value() or "",
            "parameter_name": self.parameter_name,
            "hidden": [
                (k, v)
                for k, v in changelist.get_filters_params().items()
                if k != self.parameter_name
                for v in (v if isinstance(v, list) else [v])
            ],
            "clear_url": changelist.get_query_string(remove=[self.parameter_name]),
        }

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        from .names import normalize_project_name

        value = (self.value() or "").strip()
        if not value:
            return queryset
        return self.filter_project(queryset, normalize_project_name(value))

    def filter_project(self, queryset: QuerySet, name: str) -> QuerySet:
        raise NotImplementedError


# --- issuers ------------------------------------------------------------------------------------
class TrustedIssuerAdmin(admin.ModelAdmin):
    form = TrustedIssuerForm
    list_display = [
        "url",
        "name",
        "provider",
        "key_source",
        "enabled",
        "publisher_count",
        "updated_at",
    ]
    list_filter = ["provider", "key_source", "enabled"]
    search_fields = ["url", "name"]
    readonly_fields = ["created_at", "updated_at", "key_ids"]
    fieldsets = [
        (None, {"fields": ["url", "provider", "name", "enabled"]}),
        (
            _("Signing keys"),
            {
                "fields": ["key_source", "static_jwks", "key_ids"],
                "description": _(
                    "Discovery fetches the keys from the issuer's "
                    "/.well-known/openid-configuration (and refreshes them on rotation). For an "
                    "issuer this index cannot reach, choose static and paste its public JWKS."
                ),
            },
        ),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["refresh_keys", "enable", "disable"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        publishers = (
            Publisher.objects.filter(issuer=OuterRef("pk"))
            .order_by()
            .values("issuer")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                _publisher_count=Coalesce(
                    Subquery(publishers, output_field=IntegerField()), Value(0)
                )
            )
        )

    @admin.display(description=_("publishers"), ordering="_publisher_count")
    def publisher_count(self, obj: TrustedIssuer) -> int:
        return obj._publisher_count  # type: ignore[attr-defined]

    @admin.display(description=_("static key ids"))
    def key_ids(self, obj: TrustedIssuer) -> str:
        if not obj.static_jwks:
            return "—"
        kids = [k.get("kid", "?") for k in obj.static_jwks.get("keys", []) if isinstance(k, dict)]
        return ", ".join(kids) or "—"

    @admin.action(description=_("Refresh keys now"), permissions=["change"])
    def refresh_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        from .errors import IssuerUnavailable
        from .keys import refresh_issuer_keys

        for issuer in queryset:
            try:
                kids = refresh_issuer_keys(issuer)
            except IssuerUnavailable as exc:
                self.message_user(
                    request,
                    _("Keys of %(issuer)s could not be refreshed: %(reason)s")
                    % {"issuer": issuer.url, "reason": exc},
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request,
                    _("Keys of %(issuer)s refreshed: %(n)d key(s) found: %(kids)s")
                    % {"issuer": issuer.url, "n": len(kids), "kids": ", ".join(kids) or "none"},
                    messages.SUCCESS,
                )

    @admin.action(description=_("Enable selected issuers"), permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet) -> None:
        _set_enabled(self, request, queryset, True)

    @admin.action(description=_("Disable selected issuers"), permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        _set_enabled(self, request, queryset, False)


def _set_enabled(
    model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, enabled: bool
) -> None:
    # Save row by row so the post_save receivers drop cached issuer/token entries.
    changed = 0
    for obj in queryset:
        if obj.enabled != enabled:
            obj.enabled = enabled
            obj.save(update_fields=["enabled"])
            model_admin.log_change(request, obj, "Enabled" if enabled else "Disabled")
            changed += 1
    word = _("enabled") if enabled else _("disabled")
    model_admin.message_user(
        request,
        _("%(n)d %(what)s %(word)s.")
        % {"n": changed, "what": model_admin.opts.verbose_name_plural, "word": word},
        messages.SUCCESS,
    )


# --- publishers ---------------------------------------------------------------------------------
class PublisherProjectInline(admin.TabularInline):
    model = PublisherProject
    form = PublisherProjectForm
    formset = PublisherProjectFormSet
    fields = ["name"]
    extra = 1
    verbose_name = _("project")
    verbose_name_plural = _("projects this publisher may upload to")


class PublisherStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("active", _("active")),
            ("pending", _("pending")),
            ("pending-expired", _("pending, expired")),
            ("disabled", _("disabled")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        match self.value():
            case "active":
                return queryset.filter(enabled=True, pending_expires_at__isnull=True)
            case "pending":
                return queryset.filter(enabled=True, pending_expires_at__gt=now)
            case "pending-expired":
                return queryset.filter(pending_expires_at__lte=now)
            case "disabled":
                return queryset.filter(enabled=False)
        return queryset


class PublisherProjectFilter(ProjectNameFilter):
    def filter_project(self, queryset: QuerySet, name: str) -> QuerySet:
        return queryset.filter(
            pk__in=PublisherProject.objects.filter(name=name).values("publisher_id")
        )


class PublisherAdminBase(admin.ModelAdmin):
    """Behaviour shared by the per-provider screens and the overview of all publishers."""

    list_filter = [
        PublisherStateFilter,
        PublisherProjectFilter,
        ("issuer", admin.RelatedOnlyFieldListFilter),  # only issuers these publishers use
    ]
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts scan the whole table
    actions = ["enable", "disable", "delete_selected"]
    delete_confirmation_template = "admin/trusted_publishing/publisher_delete_confirmation.html"
    delete_selected_confirmation_template = (
        "admin/trusted_publishing/publisher_delete_selected_confirmation.html"
    )
    history_readonly = ["state", "live_token_count", "created_at", "created_by", "last_used_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("issuer")
            .prefetch_related("projects")
            .annotate(_live_tokens=live_token_count_subquery())
        )

    @admin.display(description=_("projects"))
    def projects_list(self, obj: Publisher) -> str:
        return ", ".join(obj.project_names()) or "—"

    @admin.display(description=_("state"))
    def state(self, obj: Publisher) -> str:
        return publisher_state(obj)

    @admin.display(description=_("live tokens"), ordering="_live_tokens")
    def live_token_count(self, obj: Publisher) -> int:
        count = getattr(obj, "_live_tokens", None)
        if count is None:  # a freshly created object on the change page
            count = IssuedToken.objects.filter(publisher=obj).live().count() if obj.pk else 0
        return count

    @admin.display(description=_("issuer"), ordering="issuer__url")
    def issuer_name(self, obj: Publisher) -> str:
        return str(obj.issuer)

    @admin.action(description=_("Enable selected publishers"), permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet) -> None:
        _set_enabled(self, request, queryset, True)

    @admin.action(
        description=_("Disable selected publishers (their tokens stop working)"),
        permissions=["change"],
    )
    def disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        _set_enabled(self, request, queryset, False)

    @admin.action(description=_("Delete selected publishers"), permissions=["delete"])
    def delete_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        response = django_delete_selected(self, request, queryset)
        if isinstance(response, TemplateResponse) and response.context_data is not None:
            response.context_data["live_tokens"] = (
                IssuedToken.objects.filter(publisher__in=queryset.values("pk")).live().count()
            )
        return response

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, ...]:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Tokens go with their publisher: no separate delete permission on them is needed
        # (the token admin never deletes, so it would otherwise block every deletion).
        token_name = str(IssuedToken._meta.verbose_name)
        perms_needed = {name for name in perms_needed if str(name) != token_name}
        return deleted, counts, perms_needed, protected

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        try:
            pk = int(object_id)
        except (TypeError, ValueError):
            pk = None
        if pk is not None:
            extra_context["live_tokens"] = (
                IssuedToken.objects.filter(publisher_id=pk).live().count()
            )
        return super().delete_view(request, object_id, extra_context)


class ProviderPublisherAdmin(PublisherAdminBase):
    """Base of the per-provider screens (form, inline projects, bound ids); see
    :func:`provider_admin`."""

    inlines = [PublisherProjectInline]
    identity_fields: list[str] = []
    bound_fields: list[str] = []

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        sets: list[Any] = [
            (None, {"fields": ["issuer", *self.identity_fields]}),
            (_("State"), {"fields": ["enabled", "pending", *(["state"] if obj else [])]}),
        ]
        if obj is not None:
            if self.bound_fields:
                sets.append(
                    (
                        _("Bound on first publish"),
                        {
                            "fields": self.bound_fields,
                            "description": _(
                                "Immutable ids taken from the first successful exchange; a "
                                "deleted and re-created account or repository with the same "
                                "name cannot publish."
                            ),
                        },
                    )
                )
            sets.append(
                (
                    _("History"),
                    {"fields": ["live_token_count", "created_at", "created_by", "last_used_at"]},
                )
            )
        return sets

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "issuer" and isinstance(formfield.widget, RelatedFieldWidgetWrapper):
            # Deleting an issuer from here would be a trap (it is protected anyway).
            formfield.widget.can_delete_related = False
        return formfield

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*self.bound_fields, *self.history_readonly]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change and request.user.is_authenticated:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


#: Columns every provider's changelist ends with.
PROVIDER_LIST_TAIL = ["projects_list", "state", "last_used_at", "live_token_count"]


def _column(column: Column) -> Any:
    """A changelist column showing a model property (e.g. a repository's owner/name)."""

    @admin.display(description=column.description, ordering=column.ordering)
    def show(self: admin.ModelAdmin, obj: Publisher) -> Any:
        return getattr(obj, column.name)

    show.__name__ = column.name
    return show


def provider_admin(provider: ProviderSpec) -> type[ProviderPublisherAdmin]:
    """The admin screen of one provider, built from its registry entry."""
    columns = [c.name if isinstance(c, Column) else c for c in provider.admin_columns]
    displays = {c.name: _column(c) for c in provider.admin_columns if isinstance(c, Column)}
    attrs: dict[str, Any] = {
        "__module__": __name__,
        "form": provider.form,
        "identity_fields": list(provider.identity_fields),
        "bound_fields": list(provider.bound_fields),
        "list_display": [*columns, *PROVIDER_LIST_TAIL],
        "search_fields": ["subject", *provider.admin_search, "projects__name"],
        **displays,
    }
    return type(f"{provider.model.__name__}Admin", (ProviderPublisherAdmin,), attrs)


class PublisherAdmin(PublisherAdminBase):
    """Overview of every publisher; editing happens on the provider's own screen."""

    list_display = [
        "id",
        "description",
        "provider",
        "issuer_name",
        "projects_list",
        "state",
        "last_used_at",
        "live_token_count",
    ]
    list_display_links = None
    list_filter = ["provider", *PublisherAdminBase.list_filter]
    search_fields = ["subject", "projects__name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The child rows come in the same query, so describing a row costs nothing extra.
        return super().get_queryset(request).select_related(*publisher_relations())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description=_("publisher"), ordering="subject")
    def description(self, obj: Publisher) -> str:
        specific = obj.specific
        url = _admin_url(specific) if specific is not obj else None
        text = specific.describe() if specific is not obj else str(obj)
        return format_html('<a href="{}">{}</a>', url, text) if url else text

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is not None:
            specific = obj.specific
            url = _admin_url(specific) if specific is not obj else None
            if url:
                return HttpResponseRedirect(url)
        return super().change_view(request, object_id, form_url, extra_context)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The overview's edit form would bypass the provider's validation: view only here
        # (the enable/disable actions check the per-model change permission themselves).
        return False

    def has_enable_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("trusted_publishing.change_publisher")

    @admin.action(description=_("Enable selected publishers"), permissions=["enable"])
    def enable(self, request: HttpRequest, queryset: QuerySet) -> None:
        _set_enabled(self, request, queryset, True)

    @admin.action(
        description=_("Disable selected publishers (their tokens stop working)"),
        permissions=["enable"],
    )
    def disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        _set_enabled(self, request, queryset, False)


# --- issued tokens ------------------------------------------------------------------------------
class ReadOnlyAdminMixin:
    """Records written only by the app itself (tokens, audit trail): view permission only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TokenStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("live", _("live")),
            ("used", _("used (single use)")),
            ("expired", _("expired")),
            ("revoked", _("revoked")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        used = Q(single_use=True, used_at__isnull=False)
        match self.value():
            case "live":
                return queryset.filter(live_tokens_q())
            case "revoked":
                return queryset.filter(revoked_at__isnull=False)
            case "used":
                return queryset.filter(used, revoked_at__isnull=True)
            case "expired":
                return queryset.filter(revoked_at__isnull=True, expires_at__lte=now).exclude(used)
        return queryset


class TokenProjectFilter(ProjectNameFilter):
    def filter_project(self, queryset: QuerySet, name: str) -> QuerySet:
        # ``projects`` is a JSON list of normalised names: match the quoted element.
        return queryset.filter(projects__icontains=json.dumps(name))


class IssuedTokenAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Minted upload tokens, without any secret (not even the digest). View and revoke only."""

    list_display = [
        "id",
        "publisher_link",
        "subject",
        "projects_list",
        "state",
        "created_at",
        "expires_at",
        "upload_count",
        "run_id",
    ]
    list_display_links = ["id"]
    list_filter = [
        TokenStateFilter,
        ("publisher__provider", admin.ChoicesFieldListFilter),
        TokenProjectFilter,
        "single_use",
    ]
    search_fields = ["subject", "=run_id"]
    search_help_text = _("Repository / project path / e-mail, or an exact CI run id.")
    list_select_related = ["publisher"]
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts scan the whole table
    date_hierarchy = "created_at"
    actions = ["revoke"]
    fields = [
        "publisher_link",
        "provider",
        "state",
        "projects_list",
        "single_use",
        "created_at",
        "expires_at",
        "used_at",
        "last_used_at",
        "upload_count",
        "revoked_at",
        "revoked_reason",
        "issuer_url",
        "subject",
        "run_id",
        "claims_display",
        "events_link",
    ]
    readonly_fields = fields

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVOKE_PERMISSION)

    @admin.display(description=_("publisher"), ordering="publisher_id")
    def publisher_link(self, obj: IssuedToken) -> str:
        url = reverse("admin:trusted_publishing_publisher_changelist") + f"?id={obj.publisher_id}"
        return format_html('<a href="{}">#{}</a>', url, obj.publisher_id)

    @admin.display(description=_("provider"), ordering="publisher__provider")
    def provider(self, obj: IssuedToken) -> str:
        return obj.publisher.get_provider_display()

    @admin.display(description=_("projects"))
    def projects_list(self, obj: IssuedToken) -> str:
        return ", ".join(obj.projects or []) or "—"

    @admin.display(description=_("state"))
    def state(self, obj: IssuedToken) -> str:
        return obj.state

    @admin.display(description=_("claims at mint time"))
    def claims_display(self, obj: IssuedToken) -> str:
        return claims_table(obj.claims)

    @admin.display(description=_("audit trail"))
    def events_link(self, obj: IssuedToken) -> str:
        url = reverse("admin:trusted_publishing_auditevent_changelist") + f"?token={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, _("events for this token"))

    @admin.action(description=_("Revoke selected tokens"), permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        from .exchange import revoke_token

        actor = request.user.get_username()
        revoked = skipped = 0
        for token in queryset.select_related("publisher"):
            if token.state != "live":
                skipped += 1
                continue
            if revoke_token(token, actor=actor, reason="revoked in admin"):
                revoked += 1
            else:
                skipped += 1
        self.message_user(
            request,
            ngettext("%(n)d token revoked.", "%(n)d tokens revoked.", revoked) % {"n": revoked},
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(n)d token was not live and was left as it is.",
                    "%(n)d tokens were not live and were left as they are.",
                    skipped,
                )
                % {"n": skipped},
                messages.WARNING,
            )


# --- audit events -------------------------------------------------------------------------------
class ErrorCodeFilter(admin.SimpleListFilter):
    """Error codes from the fixed list (no DISTINCT scan over the whole table)."""

    title = _("error code")
    parameter_name = "error_code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        codes = [code.value for code in ErrorCode] + ["upload-denied"]
        return [(code, code) for code in codes]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(error_code=self.value())
        return queryset


class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "kind",
        "outcome",
        "error_code",
        "publisher_label",
        "projects_list",
        "issuer_url",
        "remote_addr",
        "actor",
    ]
    list_filter = ["kind", "outcome", ErrorCodeFilter]
    search_fields = ["publisher_label", "=issuer_url", "=actor"]
    search_help_text = _("Publisher (e.g. a repository), exact issuer URL or actor.")
    date_hierarchy = "created_at"
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts scan the whole table
    fields = [
        "created_at",
        "kind",
        "outcome",
        "error_code",
        "message",
        "publisher_link",
        "publisher_label",
        "token_link",
        "projects_list",
        "issuer_url",
        "remote_addr",
        "actor",
        "claims_display",
    ]
    readonly_fields = fields

    @admin.display(description=_("projects"))
    def projects_list(self, obj: AuditEvent) -> str:
        return ", ".join(obj.projects or []) or "—"

    @admin.display(description=_("claims (non-secret)"))
    def claims_display(self, obj: AuditEvent) -> str:
        return claims_table(obj.claims)

    @admin.display(description=_("publisher"))
    def publisher_link(self, obj: AuditEvent) -> str:
        if obj.publisher_id is None:
            return "—"
        url = reverse("admin:trusted_publishing_publisher_changelist") + f"?id={obj.publisher_id}"
        return format_html('<a href="{}">#{}</a>', url, obj.publisher_id)

    @admin.display(description=_("token"))
    def token_link(self, obj: AuditEvent) -> str:
        if obj.token_id is None:
            return "—"
        url = reverse("admin:trusted_publishing_issuedtoken_change", args=[obj.token_id])
        return format_html('<a href="{}">#{}</a>', url, obj.token_id)


# --- registration -------------------------------------------------------------------------------
ADMIN_CLASSES: dict[type, type[admin.ModelAdmin]] = {
    TrustedIssuer: TrustedIssuerAdmin,
    Publisher: PublisherAdmin,
    **{provider.model: provider_admin(provider) for provider in PROVIDERS.values()},
    IssuedToken: IssuedTokenAdmin,
    AuditEvent: AuditEventAdmin,
}


def register(site: admin.AdminSite | None = None) -> None:
    """Register the screens on ``site`` (default: the project's admin site)."""
    site = site or admin.site
    for model, admin_class in ADMIN_CLASSES.items():
        if not site.is_registered(model):
            site.register(model, admin_class)


def unregister(site: admin.AdminSite | None = None) -> None:
    """Remove the screens from ``site``, e.g. before registering a host's own subclasses."""
    site = site or admin.site
    for model in ADMIN_CLASSES:
        if site.is_registered(model):
            site.unregister(model)


register()
