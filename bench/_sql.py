"""SQL building blocks for benchmarks that generate millions of rows in PostgreSQL.

Rows are made by ``INSERT ... SELECT`` over ``generate_series``; every "random"
choice is a hash of the row number, so each run makes the same data.
"""

from __future__ import annotations

SEED = 20240101


def array(values: list[str]) -> str:
    """A SQL text array literal of ``values`` (fixed names, no quotes in them)."""
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def uniform(n: str, salt: int) -> str:
    """SQL: a number in [0, 1) from the row number ``n``, the same on every run."""
    return f"((hashint8extended({n}, {SEED + salt}) & 2147483647)::float8 / 2147483648)"


def pick(values: list[str], n: str, salt: int, *, skew: float = 1.0) -> str:
    """SQL: one of ``values`` for row ``n``; ``skew`` > 1 favours the first ones."""
    index = f"floor({len(values)} * power({uniform(n, salt)}, {skew}))::int + 1"
    return f"({array(values)})[{index}]"


def insert(cursor, model, values: dict[str, str], source: str, params=()) -> int:
    """INSERT INTO model's table SELECT ``values`` FROM ``source``; rows inserted.

    Columns not in ``values`` get the field's default (``now()`` for automatic
    timestamps), NULL when nullable: the statement follows the model's fields.
    ``values`` hold no placeholders (defaults take them, in column order);
    ``params`` are those of ``source``.
    """
    from django.db import connection

    columns, expressions, arguments = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        if field.column in values:
            expression = values[field.column]
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            expression = "now()"
        elif field.null:
            continue
        else:
            default = field.get_default()
            if default is None:
                raise RuntimeError(f"{model.__name__}.{field.name} needs a value")
            expression = "%s"
            arguments.append(field.get_db_prep_save(default, connection))
            if isinstance(default, list):
                expression = f"%s::{field.db_type(connection)}"
        columns.append(f'"{field.column}"')
        expressions.append(expression)
    cursor.execute(
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(expressions)} FROM {source}",
        [*arguments, *params],
    )
    return cursor.rowcount


def secondary_indexes(cursor, tables: list[str]) -> list[tuple[str, str]]:
    """(name, definition) of the tables' indexes that back no constraint."""
    cursor.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s)
          AND NOT EXISTS (
            SELECT 1 FROM pg_constraint c
            WHERE c.conindid = (quote_ident(i.schemaname) || '.'
                                || quote_ident(i.indexname))::regclass)
        """,
        [tables],
    )
    return cursor.fetchall()
