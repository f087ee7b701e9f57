"""Statements for the API's hottest paths, written once instead of compiled per call.

The ORM compiles every query afresh: about half a millisecond of CPU for a simple
lookup, which on a single order upsert was most of the request. The few statements
each API write runs are built here once, with column lists taken from the models'
metadata (a new field cannot be left out), and rows become model instances with
the fields' own converters, as the ORM would make them. Everything else uses the
ORM; reach for this only where a benchmark shows the compile cost.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

import psycopg
from django.db import OperationalError, connection, transaction
from django.db.models import Model
from psycopg import sql

M = TypeVar("M", bound=Model)


def columns(model: type[Model], alias: str = "") -> sql.Composable:
    """The model's concrete columns, in field order, for a SELECT list."""
    return sql.SQL(", ").join(
        sql.Identifier(*([alias] if alias else []), f.column)
        for f in model._meta.concrete_fields
    )


def table(model: type[Model]) -> sql.Identifier:
    return sql.Identifier(model._meta.db_table)


def compiled(statement: sql.Composable) -> str:
    """The statement as text, to build once and run many times."""
    with connection.cursor() as cursor:
        return statement.as_string(cursor.connection)


def column_count(model: type[Model]) -> int:
    return len(model._meta.concrete_fields)


@cache
def _converters(model: type[Model]) -> tuple[tuple[int, Any, tuple], ...]:
    """(position, field, converters) for the fields whose values need converting."""
    found = []
    for position, field in enumerate(model._meta.concrete_fields):
        converters = tuple(field.get_db_converters(connection))
        if converters:
            found.append((position, field, converters))
    return tuple(found)


def from_row(model: type[M], values: Sequence[Any]) -> M:
    """A model instance from a row of :func:`columns`, as a queryset would load it."""
    values = list(values)
    for position, field, converters in _converters(model):
        for convert in converters:
            values[position] = convert(values[position], field, connection)
    return model.from_db(connection.alias, None, values)


def insert(instance: Model) -> None:
    """``instance.save()`` for a new row, precompiled: fills in pk and auto times.

    Sends no signals: use it only for models nothing listens to.
    """
    fields = _insert_fields(type(instance))
    values = [
        f.get_db_prep_save(f.pre_save(instance, add=True), connection) for f in fields
    ]
    with cursor() as cur:
        cur.execute(_insert_statement(type(instance)), values)
        (instance.pk,) = cur.fetchone()
    instance._state.adding = False
    instance._state.db = connection.alias


@cache
def _insert_statement(model: type[Model]) -> str:
    fields = _insert_fields(model)
    return compiled(
        sql.SQL(
            "INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING {pk}"
        ).format(
            table=table(model),
            columns=sql.SQL(", ").join(sql.Identifier(f.column) for f in fields),
            values=sql.SQL(", ").join(sql.Placeholder() * len(fields)),
            pk=sql.Identifier(model._meta.pk.column),
        )
    )


def get_for_update(model: type[M], **where: Any) -> M | None:
    """``model.objects.select_for_update().filter(**where).first()``, precompiled.

    ``where`` names concrete fields (``store`` or ``store_id`` for a foreign key)
    that together identify at most one row, e.g. a unique constraint's fields.
    """
    params = [
        value.pk
        if isinstance(value, Model)
        else model._meta.get_field(name).get_db_prep_value(value, connection)
        for name, value in where.items()
    ]
    with cursor() as cur:
        cur.execute(_get_for_update_statement(model, tuple(where)), params)
        row = cur.fetchone()
    return None if row is None else from_row(model, row)


@cache
def _get_for_update_statement(model: type[Model], names: tuple[str, ...]) -> str:
    meta = model._meta
    return compiled(
        sql.SQL(
            "SELECT {columns} FROM {table} WHERE {condition} LIMIT 1 FOR UPDATE"
        ).format(
            columns=columns(model),
            table=table(model),
            condition=sql.SQL(" AND ").join(
                sql.SQL("{} = %s").format(sql.Identifier(meta.get_field(name).column))
                for name in names
            ),
        )
    )


def lock_or_insert(instance: M, *, key: Iterable[str]) -> tuple[M, bool] | None:
    """Lock the row whose ``key`` fields equal ``instance``'s, or insert ``instance``.

    One statement for what is otherwise a ``SELECT ... FOR UPDATE`` and, when
    nothing was found, an ``INSERT``: the existing row is locked and returned as a
    new instance (``created`` False); else ``instance`` is inserted (``ON CONFLICT
    DO NOTHING``), gets its pk, and is returned with ``created`` True. Returns
    None when a concurrent transaction inserted the same key in between: the
    caller then locks that row with :func:`get_for_update`. ``key`` names concrete
    fields that together are unique (``store`` for a foreign key).
    """
    model = type(instance)
    key = tuple(key)
    fields = _insert_fields(model)
    values = [
        f.get_db_prep_save(f.pre_save(instance, add=True), connection) for f in fields
    ]
    where = [model._meta.get_field(name) for name in key]
    params = [
        *(f.get_db_prep_value(getattr(instance, f.attname), connection) for f in where),
        *values,
    ]
    with cursor() as cur:
        cur.execute(_lock_or_insert_statement(model, key), params)
        row = cur.fetchone()
    if row is None:
        return None
    created, columns_values = row[0], row[1:]
    if not created:
        return from_row(model, columns_values), False
    instance.pk = columns_values[model._meta.concrete_fields.index(model._meta.pk)]
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance, True


@cache
def _lock_or_insert_statement(model: type[Model], key: tuple[str, ...]) -> str:
    meta = model._meta
    fields = _insert_fields(model)
    # The snapshot of a statement does not see its own inserts: "existing" holds the
    # row only if it was there before, and "inserted" only runs when it was not.
    return compiled(
        sql.SQL(
            "WITH existing AS ("
            "SELECT {columns} FROM {table} WHERE {condition} LIMIT 1 FOR UPDATE"
            "), inserted AS ("
            "INSERT INTO {table} ({insert_columns}) SELECT {values}"
            " WHERE NOT EXISTS (SELECT FROM existing)"
            " ON CONFLICT ({key}) DO NOTHING RETURNING {columns}"
            ") SELECT true, * FROM inserted UNION ALL SELECT false, * FROM existing"
        ).format(
            columns=columns(model),
            table=table(model),
            condition=sql.SQL(" AND ").join(
                sql.SQL("{} = %s").format(sql.Identifier(meta.get_field(name).column))
                for name in key
            ),
            insert_columns=sql.SQL(", ").join(sql.Identifier(f.column) for f in fields),
            values=sql.SQL(", ").join(
                sql.SQL("%s::{}").format(sql.SQL(f.db_type(connection))) for f in fields
            ),
            key=sql.SQL(", ").join(
                sql.Identifier(meta.get_field(name).column) for name in key
            ),
        )
    )


def insert_many(instances: Sequence[Model]) -> None:
    """``bulk_create(instances)``, precompiled: one statement whatever their number.

    The rows travel as one array per column (``INSERT ... SELECT * FROM UNNEST``),
    so the statement text is the same for any number of rows. UNNEST would
    flatten an array column, so models with one need ``insert()``.
    """
    if not instances:
        return
    model = type(instances[0])
    fields = _insert_fields(model)
    columns_values = [
        [f.get_db_prep_save(f.pre_save(obj, add=True), connection) for obj in instances]
        for f in fields
    ]
    with cursor() as cur:
        cur.execute(_insert_many_statement(model), columns_values)
        keys = [pk for (pk,) in cur.fetchall()]
    for instance, pk in zip(instances, keys, strict=True):
        instance.pk = pk
        instance._state.adding = False
        instance._state.db = connection.alias


def _insert_fields(model: type[Model]) -> list:
    return [f for f in model._meta.concrete_fields if not f.primary_key]


@cache
def _insert_many_statement(model: type[Model]) -> str:
    meta = model._meta
    fields = _insert_fields(model)
    types = [f.db_type(connection) for f in fields]
    if any(db_type.endswith("]") for db_type in types):
        raise ValueError(f"{model.__name__} has an array column: use insert().")
    return compiled(
        sql.SQL(
            "INSERT INTO {table} ({columns}) SELECT * FROM UNNEST({arrays})"
            " RETURNING {pk}"
        ).format(
            table=table(model),
            columns=sql.SQL(", ").join(sql.Identifier(f.column) for f in fields),
            arrays=sql.SQL(", ").join(
                sql.SQL("%s::{}[]").format(sql.SQL(db_type)) for db_type in types
            ),
            pk=sql.Identifier(meta.pk.column),
        )
    )


def statistics_stale(model: type[Model]) -> bool:
    """Whether the planner's idea of the table's size is off by half or more.

    ``pg_class`` keeps the size the last ANALYZE or VACUUM saw; a table filled or
    emptied since (a first import, a rolled-back load) is planned as if it were
    still that size, e.g. a million customers scanned once per batch row.
    """
    with cursor() as cur:
        cur.execute(
            "SELECT relpages, pg_relation_size(oid)"
            " / current_setting('block_size')::int"
            " FROM pg_class WHERE oid = %s::regclass",
            [model._meta.db_table],
        )
        known, actual = cur.fetchone()
    return actual > 2 * max(known, 8) or (known > 8 and actual * 2 < known)


def analyze(models: Iterable[type[Model]], *, lock_timeout: str = "200ms") -> bool:
    """ANALYZE the models' tables, unless it means waiting; whether it ran.

    Meant for bulk writers inside their transaction: ANALYZE counts the rows this
    transaction inserted, and its lock is held until the transaction ends, so
    when another session holds it (another import, autovacuum) the refresh is
    skipped rather than waited for.
    """
    statement = compiled(
        sql.SQL("ANALYZE {}").format(
            sql.SQL(", ").join(table(model) for model in models)
        )
    )
    setting = "SELECT set_config('lock_timeout', %s, true)"
    with cursor() as cur:
        (timeout,) = cur.execute("SHOW lock_timeout").fetchone()
        try:
            with transaction.atomic():
                cur.execute(setting, [lock_timeout])
                cur.execute(statement)
        except OperationalError:
            return False  # rolled back to the savepoint, lock_timeout with it
        cur.execute(setting, [timeout])
    return True


# --- COPY's text format, made away from the connection ------------------------------
#
# psycopg formats COPY rows as they are written, on the thread holding the
# connection. A bulk writer that reads and cleans rows in another thread makes
# the text there instead (copy_line), so the writing thread only sends it
# (``copy.write``) while the database works. The types are those the importers
# stage; another type is a TypeError, not a guess.

_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_str(value: str) -> str:
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value


def _copy_array(values: Sequence[Any]) -> str:
    """A one-dimensional array literal of text values (NULL for None)."""
    items = (
        "NULL"
        if item is None
        else '"' + str(item).replace("\\", "\\\\").replace('"', '\\"') + '"'
        for item in values
    )
    return _copy_str("{" + ",".join(items) + "}")


_COPY_FORMATS: dict[type, Any] = {
    type(None): lambda value: "\\N",
    str: _copy_str,
    bool: lambda value: "t" if value else "f",
    int: str,
    Decimal: str,
    dt.date: dt.date.isoformat,
    dt.datetime: dt.datetime.isoformat,
    list: _copy_array,
    tuple: _copy_array,
}


def copy_text(value: Any) -> str:
    r"""``value`` as one field of COPY's text format (tab-separated, ``\N`` NULL)."""
    try:
        return _COPY_FORMATS[type(value)](value)
    except KeyError:
        raise TypeError(f"copy_text cannot format {type(value).__name__}") from None


def copy_line(values: Iterable[Any]) -> str:
    """One row of COPY's text format, newline included, for ``copy.write``."""
    return "\t".join(map(copy_text, values)) + "\n"


@contextmanager
def immediate_constraints() -> Iterator[None]:
    """Check deferred constraints (Django's foreign keys) as each statement ends.

    For bulk writers, inside their transaction. Django makes foreign keys
    DEFERRABLE INITIALLY DEFERRED, so every row inserted queues a check for COMMIT:
    a million-row import queues millions, held in the server's memory, and every
    TRUNCATE scans the queue for its table, so each batch gets slower than the
    last. Inside this block the checks run when each statement ends (the same
    checks, no queue); when it ends, the constraints are deferred again as
    Django has them. A block that is rolled back (an error, ``set_rollback``)
    needs no restoring: rolling back a transaction or savepoint restores the
    constraints' mode with it.
    """
    with cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
    yield
    if not connection.needs_rollback:
        with cursor() as cur:
            cur.execute("SET CONSTRAINTS ALL DEFERRED")


@contextmanager
def cursor() -> Iterator[Any]:
    """Django's cursor, but sending parameters apart from the SQL (server-side binding).

    Django's psycopg cursor binds on the client: each value is quoted into the
    statement text in Python, and the server parses and plans that text afresh
    every time. This cursor sends the values separately, which is cheaper for
    arrays and lets psycopg prepare a statement once it has run a few times on the
    connection (``prepare_threshold``), so the server skips parsing and planning
    it. Only the statements in this module and the hot paths that use it run here;
    the ORM keeps Django's cursor. It is Django's cursor wrapper in the current
    transaction: errors are wrapped, and queries are logged and counted as usual.
    """
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        raw = psycopg.Cursor(connection.connection)
    wrapped = (
        connection.make_debug_cursor(raw)
        if connection.queries_logged
        else connection.make_cursor(raw)
    )
    with wrapped:
        yield wrapped
