"""Orders as export files: one row per order line, in the generic orders columns.

Built on :mod:`customers.exports` (chunks, formula-safe cells, CSV and XLSX, the
access log): an orders export holds its customers' email, phone, name and
addresses, so each chunk's customers are logged as exported, and orders of
restricted or erased customers are left out. The columns are the ``generic``
orders format's own names (``customers.importers.formats.ORDER_FIELDS``), so an
export imports again with ``--format generic``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import OuterRef, Prefetch, QuerySet

from customers.exports import ExportTable
from customers.importers.formats import ORDER_ADDRESS_PARTS, ORDER_FIELDS
from customers.models import Customer, identity_external_id
from orders.models import Order, OrderLine

#: Part of an order's address snapshot -> the keys platforms write it under, best
#: first (order pages show snapshots with them too).
ADDRESS_KEYS: dict[str, tuple[str, ...]] = {
    "name": ("name", "full_name"),
    "first_name": ("first_name",),
    "last_name": ("last_name",),
    "company": ("company",),
    "street": ("street", "address1", "address_1", "line1", "street1"),
    "street2": ("street2", "address2", "address_2", "line2"),
    "postcode": ("postcode", "zip", "postal_code", "zipcode"),
    "city": ("city", "town"),
    "region": ("region", "state", "province"),
    "country": ("country", "country_code"),
    "phone": ("phone",),
}
if set(ORDER_ADDRESS_PARTS) != set(ADDRESS_KEYS):
    raise ImproperlyConfigured("orders.exports: ADDRESS_KEYS must match ORDER_FIELDS")


def address_part(data: Any, part: str) -> str:
    """One part of an address snapshot (``street``, ``postcode``…), or ""."""
    if not isinstance(data, dict):
        return ""
    for key in ADDRESS_KEYS[part]:
        value = data.get(key)
        if value not in (None, ""):
            return str(value).strip()
    return ""


Cell = Callable[[Order, OrderLine | None], Any]


def _order(name: str) -> Cell:
    return lambda order, line: getattr(order, name)


def _line(name: str) -> Cell:
    return lambda order, line: getattr(line, name) if line is not None else None


def _snapshot(kind: str, part: str) -> Cell:
    return lambda order, line: address_part(getattr(order, f"{kind}_address"), part)


#: Canonical order field -> its value, from the order and one of its lines. The
#: columns are these fields in the order of ``ORDER_FIELDS``. Kartoteka keeps one
#: status (no separate financial and fulfillment statuses), no tax or refunded
#: totals and no order tags: those columns are not written.
_ORDER_CELLS: dict[str, Cell] = {
    "order_id": _order("external_id"),
    "order_number": _order("number"),
    **{
        name: _order(name)
        for name in (
            "placed_at",
            "status",
            "currency",
            "subtotal",
            "discount_total",
            "shipping_total",
            "total",
            "coupon_code",
            "payment_method",
            "shipping_method",
            "paid_at",
            "cancelled_at",
            "note",
        )
    },
    "fulfilled_at": _order("shipped_at"),
    "email": lambda order, line: order.customer.email,
    "phone": lambda order, line: order.customer.phone,
    "customer_external_id": lambda order, line: order.export_customer_external_id,
    "customer_name": lambda order, line: order.customer.full_name,
    **{
        f"{kind}_{part}": _snapshot(kind, part)
        for kind in ("billing", "shipping")
        for part in ORDER_ADDRESS_PARTS
    },
    "line_sku": _line("sku"),
    "line_name": _line("name"),
    "line_quantity": _line("quantity"),
    "line_unit_price": _line("unit_price"),
    "line_total": _line("total"),
}

#: The columns of an orders export: generic import names, in their order.
ORDER_COLUMNS: tuple[str, ...] = tuple(
    name for name in ORDER_FIELDS if name in _ORDER_CELLS
)
if len(ORDER_COLUMNS) != len(_ORDER_CELLS):
    raise ImproperlyConfigured(
        "orders.exports: not generic order fields: "
        f"{sorted(set(_ORDER_CELLS) - set(ORDER_COLUMNS))}"
    )


def orders_table(queryset: QuerySet[Order]) -> ExportTable:
    """Orders of processable customers, one row per line, in the queryset's order.

    An order without lines is one row with empty line columns. The customer's id
    is their identity in the order's store.
    """
    return ExportTable(
        name="orders",
        columns=ORDER_COLUMNS,
        queryset=_with_row_data(
            queryset.filter(customer__in=Customer.objects.processable())
        ),
        rows=_order_rows,
        customer_id=attrgetter("customer_id"),
    )


def order_rows(order_id: int) -> list[dict[str, Any]]:
    """One order's export rows whatever its customer's state ([] if none)."""
    order = _with_row_data(Order.objects.filter(pk=order_id)).first()
    return list(_order_rows(order)) if order is not None else []


def _with_row_data(queryset: QuerySet[Order]) -> QuerySet[Order]:
    identity = identity_external_id(OuterRef("customer_id"), OuterRef("store_id"))
    return (
        queryset.select_related("customer")
        .annotate(export_customer_external_id=identity)
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=OrderLine.objects.order_by("position", "pk"),
                to_attr="export_lines",
            )
        )
    )


def _order_rows(order: Order) -> Iterator[dict[str, Any]]:
    for line in order.export_lines or [None]:
        yield {name: cell(order, line) for name, cell in _ORDER_CELLS.items()}
