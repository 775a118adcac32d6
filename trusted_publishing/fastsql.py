"""Prebuilt statements for the rows written on every mint and upload.

``Model.objects.create()`` spends most of its time in Django's model and save machinery and SQL
compiler (≈ 0.4 ms of CPU per row here), the statement itself a few hundredths of that. The mint
writes three rows and every upload one, so these are written from plain ``{attname: value}``
dicts with an INSERT built once per (model, database) from the model's ``_meta`` (quoted table
and column names only; every value is a parameter).

Values are prepared for the database as the ORM prepares them (``get_db_prep_save``), with two
shortcuts that give the same result: a ``str``/``int``/``bool``/``None`` for a plain text,
integer, boolean or foreign-key column is passed as it is (what the field would return), and one
call prepares each distinct datetime and each JSON value once, however many columns hold it.

What it does not do: send ``pre_save``/``post_save`` (the app's receivers ignore new tokens and
there are none for replay records or audit events; the app's own signals are sent by its callers
as before). Databases other than SQLite and PostgreSQL, and models this module was not written
for (multi-table inheritance, database defaults, generated fields), go through the ORM.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import connections, models, router, transaction
from django.db.models import NOT_PROVIDED, Model

from .conf import tp_settings

M = TypeVar("M", bound=Model)

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from .models import Publisher

_RETURNING_VENDORS = {"sqlite", "postgresql"}

# Columns whose value passes through get_db_prep_save unchanged when it has exactly this type.
_PLAIN: dict[type[models.Field], tuple[type, ...]] = {
    models.CharField: (str,),
    models.TextField: (str,),
    models.BooleanField: (bool,),
    models.IntegerField: (int,),
    models.BigIntegerField: (int,),
    models.PositiveIntegerField: (int,),
    models.PositiveBigIntegerField: (int,),
    models.ForeignKey: (int,),
}


class _DirectCursor:
    """The part of Django's cursor wrapper these statements need, without the per-call layers.

    Django's ``CursorWrapper`` runs every statement through execute wrappers, the async guard,
    query logging and (on SQLite) a regex that turns ``%s`` into ``?``: several times the cost
    of a small indexed statement. This cursor keeps what matters — Django's exception classes
    (``IntegrityError`` stays ``django.db.IntegrityError``) and the broken-transaction guard —
    and is only used when nothing observes statements: while queries are logged (``DEBUG``,
    ``CaptureQueriesContext``) or an execute wrapper is installed, :func:`cursor` returns
    Django's own, as it does with ``TRUSTED_PUBLISHING["DIRECT_SQL"] = False`` (for monitoring
    tools that patch Django's cursor wrapper instead).
    """

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        # As Django's own cursor(): health check, connection, thread check, and the backend's
        # create_cursor() (driver settings such as psycopg2's tzinfo_factory); only the
        # per-statement wrapper is left out.
        self.db = connection
        connection.close_if_health_check_failed()
        connection.ensure_connection()
        with connection.wrap_database_errors:
            connection.validate_thread_sharing()
            self.cursor = connection.create_cursor()
        # SQLite's cursor class rewrites "%s" on every call; the statements here are rewritten
        # once (_qmark) and run by the driver's own execute.
        self.run = sqlite3.Cursor.execute if connection.vendor == "sqlite" else None

    def __enter__(self) -> _DirectCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cursor.close()

    def execute(self, sql: str, params: list[Any]) -> None:
        self.db.validate_no_broken_transaction()
        with self.db.wrap_database_errors:
            if self.run is not None:
                self.run(self.cursor, _qmark(sql), params)
            else:
                self.cursor.execute(sql, params)

    def fetchone(self) -> Any:
        with self.db.wrap_database_errors:
            return self.cursor.fetchone()

    def fetchall(self) -> list[Any]:
        with self.db.wrap_database_errors:
            return self.cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self.cursor.rowcount


@functools.cache
def _qmark(sql: str) -> str:
    # The statements here are built from model metadata: "%s" only ever marks a parameter.
    return sql.replace("%s", "?")


def cursor(connection: BaseDatabaseWrapper) -> Any:
    """A cursor for the prebuilt statements (see :class:`_DirectCursor`)."""
    if not tp_settings.DIRECT_SQL or connection.queries_logged or connection.execute_wrappers:
        return connection.cursor()
    return _DirectCursor(connection)


class Insert:
    """``INSERT INTO table (columns) VALUES (...)`` for one model on one database vendor."""

    def __init__(self, model: type[Model], connection: BaseDatabaseWrapper) -> None:
        meta = model._meta
        self.model = model
        self.fields = tuple(f for f in meta.local_concrete_fields if f is not meta.auto_field)
        # Per column: (attname, field, exact types passed through, memo tag, constant default).
        self.columns_spec = tuple(
            (
                f.attname,
                f,
                _PLAIN.get(type(f), ()),
                "json"
                if isinstance(f, models.JSONField)
                else "dt"
                if isinstance(f, models.DateTimeField)
                else None,
                _constant_default(f),
            )
            for f in self.fields
        )
        qn = connection.ops.quote_name
        self.table = qn(meta.db_table)
        self.columns = ", ".join(qn(f.column) for f in self.fields)
        self.placeholders = ", ".join(["%s"] * len(self.fields))
        self.returning = qn(meta.auto_field.column) if meta.auto_field is not None else ""
        # Only quoted names from model metadata go into the text; values are parameters.
        self.sql = f"INSERT INTO {self.table} ({self.columns}) VALUES ({self.placeholders})"  # noqa: S608
        if self.returning:
            # Both vendors return the new id with the statement (no second round trip).
            self.sql += f" RETURNING {self.returning}"

    def params(
        self, values: Mapping[str, Any], connection: BaseDatabaseWrapper, memo: dict[Any, Any]
    ) -> list[Any]:
        """The statement's parameters: ``values`` by attname, field defaults for the rest."""
        params: list[Any] = []
        get = values.get
        for attname, field, plain, tag, constant in self.columns_spec:
            value = get(attname, NOT_PROVIDED)
            if value is NOT_PROVIDED:
                if constant is not NOT_PROVIDED:
                    params.append(constant)
                    continue
                if _auto_now(field):
                    value = field.pre_save(self.model(), add=True)
                else:
                    value = field.get_default()
            if (value is None and field.null) or type(value) in plain:
                params.append(value)
                continue
            # Prepared once per call: the mint stores the same time and claims in several rows.
            key = None if tag is None else (id(value), tag) if tag == "json" else (value, tag)
            if key is not None and key in memo:
                params.append(memo[key][1])
                continue
            if tag == "dt" and type(value) is datetime and value.tzinfo is not None:
                # What DateTimeField.get_db_prep_save comes down to for an aware datetime.
                prepared = connection.ops.adapt_datetimefield_value(value)
            else:
                prepared = field.get_db_prep_save(value, connection=connection)
            if key is not None:
                memo[key] = (value, prepared)  # keeps the object alive while its id is a key
            params.append(prepared)
        return params


def _auto_now(field: models.Field) -> bool:
    return bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))


def _constant_default(field: models.Field) -> Any:
    """The column value of an absent field when it is a constant (``""``, ``0``, ``None`` of a
    nullable column...), else NOT_PROVIDED (callable defaults, ``auto_now``, JSON)."""
    if _auto_now(field):
        return NOT_PROVIDED
    if field.has_default():
        default = field.default
        if callable(default) or type(default) not in _PLAIN.get(type(field), ()):
            return NOT_PROVIDED
        return default
    if field.null:
        return None
    if type(field) in (models.CharField, models.TextField) and field.empty_strings_allowed:
        return ""  # Field.get_default() of a text column without a default
    return NOT_PROVIDED


@functools.cache
def _insert(model: type[Model], vendor: str, alias: str) -> Insert | None:
    """The prebuilt INSERT for ``model``, or None when the ORM must do it."""
    if vendor not in _RETURNING_VENDORS or model._meta.parents:
        return None
    built = Insert(model, connections[alias])
    if any(
        getattr(f, "generated", False) or f.db_default is not NOT_PROVIDED for f in built.fields
    ):
        return None
    return built


def _orm_insert(model: type[Model], values: Mapping[str, Any], alias: str) -> int | None:
    obj = model(**values)
    obj.save(force_insert=True, using=alias)
    return obj.pk


def insert(model: type[Model], values: Mapping[str, Any]) -> int | None:
    """INSERT one ``model`` row from ``{attname: value}``; returns its new id (None without an
    auto id). As ``model.objects.create(**values)``, without model signals."""
    alias = router.db_for_write(model)
    connection = connections[alias]
    built = _insert(model, connection.vendor, alias)
    if built is None:
        return _orm_insert(model, values, alias)
    params = built.params(values, connection, {})
    # As the ORM does: inside an atomic block a failed statement marks it for rollback.
    with transaction.mark_for_rollback_on_error(using=alias), cursor(connection) as db:
        db.execute(built.sql, params)
        return db.fetchone()[0] if built.returning else None


def loaded(model: type[M], pk: Any, values: Mapping[str, Any], alias: str) -> M:
    """The instance of a row just written by :func:`insert` or :func:`insert_chain` (as a query
    would return it, without one): ``values`` by attname, field defaults for the rest."""
    fields = model._meta.concrete_fields
    pk_name = model._meta.pk.attname
    row = [
        pk
        if f.attname == pk_name
        else values[f.attname]
        if f.attname in values
        else f.get_default()
        for f in fields
    ]
    return model.from_db(alias, [f.attname for f in fields], row)


def insert_chain(
    rows: list[tuple[type[Model], Mapping[str, Any]]], *, link: str
) -> list[int | None]:
    """INSERT several rows, in order, in the caller's transaction; returns their new ids.

    The last row's ``link`` column gets the id of the row before it (the mint's audit event
    names the token just written). On PostgreSQL the rows go in one statement (data-modifying
    CTEs: one round trip, atomic even in autocommit); elsewhere one statement each, on one
    cursor. Every row's model must be on the same database.
    """
    alias = router.db_for_write(rows[0][0])
    connection = connections[alias]
    built = [_insert(model, connection.vendor, alias) for model, _values in rows]
    if any(b is None for b in built) or any(
        router.db_for_write(model) != alias for model, _values in rows
    ):
        ids: list[int | None] = []
        for n, (model, values) in enumerate(rows):
            extra = {link: ids[-1]} if n == len(rows) - 1 else {}
            ids.append(_orm_insert(model, {**values, **extra}, alias))
        return ids
    inserts: list[Insert] = [b for b in built if b is not None]
    memo: dict[Any, Any] = {}
    last_values = {**rows[-1][1], link: None}
    params = [
        ins.params(values, connection, memo)
        for ins, (_model, values) in zip(inserts[:-1], rows[:-1], strict=True)
    ]
    last = inserts[-1]
    last_params = last.params(last_values, connection, memo)
    link_index = [f.attname for f in last.fields].index(link)
    with transaction.mark_for_rollback_on_error(using=alias), cursor(connection) as db:
        if connection.vendor == "postgresql":
            flat = [value for row_params in params for value in row_params]
            flat += [v for i, v in enumerate(last_params) if i != link_index]
            db.execute(_chain_sql(tuple(inserts), link_index), flat)
            return list(db.fetchone())
        ids = []
        for ins, row_params in zip(inserts[:-1], params, strict=True):
            db.execute(ins.sql, row_params)
            ids.append(db.fetchone()[0] if ins.returning else None)
        last_params[link_index] = ids[-1]
        db.execute(last.sql, last_params)
        ids.append(db.fetchone()[0] if last.returning else None)
        return ids


@functools.cache
def _chain_sql(inserts: tuple[Insert, ...], link_index: int) -> str:
    """``WITH r0 AS (INSERT ... RETURNING id), ... INSERT ... VALUES (..., (SELECT id FROM
    r<n-2>)) RETURNING (SELECT id FROM r0), ..., id`` (PostgreSQL; built once per chain)."""
    ctes = []
    for n, ins in enumerate(inserts[:-1]):
        returning = f" RETURNING {ins.returning}" if ins.returning else ""
        ctes.append(
            f"r{n} AS (INSERT INTO {ins.table} ({ins.columns}) VALUES ({ins.placeholders})"  # noqa: S608
            f"{returning})"
        )
    last, previous = inserts[-1], inserts[-2]
    slots = ["%s"] * len(last.fields)
    slots[link_index] = f"(SELECT {previous.returning} FROM r{len(inserts) - 2})"  # noqa: S608
    returned = [
        f"(SELECT {ins.returning} FROM r{n})" if ins.returning else "NULL"  # noqa: S608
        for n, ins in enumerate(inserts[:-1])
    ]
    returned.append(last.returning or "NULL")
    # Only quoted names from model metadata go into the text; values are parameters.
    return (
        f"WITH {', '.join(ctes)} INSERT INTO {last.table} ({last.columns}) "  # noqa: S608
        f"VALUES ({', '.join(slots)}) RETURNING {', '.join(returned)}"
    )


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
    with cursor(connection) as db:
        db.execute(sql, [values_by_slot[slot] for slot in slots])
        fetched = db.fetchall()
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
