"""Statements for the API's hottest paths, written once instead of compiled per call.

The ORM compiles every query afresh: about half a millisecond of CPU for a simple
lookup, which on a single order upsert was most of the request. The few statements
each API write runs are built here once, with column lists taken from the models'
metadata (a new field cannot be left out), and rows become model instances with
the fields' own converters, as the ORM would make them. Everything else uses the
ORM; reach for this only where a benchmark shows the compile cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

import psycopg
from django.db import connection
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
    _insert_one(instance, conflict=())


def insert_or_skip(instance: Model, *, conflict: Iterable[str]) -> bool:
    """INSERT ``instance`` unless a row with the same ``conflict`` fields exists.

    One statement (``ON CONFLICT DO NOTHING RETURNING``), which, unlike a SELECT
    then an INSERT, cannot lose a race. Returns True (with pk and auto times filled
    in) when the row was inserted; False, changing nothing, when it existed.
    """
    return _insert_one(instance, conflict=tuple(conflict))


def _insert_one(instance: Model, *, conflict: tuple[str, ...]) -> bool:
    fields = _insert_fields(type(instance))
    values = [
        f.get_db_prep_save(f.pre_save(instance, add=True), connection) for f in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(_insert_one_statement(type(instance), conflict), values)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = connection.alias
    return True


@cache
def _insert_one_statement(model: type[Model], conflict: tuple[str, ...]) -> str:
    meta = model._meta
    fields = _insert_fields(model)
    on_conflict = sql.SQL("")
    if conflict:
        on_conflict = sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(
            sql.SQL(", ").join(
                sql.Identifier(meta.get_field(name).column) for name in conflict
            )
        )
    return compiled(
        sql.SQL(
            "INSERT INTO {table} ({columns}) VALUES ({values}){on_conflict}"
            " RETURNING {pk}"
        ).format(
            table=table(model),
            columns=sql.SQL(", ").join(sql.Identifier(f.column) for f in fields),
            values=sql.SQL(", ").join(sql.Placeholder() * len(fields)),
            on_conflict=on_conflict,
            pk=sql.Identifier(meta.pk.column),
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
    with connection.cursor() as cursor:
        cursor.execute(_get_for_update_statement(model, tuple(where)), params)
        row = cursor.fetchone()
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
    with connection.cursor() as cursor:
        cursor.execute(_insert_many_statement(model), columns_values)
        keys = [pk for (pk,) in cursor.fetchall()]
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


@contextmanager
def bound_cursor() -> Iterator[psycopg.Cursor]:
    """A cursor on Django's connection that sends parameters apart from the SQL.

    Django binds parameters on the client: each value is quoted into the statement
    text in Python, which for large arrays costs more than running the statement.
    This cursor sends them separately (server-side binding), in the connection's
    current transaction. Statements run here are not in Django's query log.
    """
    connection.ensure_connection()
    with (
        connection.wrap_database_errors,
        psycopg.Cursor(connection.connection) as cursor,
    ):
        yield cursor
