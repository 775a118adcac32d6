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
from typing import TYPE_CHECKING, TypeVar

from django.db import connections, router, transaction
from django.db.models import NOT_PROVIDED, Model

if TYPE_CHECKING:
    from .models import AuditEvent

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

