"""django-import-export resource for orders: the admin's Import and Export buttons.

As :mod:`customers.resources`: the generic orders columns, one row per order line.
The export is the staff pages' :func:`orders.exports.orders_table` (formula-safe
cells, orders of processable customers only, their customers in the access log).

An import groups the rows into orders and cleans them with the orders CSV import's
rules (:mod:`orders.importers.orders`: the rows of one order follow each other,
platform statuses, Polish numbers and dates, lines linked by SKU), then writes each
order with :func:`orders.services.order_upsert`. As in the CSV import, a stored
order keeps what the file cannot say: fields without a column in the file (and
source and UTM tags, which no file has), status times left blank, and its lines
when the file's rows carry none. A customer the store already knows (by its
customer id, else the email) keeps their profile; a new one is created by
``order_upsert`` from the order's email, names and phone; an order of an erased
customer keeps its customer and emptied addresses. The first row of an order
shows what happened to it (new, updated or unchanged); its further rows are shown
as skipped. The note column is not written (``order_upsert`` keeps no note).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import tablib
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from import_export.results import RowResult

from customers.exports import ExportTable
from customers.importers.customers import ImportResult, RowError
from customers.importers.formats import ORDERS
from customers.resources import TableResource, existing_customer, row_errors
from orders.exports import ORDER_COLUMNS, order_rows, orders_table
from orders.importers.orders import SET_WHEN_GIVEN, _Cleaner, _groups, _Order
from orders.models import Order
from orders.services import order_upsert

#: Order values of the cleaned order that order_upsert takes as arguments.
_UPSERT_VALUES = frozenset(inspect.signature(order_upsert).parameters) - {
    "store",
    "external_id",
    "lines",
    "customer",
    "customer_data",
    "cart_external_id",
    "actor",
}
_LINE_KEYS = ("sku", "name", "quantity", "unit_price", "total")
# order_upsert's error keys -> the column they come from.
_ERROR_COLUMNS = {
    "external_id": "order_id",
    "number": "order_number",
    "shipped_at": "fulfilled_at",
    "customer.external_id": "customer_external_id",
    "customer.email": "email",
    "customer.phone": "phone",
    "customer.first_name": "customer_name",
    "customer.last_name": "customer_name",
}


class _DatasetRows:
    """What the orders import's grouping reads of a CSV file: numbered rows."""

    def __init__(self, rows: list[tuple[int, dict[str, str]]]) -> None:
        self._rows = rows

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        return iter(self._rows)


class OrderResource(TableResource):
    """Orders: export as the staff pages do; import order by order through upsert."""

    columns = ORDER_COLUMNS
    import_columns = tuple(name for name in ORDER_COLUMNS if name != "note")
    kind = ORDERS

    class Meta:
        model = Order

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.errors_by_row: dict[int, list[RowError]] = {}
        self.first_row: dict[int, int] = {}  # row -> first row of its order
        self.order_rows: dict[int, list[int]] = {}  # first row -> the order's rows
        self.orders: dict[int, _Order] = {}  # first row -> the cleaned order
        # first row -> (order, rows before, rows after); None: not written.
        self.outcomes: dict[int, tuple[Order, list, list] | None] = {}

    def table(self, queryset: QuerySet) -> ExportTable:
        return orders_table(queryset)

    def before_import(self, dataset: tablib.Dataset, **kwargs: Any) -> None:
        """Canonical columns, then the whole file grouped and cleaned into orders."""
        super().before_import(dataset, **kwargs)
        rows = [
            (number, dict(zip(dataset.headers, row, strict=True)))
            for number, row in enumerate(dataset, 1)
        ]
        result = ImportResult()
        groups = [
            group
            for batch in _groups(
                _DatasetRows(rows), self.mapping, result, len(rows) + 1, None
            )
            for group in batch
        ]
        errors = list(result.errors)
        cleaned = {
            order.external_id: order
            for order in _Cleaner(
                store=self.store, mapping=self.mapping, errors=errors
            ).clean(groups)
        }
        for error in errors:
            self.errors_by_row.setdefault(error.line, []).append(error)
        for group in groups:
            first = group.rows[0][0]
            self.order_rows[first] = [line for line, _values in group.rows]
            for line, _values in group.rows:
                self.first_row[line] = first
            if group.repeats is None and group.external_id in cleaned:
                self.orders[first] = cleaned[group.external_id]

    def import_row(
        self, row: Mapping[str, str], instance_loader: Any, **kwargs: Any
    ) -> RowResult:
        number = kwargs["row_number"]
        if number in self.errors_by_row:
            return self.invalid(row_errors(self.errors_by_row[number]))
        first = self.first_row[number]
        if number != first:
            return self.further_row(number, first, **kwargs)
        order = self.orders.get(number)
        if order is None:  # a further row of the order has errors
            rows = [n for n in self.order_rows[first] if n in self.errors_by_row]
            message = ngettext(
                "This order is not imported: row %(rows)s has errors.",
                "This order is not imported: rows %(rows)s have errors.",
                len(rows),
            )
            return self.invalid(
                ValidationError(message % {"rows": ", ".join(map(str, rows))})
            )
        self.outcomes[number] = None
        try:
            stored = Order.objects.filter(
                store=self.store, external_id=order.external_id
            ).first()
            before = order_rows(stored.pk) if stored is not None else []
            saved, created = self.upsert(order, stored, actor=kwargs.get("user"))
        except ValidationError as error:
            return self.invalid(order_errors(error))
        except Exception as error:  # reported on the row, as import-export does
            return self.failed(error, row, number)
        after = order_rows(saved.pk)
        self.outcomes[number] = (saved, before, after)
        if created:
            import_type = RowResult.IMPORT_TYPE_NEW
        elif before != after:
            import_type = RowResult.IMPORT_TYPE_UPDATE
        else:
            import_type = RowResult.IMPORT_TYPE_SKIP
        return self.written(
            saved,
            import_type=import_type,
            before=before[0] if before else {},
            after=after[0],
            **kwargs,
        )

    def further_row(self, number: int, first: int, **kwargs: Any) -> RowResult:
        """A row after the order's first: skipped, showing its own line."""
        outcome = self.outcomes.get(first)
        if outcome is None:
            return self.invalid(
                ValidationError(
                    _("This row's order (row %(row)d) is not imported.")
                    % {"row": first}
                )
            )
        saved, before, after = outcome
        position = self.order_rows[first].index(number)
        return self.written(
            saved,
            import_type=RowResult.IMPORT_TYPE_SKIP,
            before=before[position] if position < len(before) else {},
            after=after[position] if position < len(after) else {},
            **kwargs,
        )

    def upsert(
        self, order: _Order, stored: Order | None, *, actor: Any
    ) -> tuple[Order, bool]:
        """Write one cleaned order with order_upsert (see the module for ``stored``)."""
        values = {k: v for k, v in order.values.items() if k in _UPSERT_VALUES}
        lines = [{key: line[key] for key in _LINE_KEYS} for line in order.lines]
        if stored is not None:
            given = set(self.mapping.positions)
            for name, columns in SET_WHEN_GIVEN.items():
                if name in values and not given.intersection(columns):
                    values[name] = getattr(stored, name)
            for name in _UPSERT_VALUES - values.keys():
                if not name.endswith("_at"):  # order_upsert keeps blank times
                    values[name] = getattr(stored, name)
            if not lines:
                lines = [
                    {key: getattr(line, key) for key in _LINE_KEYS}
                    for line in stored.lines.order_by("position", "pk")
                ]
        data = order.customer_data
        if stored is not None and stored.customer.erased_at is not None:
            # An import must not bring an erased person back: the order keeps its
            # anonymised customer and its emptied addresses.
            customer = stored.customer
            for name in ("billing_address", "shipping_address"):
                values[name] = getattr(stored, name)
        else:
            customer = existing_customer(
                store=self.store,
                external_id=data.get("external_id"),
                email=data.get("email"),
            )
        return order_upsert(
            store=self.store,
            external_id=order.external_id,
            lines=lines,
            customer=customer,
            customer_data=(
                None
                if customer is not None
                else {key: value for key, value in data.items() if value}
            ),
            actor=actor,
            **values,
        )


def order_errors(error: ValidationError) -> ValidationError:
    """order_upsert's errors keyed by the file's columns (others: the whole row)."""
    if not hasattr(error, "error_dict"):
        return error
    by_column: dict[str, list[ValidationError]] = {}
    for key, errors in error.error_dict.items():
        column = _ERROR_COLUMNS.get(key, key)
        if column.startswith("lines."):
            column = f"line_{column.rsplit('.', 1)[-1]}"
        if column not in ORDER_COLUMNS:
            column = NON_FIELD_ERRORS
        by_column.setdefault(column, []).extend(errors)
    return ValidationError(by_column)
