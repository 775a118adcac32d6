"""Prebuilt INSERT statements for the rows written on every mint and upload.

``Model.objects.create()`` spends most of its time in Django's save machinery and SQL compiler
(≈ 0.4 ms of CPU per row here), the statement itself a few hundredths of that. The mint writes
three rows and every upload one, so :func:`insert` writes a model instance with an INSERT built
once per (model, database vendor) from the model's ``_meta`` (table and column names only; every
value is a parameter) and still lets each field prepare its own value (``pre_save`` for
``auto_now_add``, ``get_db_prep_save`` for JSON, datetimes, addresses), exactly as the ORM does.

What it does not do: send ``pre_save``/``post_save`` (only used here for rows inserted by
:func:`insert` — the app's receivers ignore new tokens and there are none for replay records or
audit events; the app's own signals are sent by its callers as before). Databases other than
SQLite and PostgreSQL, and models this module was not written for (multi-table inheritance,
database defaults, generated fields), go through ``save(force_insert=True)``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import connections, router, transaction
from django.db.models import NOT_PROVIDED, Model

if TYPE_CHECKING:
    from .models import AuditEvent, Publisher

_RETURNING_VENDORS = {"sqlite", "postgresql"}

M = TypeVar("M", bound=Model)


@functools.cache
def _statement(model: type[Model], vendor: str, alias: str) -> tuple[str, tuple] | None:
    """(SQL, fields) of the INSERT for ``model``, or None when the ORM must do it."""
    if vendor not in _RETURNING_VENDORS:
        return None
    meta = model._meta
    if meta.parents:
        return None
    fields = tuple(f for f in meta.local_concrete_fields if f is not meta.auto_field)
    if any(getattr(f, "generated", False) or f.db_default is not NOT_PROVIDED for f in fields):
        return None
    qn = connections[alias].ops.quote_name
    columns = ", ".join(qn(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    # Only quoted names from model metadata go into the text; values are parameters.
    sql = f"INSERT INTO {qn(meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
    if meta.auto_field is not None:
        # Both vendors return the new id with the statement (no second round trip).
        sql += f" RETURNING {qn(meta.auto_field.column)}"
    return sql, fields


def insert(obj: M) -> M:
    """INSERT a new ``obj`` (as ``obj.save(force_insert=True)``, without model signals)."""
    model = type(obj)
    alias = router.db_for_write(model, instance=obj)
    connection = connections[alias]
    built = _statement(model, connection.vendor, alias)
    if built is None:
        obj.save(force_insert=True, using=alias)
        return obj
    sql, fields = built
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection=connection) for f in fields]
    # As the ORM does: inside an atomic block a failed statement marks it for rollback.
    with transaction.mark_for_rollback_on_error(using=alias), connection.cursor() as cursor:
        cursor.execute(sql, params)
        if model._meta.auto_field is not None:
            new_id = cursor.fetchone()[0]
            setattr(obj, model._meta.auto_field.attname, new_id)
    obj._state.adding = False
    obj._state.db = alias
    return obj


def insert_event(event: AuditEvent) -> AuditEvent:
    """INSERT an audit event, with the NUL stripping its ``save()`` does."""
    event.strip_nul()
    return insert(event)


# --- publisher lookup ---------------------------------------------------------------------------
_ISSUER_SENTINEL = -987_654_321
_SUBJECT_SENTINEL = "\x01tp-subject-sentinel"


@functools.cache
def _candidates_statement(
    model: type[Publisher], vendor: str, alias: str
) -> tuple[str, list[str], list[str], slice, int, int, dict[int, tuple[list, Any]]] | None:
    """The candidate-publisher SELECT, compiled by the ORM once instead of on every mint.

    The statement is exactly the one ``find_publisher`` ran through the ORM (same text, so the
    same plan and row order): the query is compiled once with sentinel values, and each call
    only fills in the three parameters and applies the compiler's own converters (SQLite's
    datetime and boolean parsing, ``from_db_value``) to the selected columns.
    """
    from .models import Publisher, PublisherProject

    if vendor not in _RETURNING_VENDORS or model._meta.parents.keys() != {Publisher}:
        return None
    queryset = (
        PublisherProject.objects.using(alias)
        .filter(
            publisher__issuer_id=_ISSUER_SENTINEL,
            publisher__subject=_SUBJECT_SENTINEL,
            publisher__enabled=True,
        )
        .select_related(f"publisher__{model._meta.model_name}")
    )
    compiler = queryset.query.get_compiler(using=alias)
    sql, params = compiler.as_sql()
    # Where each value goes in the parameter list (refuse anything unexpected).
    slots: list[str] = []
    for param in params:
        if param is True:
            slots.append("enabled")
        elif param == _ISSUER_SENTINEL:
            slots.append("issuer")
        elif param == _SUBJECT_SENTINEL:
            slots.append("subject")
        else:
            return None
    # (PostgreSQL inlines ``enabled = true``; SQLite passes it as a parameter.)
    if sorted(slot for slot in slots if slot != "enabled") != ["issuer", "subject"]:
        return None
    # Selected columns: the project's, then the publisher's, then the provider row's own; the
    # provider instance takes the last two groups (its concrete fields, inherited ones first).
    expressions = [expression for expression, _sql, _alias in compiler.select]
    targets = [getattr(expression, "target", None) for expression in expressions]
    project_fields = list(PublisherProject._meta.concrete_fields)
    child_fields = list(model._meta.concrete_fields)
    if targets != project_fields + child_fields:
        return None
    start = len(project_fields)
    converters = compiler.get_converters(expressions)
    names = [field.attname for field in child_fields]
    ptr_index = start + child_fields.index(model._meta.get_ancestor_link(Publisher))
    name_index = project_fields.index(PublisherProject._meta.get_field("name"))
    return sql, slots, names, slice(start, None), ptr_index, name_index, converters


def publisher_candidates(
    model: type[Publisher], issuer_id: int, subject: str
) -> list[tuple[Publisher, str]] | None:
    """(provider publisher, project name) rows of enabled ``model`` publishers for ``subject``.

    One row per project; publishers without a ``model`` row are left out. None when this
    database needs the ORM (the caller then runs the queryset).
    """
    from .models import PublisherProject

    alias = router.db_for_read(PublisherProject)  # the model the ORM query is on
    connection = connections[alias]
    built = _candidates_statement(model, connection.vendor, alias)
    if built is None:
        return None
    sql, slots, names, child_columns, ptr_index, name_index, converters = built
    values_by_slot = {"enabled": True, "issuer": issuer_id, "subject": subject}
    with connection.cursor() as cursor:
        cursor.execute(sql, [values_by_slot[slot] for slot in slots])
        fetched = cursor.fetchall()
    rows: list[tuple[Publisher, str]] = []
    for raw in fetched:
        if raw[ptr_index] is None:  # no provider row (the ORM's getattr(..., None) case)
            continue
        values = list(raw)
        for index, (funcs, expression) in converters.items():
            for convert in funcs:
                values[index] = convert(values[index], expression, connection)
        rows.append((model.from_db(alias, names, values[child_columns]), values[name_index]))
    return rows
