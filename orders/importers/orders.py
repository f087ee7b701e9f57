"""Importing an orders CSV file: one service, set-based per batch.

:func:`orders_import` maps the header (:mod:`customers.importers.formats`, kind
``orders``), streams the rows (:mod:`customers.importers.reading`), groups them into
orders, cleans each order with :func:`orders.services.order_upsert`'s helpers
(``_moment``, ``_currency``, ``_money``, ``_quantity``, ``_products_by_sku``,
``TEXT_FIELDS``) and writes each batch in SQL: COPY into temporary staging tables,
then a fixed set of statements that match, insert and update orders, their lines
and their customers.

Decisions, in one place (docs/import-formats.md, "Orders", says the same for users):

* **One transaction per file**, as ``customers_import``: ``on_error="abort"``
  writes batch by batch until the first bad row, then only validates the rest and
  rolls everything back; ``"skip"`` leaves out every order with a bad row (the whole
  order, never some of its lines) and commits the rest; ``dry_run`` writes and rolls
  back, so its counts are exactly those of a real run.
* **Grouping.** Rows are grouped into orders by ``order_id`` (the layout's order
  id; ``order_number`` when the file has no id column). The rows of one order are
  consecutive in every platform's export; an order id that comes back after another
  order is a row error on each of its later rows (``order_repeated``), the first
  group stands. Order-level values are the first non-blank cell of the order's rows
  (Shopify fills them only on the first row, WooCommerce repeats them); each row
  with a line cell is one line, in file order. A batch holds whole orders: the order
  still open when ``batch_size`` rows have been read goes into the next batch.
* **Customers** are matched as ``customers_import`` matches them: the store's
  identity (customer external id; WooCommerce's ``0`` is a guest, no id), else the
  email case-insensitively. A customer the file names but Kartoteka lacks is created
  from the order's email, names (billing first/last name, else the customer or
  billing name split at the first space) and phone. Existing customers keep their
  profile (an order is history, the customers file is the profile): only blank
  names and phone are filled in, never for an erased customer. Every customer with
  an imported order becomes a buyer. A file that names no customer at all
  (PrestaShop's and WooCommerce Analytics' summaries carry only a name): an order
  already stored keeps its customer; a new one gets a customer of its own, made
  from the name, without email (one per order: a name is no key).
* **Fields.** Every field the file has a column for is set from the file (a blank
  cell blanks it, as ``order_upsert`` does); fields no column feeds keep the stored
  value (a new order gets the defaults). Amounts are always set together: missing
  discount and shipping are 0, the subtotal is the sum of the lines (for a file
  without lines, total - shipping + discount), the total subtotal - discount +
  shipping; a line's total is quantity x unit price, its unit price total /
  quantity when only the total is given. Status times (paid, fulfilled = shipped,
  cancelled) left blank keep the stored ones.
* **Statuses** map onto new/paid/shipped/delivered/cancelled/returned through
  :data:`STATUSES` (WooCommerce, PrestaShop in English and Polish, Magento,
  Kartoteka's own names) or, for Shopify, from the financial status, the
  fulfillment status and ``Cancelled at``; an unknown value is a row error naming
  it. A platform's final "complete" state (WooCommerce ``completed``, Magento
  ``complete``) is delivered; Shopify's ``fulfilled`` is shipped.
* **Lines** are linked to the store's products by SKU (product and category, the
  name when the file has none), as ``order_upsert`` links them. A stored order's
  lines are replaced only when they differ from the file's; an order whose rows
  carry no line (summary layouts) keeps its stored lines.
* **Idempotent.** Only orders whose values differ (``IS DISTINCT FROM``) are
  updated, so importing the same file again writes nothing and ``updated_at``
  stays. An order whose customer was erased keeps its customer and its emptied
  addresses and note: an import must not bring the person back.
* **Counts** per order: ``created``, ``updated``, ``unchanged``;
  ``extra["lines"]`` lines written, ``extra["customers_created"]``.
* Not imported (no model field): tax and refunded totals, tags, the marketing
  consent column. No webhooks are sent (the data comes from the shop).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal
from functools import cache, lru_cache, partial
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_countries import countries
from psycopg import sql

from config import rawsql
from customers.importers.customers import (
    ImportResult,
    RowError,
    _column,
    map_source,
)
from customers.importers.formats import (
    ORDER_ADDRESS_PARTS,
    ORDERS,
    Mapping,
)
from customers.importers.reading import (
    CsvFormatError,
    CsvSource,
    clean_text,
    parse_datetime,
    parse_decimal,
)
from customers.models import Customer, CustomerIdentity, Store
from customers.services import _clean_keys, _clean_profile
from customers.signals import customer_activity_changed_send
from customers.validators import normalize_country, normalize_phone
from orders.models import Order, OrderLine
from orders.services import (
    CENT,
    TEXT_FIELDS,
    _currency,
    _moment,
    _money,
    _products_by_sku,
    _quantity,
)

NEW = Order.Status.NEW.value
PAID = Order.Status.PAID.value
SHIPPED = Order.Status.SHIPPED.value
DELIVERED = Order.Status.DELIVERED.value
CANCELLED = Order.Status.CANCELLED.value
RETURNED = Order.Status.RETURNED.value

#: A platform's order status (normalised by :func:`_status_key`) -> Kartoteka's.
STATUSES: dict[str, str] = {
    # Kartoteka's own names, in English and Polish (generic files).
    "new": NEW,
    "nowe": NEW,
    "nowy": NEW,
    "paid": PAID,
    "opłacone": PAID,
    "zapłacone": PAID,
    "shipped": SHIPPED,
    "wysłane": SHIPPED,
    "wysłano": SHIPPED,
    "delivered": DELIVERED,
    "dostarczone": DELIVERED,
    "cancelled": CANCELLED,
    "canceled": CANCELLED,
    "anulowane": CANCELLED,
    "returned": RETURNED,
    "zwrócone": RETURNED,
    # WooCommerce: slugs (wc- dropped) and labels, English and Polish.
    "pending": NEW,
    "pending payment": NEW,
    "on hold": NEW,
    "draft": NEW,
    "checkout draft": NEW,
    "processing": PAID,
    "completed": DELIVERED,
    "refunded": RETURNED,
    "failed": CANCELLED,
    "oczekujące na płatność": NEW,
    "oczekuje na płatność": NEW,
    "wstrzymane": NEW,
    "szkic": NEW,
    "w trakcie realizacji": PAID,
    "zrealizowane": DELIVERED,
    "nieudane": CANCELLED,
    # PrestaShop's default order states, English and Polish back office.
    "payment accepted": PAID,
    "remote payment accepted": PAID,
    "processing in progress": PAID,
    "on backorder (paid)": PAID,
    "on backorder (not paid)": NEW,
    "partial payment accepted": NEW,
    "partial refund": PAID,
    "payment error": CANCELLED,
    "płatność zaakceptowana": PAID,
    "płatność przyjęta": PAID,
    "przygotowanie w toku": PAID,
    "zamówienie oczekujące (opłacone)": PAID,
    "zamówienie oczekujące (nieopłacone)": NEW,
    "brak towaru (opłacone)": PAID,
    "brak towaru (nieopłacone)": NEW,
    "dostarczane": SHIPPED,
    "zwrot": RETURNED,
    "zwrot pieniędzy": RETURNED,
    "zwróconych pieniędzy": RETURNED,
    "częściowy zwrot": PAID,
    "błąd płatności": CANCELLED,
    # Magento: codes and the orders grid's labels.
    "holded": NEW,
    "payment review": NEW,
    "suspected fraud": NEW,
    "fraud": NEW,
    "complete": DELIVERED,
    "closed": RETURNED,
}
# States named after a payment module ("Oczekiwanie na płatność Przelewy24",
# "Płatność PayU przyjęta", "Awaiting bank wire payment").
_STATUS_PREFIXES = (("awaiting ", NEW), ("waiting for ", NEW), ("oczekiwanie ", NEW))
_PAYMENT_STATE_ENDINGS = (
    (" przyjęta", PAID),
    (" zaakceptowana", PAID),
    (" anulowana", CANCELLED),
)
#: Shopify's Financial Status (and a generic file's ``financial_status``).
FINANCIAL_STATUSES: dict[str, str] = {
    "pending": NEW,
    "authorized": NEW,
    "partially paid": NEW,
    "unpaid": NEW,
    "paid": PAID,
    "partially refunded": PAID,
    "refunded": RETURNED,
    "voided": CANCELLED,
    "expired": CANCELLED,
    "oczekujące": NEW,
    "nieopłacone": NEW,
    "opłacone": PAID,
    "zapłacone": PAID,
    "częściowo zwrócone": PAID,
    "zwrócone": RETURNED,
    "anulowane": CANCELLED,
}
#: Shopify's Fulfillment Status; "" means it says nothing about the status.
FULFILLMENT_STATUSES: dict[str, str] = {
    "fulfilled": SHIPPED,
    "partial": SHIPPED,
    "partially fulfilled": SHIPPED,
    "shipped": SHIPPED,
    "delivered": DELIVERED,
    "restocked": RETURNED,
    "returned": RETURNED,
    "unfulfilled": "",
    "unshipped": "",
    "pending": "",
    "open": "",
    "in progress": "",
    "scheduled": "",
    "on hold": "",
    "wysłane": SHIPPED,
    "częściowo wysłane": SHIPPED,
    "dostarczone": DELIVERED,
    "zwrócone": RETURNED,
    "niewysłane": "",
    "w realizacji": "",
}
_STATUS_COLUMNS = ("status", "financial_status", "fulfillment_status", "cancelled_at")

LINE_FIELDS = frozenset(
    {"line_sku", "line_name", "line_quantity", "line_unit_price", "line_total"}
)
LINE_LIMIT = 500  # as order_upsert (and the API) allow
# Status times in the file -> the order's field (fulfilled means shipped).
_TIMES = {
    "paid_at": "paid_at",
    "fulfilled_at": "shipped_at",
    "cancelled_at": "cancelled_at",
}
_EXTERNAL_ID_LIMIT = Order._meta.get_field("external_id").max_length
_EMAIL_LIMIT = Customer._meta.get_field("email").max_length
_SKU_LIMIT = OrderLine._meta.get_field("sku").max_length
_NAME_LIMIT = OrderLine._meta.get_field("name").max_length


def orders_import(
    *,
    source: CsvSource,
    store: Store,
    format: str = "auto",
    dry_run: bool = False,
    on_error: Literal["skip", "abort"] = "abort",
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    actor: Any = None,
) -> ImportResult:
    """Import an orders CSV into ``store``: orders, lines, buyers; see the module."""
    if on_error not in ("skip", "abort"):
        raise ValueError("on_error must be 'skip' or 'abort'")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.monotonic()
    mapping = map_source(source, format, ORDERS)
    result = ImportResult.of(source, mapping, dry_run=dry_run)
    result.extra.update(lines=0, customers_created=0)
    cleaner = _Cleaner(store=store, mapping=mapping, errors=result.errors)
    writer = _BatchWriter(store=store, mapping=mapping, result=result)
    with transaction.atomic(), rawsql.immediate_constraints():
        writer.prepare()
        try:
            for groups in _groups(source, mapping, result, batch_size, progress):
                orders = cleaner.clean(groups)
                if on_error == "abort" and result.errors:
                    continue  # validate the rest, write nothing more
                writer.write(orders)
        except CsvFormatError as error:
            raise ValidationError(
                {"source": ValidationError(error.message, code=error.code)}
            ) from None
        writer.drop()
        result.aborted = on_error == "abort" and bool(result.errors)
        if result.aborted:
            result.created = result.updated = result.unchanged = 0
            result.extra = {"lines": 0, "customers_created": 0}
        if result.aborted or dry_run:
            transaction.set_rollback(True)
    result.errors.sort(key=lambda error: error.line)
    result.seconds = time.monotonic() - started
    return result


# --- Reading and grouping ------------------------------------------------------------


@dataclass
class _Group:
    """The rows of one order as read: ``(line, canonical values)`` in file order."""

    external_id: str
    rows: list[tuple[int, dict[str, str]]]
    # The line where this order id was first seen, when it came back later.
    repeats: int | None = None


def _groups(
    source: CsvSource,
    mapping: Mapping,
    result: ImportResult,
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> Iterator[list[_Group]]:
    """Batches of whole orders, in file order, after about ``batch_size`` rows each.

    The order still open at a batch's end (its next row may continue it) is carried
    into the next batch. Rows without an order id are reported here.
    """
    id_column = _id_column(mapping)
    seen: dict[str, int] = {}  # order id -> line where its rows began
    done: list[_Group] = []
    current: _Group | None = None
    rows_in_batch = 0
    for line, row in source.rows():
        result.rows += 1
        rows_in_batch += 1
        values = mapping.apply(list(row.values()))
        external_id = _text(values.get("order_id"))
        if not external_id:
            result.errors.append(
                RowError(
                    line=line,
                    column=id_column,
                    value="",
                    reason=_("The order id is missing."),
                    code="required",
                )
            )
        elif current is not None and external_id == current.external_id:
            current.rows.append((line, values))
        else:
            if current is not None:
                done.append(current)
            current = _Group(external_id, [(line, values)], seen.get(external_id))
            seen.setdefault(external_id, line)
        if rows_in_batch >= batch_size and done:
            yield done
            done = []
            rows_in_batch = len(current.rows) if current is not None else 0
            if progress:
                progress(result.rows)
    if current is not None:
        done.append(current)
    if done:
        yield done
    if progress:
        progress(result.rows)


def _id_column(mapping: Mapping) -> str:
    """The column the order id comes from (order_number's when there is no id)."""
    name = "order_id" if "order_id" in mapping.positions else "order_number"
    return _column(mapping, name)


# --- Cleaning ------------------------------------------------------------------------


@dataclass
class _Customer:
    """The customer an order names: its keys and what a new customer is made of."""

    cidx: int
    external_id: str | None
    email: str | None
    first_name: str
    last_name: str
    phone: str
    guest_order: int | None = None  # the order's idx, for a customer without keys


@dataclass
class _Order:
    external_id: str
    values: dict[str, Any]
    lines: list[dict[str, Any]]
    customer: _Customer | None = None
    customer_key: tuple[str, str] = ("", "")
    customer_data: dict[str, Any] = field(default_factory=dict)


class _Cleaner:
    """Turns groups of rows into cleaned orders with order_upsert's rules."""

    def __init__(
        self, *, store: Store, mapping: Mapping, errors: list[RowError]
    ) -> None:
        self.store = store
        self.errors = errors
        self.zone = timezone.get_default_timezone()
        self.columns = {name: _column(mapping, name) for name in mapping.positions}
        self.columns["order_id"] = _id_column(mapping)
        self.has_lines = mapping.line_items and any(
            name in mapping.positions for name in LINE_FIELDS
        )
        # Memos for this import: prices, quantities, a customer's email and phone
        # repeat across rows. Per import, so messages keep the import's language.
        self.money = lru_cache(maxsize=4096)(partial(_attempt, _parse_money))
        self.quantity = lru_cache(maxsize=1024)(partial(_attempt, _parse_quantity))
        self.phone = lru_cache(maxsize=65536)(partial(_attempt, normalize_phone))
        self.address_phone = lru_cache(maxsize=65536)(_phone)
        self.keys = lru_cache(maxsize=65536)(self._keys)

    def clean(self, groups: list[_Group]) -> list[_Order]:
        """The batch's good orders; every bad row's errors go to ``errors``."""
        skus = {
            _text(values.get("line_sku"))
            for group in groups
            for _line, values in group.rows
        } - {""}
        products = _products_by_sku(self.store, skus)
        orders = []
        for group in groups:
            order = self._order(group, products)
            if order is not None:
                orders.append(order)
        return orders

    def _order(  # noqa: C901 - one pass over the order's fields
        self, group: _Group, products: dict[str, tuple]
    ) -> _Order | None:
        found: list[RowError] = []
        first = _first_values(group)

        def fail(
            name: str,
            error: Exception | str,
            code: str = "invalid",
            *,
            line: int | None = None,
            value: str | None = None,
        ) -> None:
            if isinstance(error, ValidationError):
                reason = " ".join(error.messages)
                code = getattr(error, "code", None) or code
            else:
                reason = str(error)
            raw, at = first.get(name, ("", group.rows[0][0]))
            found.append(
                RowError(
                    line=line if line is not None else at,
                    column=self.columns.get(name, name),
                    value=value if value is not None else raw,
                    reason=reason,
                    code=code,
                )
            )

        if group.repeats is not None:
            for line, values in group.rows:
                fail(
                    "order_id",
                    _(
                        "Order %(order)s already appeared at line %(line)d; the rows "
                        "of one order must follow each other."
                    )
                    % {"order": group.external_id, "line": group.repeats},
                    "order_repeated",
                    line=line,
                    value=values.get("order_id", ""),
                )
            self.errors.extend(found)
            return None

        text = {name: _text(raw) for name, (raw, _line) in first.items()}
        values: dict[str, Any] = {}
        if len(group.external_id) > _EXTERNAL_ID_LIMIT:
            fail(
                "order_id",
                _("At most %(limit)d characters.") % {"limit": _EXTERNAL_ID_LIMIT},
                "too_long",
            )
        values["number"] = text.get("order_number") or group.external_id
        for name in ("payment_method", "shipping_method", "coupon_code"):
            values[name] = text.get(name, "")
        number_from = "order_number" if text.get("order_number") else "order_id"
        for name in ("number", "payment_method", "shipping_method", "coupon_code"):
            if len(values[name]) > TEXT_FIELDS[name]:
                fail(
                    number_from if name == "number" else name,
                    _("At most %(limit)d characters.") % {"limit": TEXT_FIELDS[name]},
                    "too_long",
                )
        values["note"] = text.get("note", "")

        try:
            placed = self._datetime(text.get("placed_at"))
            values["placed_at"] = _moment(placed, allow_none=False)
        except ValueError as error:
            fail("placed_at", str(error), "invalid_date")
        except ValidationError as error:
            fail("placed_at", error)
        for name, target in _TIMES.items():
            try:
                values[target] = self._datetime(text.get(name))
            except ValueError as error:
                fail(name, str(error), "invalid_date")
        try:
            values["currency"] = _currency(text.get("currency"), self.store.currency)
        except ValidationError as error:
            fail("currency", error)
        for name in ("subtotal", "discount_total", "shipping_total", "total"):
            values[name], error = self.money(text.get(name))
            if error is not None:
                fail(name, error)
        status = _status(text, fail)
        values["status"] = status or NEW
        for kind in ("billing", "shipping"):
            values[f"{kind}_address"] = _address(text, kind, self.address_phone)

        lines = self._lines(group, products, fail) if self.has_lines else []
        customer = self._customer(text, fail)
        if found:
            self.errors.extend(found)
            return None

        for name in ("discount_total", "shipping_total"):
            if values[name] is None:
                values[name] = Decimal("0")
        if values["subtotal"] is None:
            if lines or values["total"] is None:
                values["subtotal"] = sum((line["total"] for line in lines), Decimal(0))
            else:  # a summary without lines: what the total says the goods cost
                values["subtotal"] = max(
                    values["total"]
                    - values["shipping_total"]
                    + values["discount_total"],
                    Decimal("0"),
                )
        if values["total"] is None:
            values["total"] = max(
                values["subtotal"]
                - values["discount_total"]
                + values["shipping_total"],
                Decimal("0"),
            )
        key, data = customer
        return _Order(
            external_id=group.external_id,
            values=values,
            lines=lines,
            customer_key=key,
            customer_data=data,
        )

    def _datetime(self, text: str | None) -> datetime | None:
        return _parse_datetime(text, self.zone) if text else None

    def _lines(
        self, group: _Group, products: dict[str, tuple], fail: Callable
    ) -> list[dict[str, Any]]:
        """The order's lines: one per row with a line cell, as in _clean_lines."""
        lines: list[dict[str, Any]] = []
        for line, values in group.rows:
            if LINE_FIELDS.isdisjoint(values):  # apply() leaves blank cells out
                continue
            position = len(lines)

            def bad(
                name: str, error: Any, code: str = "invalid", line=line, values=values
            ) -> None:
                fail(name, error, code, line=line, value=values.get(name, ""))

            if position == LINE_LIMIT:
                bad(
                    "line_name" if "line_name" in self.columns else "line_sku",
                    _("At most %(limit)d lines.") % {"limit": LINE_LIMIT},
                    "too_many",
                )
            sku = _text(values.get("line_sku"))
            product_id, product_name, category_id = products.get(sku, (None, "", None))
            name = _text(values.get("line_name")) or product_name
            if not name:
                bad(
                    "line_name" if "line_name" in self.columns else "line_sku",
                    _("Give the product name or a known SKU."),
                    "required",
                )
            row: dict[str, Any] = {
                "position": position,
                "product_id": product_id,
                "category_id": category_id,
                "sku": sku[:_SKU_LIMIT],
                "name": name[:_NAME_LIMIT],
            }
            amounts: dict[str, Any] = {}
            for field_name, parse in (
                ("line_quantity", self.quantity),
                ("line_unit_price", self.money),
                ("line_total", self.money),
            ):
                amount, error = parse(values.get(field_name))
                if error is None:
                    amounts[field_name] = amount
                else:
                    bad(field_name, error)
            quantity = amounts.get("line_quantity")
            unit_price = amounts.get("line_unit_price")
            total = amounts.get("line_total")
            if "line_unit_price" in amounts and unit_price is None and total is None:
                bad(
                    "line_unit_price"
                    if "line_unit_price" in self.columns
                    else "line_total",
                    _("Give the unit price or the line's total."),
                    "required",
                )
            if quantity is not None and (unit_price is not None or total is not None):
                if unit_price is None:
                    unit_price = (total / quantity).quantize(CENT)
                if total is None:
                    total = (quantity * unit_price).quantize(CENT)
                row.update(quantity=quantity, unit_price=unit_price, total=total)
            lines.append(row)
        return lines

    def _customer(
        self, text: dict[str, str], fail: Callable
    ) -> tuple[tuple[str, str], dict[str, Any]]:
        """The key that finds the order's customer and the data of a new one."""
        external_id = text.get("customer_external_id") or None
        if external_id == "0":  # WooCommerce: a guest checkout
            external_id = None
        email = text.get("email") or None
        if email and len(email) > _EMAIL_LIMIT:
            fail("email", _("At most %(limit)d characters.") % {"limit": _EMAIL_LIMIT})
            email = None
        if email or external_id:
            keys, error = self.keys(external_id, email)
            if error is None:
                external_id, email = keys
            else:
                for name, errs in error.error_dict.items():
                    for err in errs:
                        fail(
                            "customer_external_id" if name == "external_id" else name,
                            err,
                        )
        phone = ""
        if text.get("phone"):
            phone, error = self.phone(text["phone"])
            if error is not None:
                fail("phone", error)
        else:
            phone = next(
                (
                    normal
                    for name in ("billing_phone", "shipping_phone")
                    if (normal := self.address_phone(text.get(name)))
                ),
                "",
            )
        first_name, last_name, source = _names(text)
        try:
            names = _clean_profile({"first_name": first_name, "last_name": last_name})
        except ValidationError as error:
            for errs in error.error_dict.values():
                for err in errs:
                    fail(source, err)
            names = {}
        if external_id:
            key = ("id", external_id)
        elif email:
            key = ("email", email.upper())
        else:
            key = ("", "")  # names no customer: a guest of this order
        data = {
            "external_id": external_id,
            "email": email,
            "first_name": names.get("first_name", ""),
            "last_name": names.get("last_name", ""),
            "phone": phone,
        }
        return key, data

    def _keys(
        self, external_id: str | None, email: str | None
    ) -> tuple[tuple[str | None, str | None] | None, ValidationError | None]:
        """customer_upsert's rules for the keys: (external id, email) or the error."""
        try:
            external_id, email, _ignored = _clean_keys(
                store=self.store, external_id=external_id, email=email, phone=None
            )
        except ValidationError as error:
            return None, error
        return (external_id, email), None


def _attempt(parse: Callable[[Any], Any], text: Any) -> tuple[Any, Exception | None]:
    """``(parse(text), None)``, or ``(None, error)``: a result a memo can keep."""
    try:
        return parse(text), None
    except (ValueError, ValidationError) as error:
        return None, error


def _parse_money(text: str | None) -> Decimal | None:
    return _money(parse_decimal(text), allow_none=True)


def _parse_quantity(text: str | None) -> Decimal:
    return _quantity(parse_decimal(text))


# Magento's grid export (Ui\Model\Export\MetadataProvider) writes dates as PHP's
# "M j, Y h:i:s A" in the admin's time zone: "Mar 1, 2024 2:30:00 PM" (some versions
# "H:i:s A", a 24-hour clock with AM/PM).
_MAGENTO_DATE_RE = re.compile(
    r"(?P<month>[A-Za-z]{3}) (?P<day>\d{1,2}), (?P<year>\d{4}),? "
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))? ?(?P<half>AM|PM)?",
    re.IGNORECASE,
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun")
        + ("jul", "aug", "sep", "oct", "nov", "dec"),
        1,
    )
}


def _parse_datetime(text: str, zone: tzinfo) -> datetime | None:
    """reading.parse_datetime, and Magento's grid dates; ValueError if neither."""
    try:
        return parse_datetime(text, default_tz=zone)
    except ValueError:
        match = _MAGENTO_DATE_RE.fullmatch(clean_text(text))
        month = _MONTHS.get(match["month"].casefold()) if match else None
        if match is None or month is None:
            raise
    hour = int(match["hour"])
    half = (match["half"] or "").upper()
    if half and hour <= 12:
        hour = hour % 12 + (12 if half == "PM" else 0)
    try:
        return datetime(
            int(match["year"]),
            month,
            int(match["day"]),
            hour,
            int(match["minute"]),
            int(match["second"] or 0),
            tzinfo=zone,
        )
    except ValueError:
        raise ValueError(
            _("Not a valid date and time: %(value)s") % {"value": text}
        ) from None


def _text(value: str | None) -> str:
    """clean_text for a cell Mapping.apply has stripped already (a faster path)."""
    if not value:
        return ""
    return clean_text(value) if value[0] == "'" else value


def _first_values(group: _Group) -> dict[str, tuple[str, int]]:
    """Order-level fields: the first non-blank cell of the order's rows, its line."""
    first: dict[str, tuple[str, int]] = {}
    for line, values in group.rows:
        for name, value in values.items():
            if name not in first and name not in LINE_FIELDS:
                first[name] = (value, line)
    return first


def _status_key(text: str) -> str:
    key = text.casefold().strip()
    if key.startswith("wc-"):
        key = key[3:]
    return " ".join(key.replace("_", " ").replace("-", " ").split())


def _platform_status(text: str) -> str | None:
    key = _status_key(text)
    if key in STATUSES:
        return STATUSES[key]
    for prefix, status in _STATUS_PREFIXES:
        if key.startswith(prefix):
            return status
    if key.startswith("płatność ") or key.endswith(" payment accepted"):
        for ending, status in _PAYMENT_STATE_ENDINGS:
            if key.endswith(ending):
                return status
        if key.endswith(" payment accepted"):
            return PAID
    return None


def _status(text: dict[str, str], fail: Callable) -> str | None:
    """The Kartoteka status of an order's status cells; None after an error.

    A status column (WooCommerce, PrestaShop, Magento, generic) decides alone.
    Otherwise Shopify's columns: cancelled if ``Cancelled at`` is set, refunds and
    voids from the financial status, then what the fulfillment status says, then
    the financial status (paid or new).
    """

    def unknown(name: str) -> None:
        fail(
            name,
            _("Unknown order status: %(value)s.") % {"value": text[name]},
            "unknown_status",
        )

    if text.get("status"):
        status = _platform_status(text["status"])
        if status is None:
            unknown("status")
        return status
    financial = fulfillment = ""
    if text.get("financial_status"):
        financial = FINANCIAL_STATUSES.get(_status_key(text["financial_status"]))
        if financial is None:
            unknown("financial_status")
    if text.get("fulfillment_status"):
        fulfillment = FULFILLMENT_STATUSES.get(_status_key(text["fulfillment_status"]))
        if fulfillment is None:
            unknown("fulfillment_status")
    if financial is None or fulfillment is None:
        return None
    if text.get("cancelled_at"):
        return CANCELLED
    if financial in (RETURNED, CANCELLED):
        return financial
    return fulfillment or financial or NEW


def _names(text: dict[str, str]) -> tuple[str, str, str]:
    """First and last name for a new customer, and the column they came from."""
    for kind in ("billing", "shipping"):
        first, last = text.get(f"{kind}_first_name"), text.get(f"{kind}_last_name")
        if first or last:
            return first or "", last or "", f"{kind}_first_name"
    for name in ("customer_name", "billing_name", "shipping_name"):
        if text.get(name):
            first, _space, last = text[name].partition(" ")
            return first, last.strip(), name
    return "", "", "customer_name"


def _phone(text: str | None) -> str:
    """An address's phone in E.164, or "" when it is not a usable number."""
    if not text:
        return ""
    try:
        return normalize_phone(text)
    except ValidationError:
        return ""


def _address(
    text: dict[str, str], kind: str, phone: Callable[[str], str] = _phone
) -> dict[str, str]:
    """The order's address snapshot, keyed as order_upsert and the API keep it.

    Only the parts the file gives; the country as its ISO code when recognised
    (English or Polish name), else as written; the phone in E.164 when it is one.
    """
    address = {}
    for part in ORDER_ADDRESS_PARTS:
        value = text.get(f"{kind}_{part}")
        if not value:
            continue
        if part == "country":
            value = _country(value)
        elif part == "phone":
            value = phone(value) or value
        address[part] = value
    return address


@lru_cache(maxsize=1024)
def _country(value: str) -> str:
    try:
        return normalize_country(value)
    except ValidationError:
        return countries.by_name(value, language="pl") or value


# --- Writing -------------------------------------------------------------------------

_STAGE = "import_order_stage"
_STAGE_LINE = "import_order_stage_line"
_STAGE_CUSTOMER = "import_order_stage_customer"

#: Order fields the import sets, always (amounts move together, see the module).
ALWAYS_SET = (
    "customer",
    "placed_at",
    "subtotal",
    "discount_total",
    "shipping_total",
    "total",
)
#: Order fields set only when the file has a column for them: field -> columns.
SET_WHEN_GIVEN = {
    "number": ("order_number",),
    "status": _STATUS_COLUMNS,
    "currency": ("currency",),
    "payment_method": ("payment_method",),
    "shipping_method": ("shipping_method",),
    "coupon_code": ("coupon_code",),
    "note": ("note",),
    "billing_address": tuple(f"billing_{part}" for part in ORDER_ADDRESS_PARTS),
    "shipping_address": tuple(f"shipping_{part}" for part in ORDER_ADDRESS_PARTS),
}
#: Status times: a blank cell keeps the stored time.
TIME_FIELDS = ("paid_at", "shipped_at", "cancelled_at")
_STAGED_VALUES = (
    "number",
    "status",
    "placed_at",
    *TIME_FIELDS,
    "currency",
    "subtotal",
    "discount_total",
    "shipping_total",
    "total",
    "payment_method",
    "shipping_method",
    "coupon_code",
    "billing_address",
    "shipping_address",
    "note",
)
_LINE_COLUMNS = (
    "position",
    "product_id",
    "category_id",
    "sku",
    "name",
    "quantity",
    "unit_price",
    "total",
)


#: Rows inserted before the tables' statistics are refreshed, and again each time
#: the count doubles (see _BatchWriter.refresh_statistics).
STATISTICS_REFRESH_ROWS = 20_000


class _BatchWriter:
    """Writes batches of cleaned orders in SQL through temporary staging tables."""

    def __init__(self, *, store: Store, mapping: Mapping, result: ImportResult) -> None:
        self.store = store
        self.result = result
        self.inserted = 0  # orders, lines and customers this import inserted
        self.analyzed_at = 0
        given = frozenset(
            name
            for name, columns in SET_WHEN_GIVEN.items()
            if any(column in mapping.positions for column in columns)
        )
        self.statements = _statements(given)

    def prepare(self) -> None:
        with rawsql.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} ("  # noqa: S608
                " idx int PRIMARY KEY, external_id text NOT NULL, cidx int,"
                " number text, status text, placed_at timestamptz,"
                " paid_at timestamptz, shipped_at timestamptz,"
                " cancelled_at timestamptz, currency text, subtotal numeric,"
                " discount_total numeric, shipping_total numeric, total numeric,"
                " payment_method text, shipping_method text, coupon_code text,"
                " billing_address jsonb, shipping_address jsonb, note text,"
                " has_lines boolean NOT NULL, order_id bigint, old_customer_id bigint,"
                " erased boolean NOT NULL DEFAULT false, customer_id bigint,"
                " is_new boolean NOT NULL DEFAULT false,"
                " lines_changed boolean NOT NULL DEFAULT false)"
            )
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_LINE} ("  # noqa: S608
                " oidx int NOT NULL, position int NOT NULL, product_id bigint,"
                " category_id bigint, sku text, name text, quantity numeric,"
                " unit_price numeric, total numeric, PRIMARY KEY (oidx, position))"
            )
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_CUSTOMER} ("  # noqa: S608
                " cidx int PRIMARY KEY, external_id text, email text,"
                " first_name text, last_name text, phone text, guest_order int,"
                " customer_id bigint, is_new boolean NOT NULL DEFAULT false)"
            )
            cursor.execute(f"TRUNCATE {_STAGE}, {_STAGE_LINE}, {_STAGE_CUSTOMER}")

    def drop(self) -> None:
        with rawsql.cursor() as cursor:
            cursor.execute(
                f"DROP TABLE IF EXISTS {_STAGE}, {_STAGE_LINE}, {_STAGE_CUSTOMER}"
            )

    def write(self, orders: list[_Order]) -> None:
        if not orders:
            return
        customers = _batch_customers(orders)
        statements = self.statements
        store = {"store": self.store.pk}
        with rawsql.cursor() as cursor:
            cursor.execute(f"TRUNCATE {_STAGE}, {_STAGE_LINE}, {_STAGE_CUSTOMER}")
            _copy(cursor, orders, customers)
            # Temporary tables get no statistics by themselves; without them the
            # planner guesses a few rows and picks nested loops over big tables.
            cursor.execute(f"ANALYZE {_STAGE}, {_STAGE_LINE}, {_STAGE_CUSTOMER}")
            cursor.execute(statements["match_orders"], store)
            cursor.execute(statements["keep_erased"])
            cursor.execute(statements["match_identity"], store)
            cursor.execute(statements["match_email"])
            cursor.execute(statements["keep_guest"])
            cursor.execute(statements["drop_unused_customers"])
            cursor.execute(statements["allocate_by_email"])
            cursor.execute(statements["allocate_customers"])
            cursor.execute(statements["insert_customers"], _defaults(Customer))
            cursor.execute(statements["identities"], store)
            cursor.execute(statements["update_customers"])
            cursor.execute(statements["order_customers"])
            cursor.execute(statements["lines_changed"])
            cursor.execute(statements["allocate_orders"])
            cursor.execute(
                statements["insert_orders"], [self.store.pk, *_defaults(Order)]
            )
            updated = {idx for (idx,) in cursor.execute(statements["update_orders"])}
            cursor.execute(statements["delete_lines"])
            cursor.execute(statements["insert_lines"])
            self.result.extra["lines"] += cursor.rowcount
            (customers_created,) = cursor.execute(
                f"SELECT count(*) FROM {_STAGE_CUSTOMER} WHERE is_new"  # noqa: S608
            ).fetchone()
            outcome = cursor.execute(
                f"SELECT idx, is_new, customer_id, old_customer_id"  # noqa: S608
                f" FROM {_STAGE}"
            ).fetchall()
            changed_customers = set()
            for idx, is_new, customer_id, old_customer_id in outcome:
                if is_new or idx in updated:
                    changed_customers.update((customer_id, old_customer_id))
            changed_customers.discard(None)
            customer_activity_changed_send(sender=Order, customer_ids=changed_customers)
        result = self.result
        result.extra["customers_created"] += customers_created
        for idx, is_new, _customer, _old in outcome:
            if is_new:
                result.created += 1
            elif idx in updated:
                result.updated += 1
            else:
                result.unchanged += 1
        self.inserted = (
            result.created + result.extra["lines"] + result.extra["customers_created"]
        )
        if self.inserted >= max(2 * self.analyzed_at, STATISTICS_REFRESH_ROWS):
            self.refresh_statistics()
            self.analyzed_at = self.inserted

    def refresh_statistics(self) -> None:
        """ANALYZE the tables this import is filling, if that takes no waiting.

        A shop's first import fills tables the planner believes (nearly) empty: it
        then hash-joins each batch against a full scan of them, and the import
        slows down as it goes. ANALYZE counts the rows this transaction inserted.
        Its lock is held until the import commits: when another import or
        autovacuum holds it, the refresh is skipped rather than waited for.
        """
        rawsql.analyze((Order, OrderLine, Customer, CustomerIdentity))


def _batch_customers(orders: list[_Order]) -> list[_Customer]:
    """One customer record per key of the batch (the first order's data wins)."""
    by_key: dict[tuple[str, str], _Customer] = {}
    customers: list[_Customer] = []
    for idx, order in enumerate(orders):
        key = order.customer_key
        customer = by_key.get(key) if key[0] else None
        if customer is None:
            data = order.customer_data
            customer = _Customer(
                cidx=len(customers),
                external_id=data["external_id"],
                email=data["email"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                phone=data["phone"],
                guest_order=None if key[0] else idx,
            )
            customers.append(customer)
            if key[0]:
                by_key[key] = customer
        order.customer = customer
    return customers


def _copy(cursor: Any, orders: list[_Order], customers: list[_Customer]) -> None:
    with cursor.copy(
        f"COPY {_STAGE} (idx, external_id, cidx, has_lines, "  # noqa: S608
        f"{', '.join(_STAGED_VALUES)}) FROM STDIN"
    ) as copy:
        for idx, order in enumerate(orders):
            values = order.values
            copy.write_row(
                (
                    idx,
                    order.external_id,
                    order.customer.cidx,
                    bool(order.lines),
                    *(
                        json.dumps(values[name], ensure_ascii=False)
                        if name.endswith("_address")
                        else values[name]
                        for name in _STAGED_VALUES
                    ),
                )
            )
    if any(order.lines for order in orders):
        with cursor.copy(
            f"COPY {_STAGE_LINE} (oidx, {', '.join(_LINE_COLUMNS)})"  # noqa: S608
            " FROM STDIN"
        ) as copy:
            for idx, order in enumerate(orders):
                for line in order.lines:
                    copy.write_row((idx, *(line[name] for name in _LINE_COLUMNS)))
    with cursor.copy(
        f"COPY {_STAGE_CUSTOMER} (cidx, external_id, email, first_name,"  # noqa: S608
        " last_name, phone, guest_order) FROM STDIN"
    ) as copy:
        for c in customers:
            copy.write_row(
                (
                    c.cidx,
                    c.external_id,
                    c.email,
                    c.first_name,
                    c.last_name,
                    c.phone,
                    c.guest_order,
                )
            )


# Columns each INSERT sets itself; every other column gets the model's default.
_CUSTOMER_SET = ("id", "email", "first_name", "last_name", "phone", "status")
_ORDER_SET = ("id", "store", "external_id", *ALWAYS_SET, *_STAGED_VALUES)


def _default_fields(model: type) -> list:
    given = {Customer: _CUSTOMER_SET, Order: _ORDER_SET}[model]
    return [
        f
        for f in model._meta.concrete_fields
        if f.name not in given
        and not getattr(f, "auto_now", False)
        and not getattr(f, "auto_now_add", False)
    ]


def _auto_fields(model: type) -> list:
    return [
        f
        for f in model._meta.concrete_fields
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
    ]


def _defaults(model: type) -> list:
    return [
        f.get_db_prep_save(f.get_default(), connection) for f in _default_fields(model)
    ]


@cache
def _statements(given: frozenset[str]) -> dict[str, str]:
    """The batch's SQL, in order; ``given`` names the optional fields the file sets."""
    orders = rawsql.table(Order)
    lines = rawsql.table(OrderLine)
    customers = rawsql.table(Customer)
    identities = rawsql.table(CustomerIdentity)
    stage = sql.Identifier(_STAGE)
    stage_line = sql.Identifier(_STAGE_LINE)
    stage_customer = sql.Identifier(_STAGE_CUSTOMER)

    def column(name: str) -> sql.Identifier:
        return sql.Identifier(Order._meta.get_field(name).column)

    def joined(parts: list[sql.Composable]) -> sql.Composable:
        return sql.SQL(", ").join(parts)

    compared = [*ALWAYS_SET, *(name for name in SET_WHEN_GIVEN if name in given)]
    staged = {name: sql.SQL("s.{}").format(sql.Identifier(name)) for name in compared}
    staged["customer"] = sql.SQL("s.customer_id")
    order_inserted = [
        ("store", sql.SQL("%s")),
        ("external_id", sql.SQL("s.external_id")),
        ("customer", sql.SQL("s.customer_id")),
        *(
            (name, sql.SQL("s.{}").format(sql.Identifier(name)))
            for name in _STAGED_VALUES
        ),
    ]
    order_defaults = _default_fields(Order)
    customer_defaults = _default_fields(Customer)
    line_differs = sql.SQL(" OR ").join(
        sql.SQL("c.{c} IS DISTINCT FROM n.{c}").format(c=sql.Identifier(c))
        for c in _LINE_COLUMNS
        if c != "position"
    )
    line_fields = [f for f in OrderLine._meta.concrete_fields if not f.primary_key]
    line_sources = {
        "order": sql.SQL("s.order_id"),
        **{c: sql.SQL("n.{}").format(sql.Identifier(c)) for c in _LINE_COLUMNS},
        "product": sql.SQL("n.product_id"),
        "category": sql.SQL("n.category_id"),
    }
    # Lookups in the big tables go through LATERAL subqueries: one index probe
    # per row of the batch, whatever the planner believes about the table's size
    # (a hash join against a full scan grows with the table, not the batch).
    # LIMIT 1 (the keys are unique) keeps the planner from flattening them.
    statements = {
        "match_orders": sql.SQL(
            "UPDATE {stage} s SET order_id = m.id, old_customer_id = m.customer_id,"
            " erased = m.erased FROM (SELECT t.idx, o.id, o.customer_id,"
            " c.erased_at IS NOT NULL AS erased FROM {stage} t CROSS JOIN LATERAL"
            " (SELECT id, customer_id FROM {orders}"
            " WHERE store_id = %(store)s AND external_id = t.external_id LIMIT 1) o"
            " JOIN {customers} c ON c.id = o.customer_id) m WHERE m.idx = s.idx"
        ),
        # The person was erased: the order keeps its customer and its emptied
        # addresses and note, whatever the file says.
        "keep_erased": sql.SQL(
            "UPDATE {stage} s SET cidx = NULL, customer_id = s.old_customer_id,"
            " billing_address = o.billing_address,"
            " shipping_address = o.shipping_address, note = o.note"
            " FROM {orders} o WHERE s.erased AND o.id = s.order_id"
        ),
        # Identity first, then the email (the same expression as the unique index).
        "match_identity": sql.SQL(
            "UPDATE {stage_customer} k SET customer_id = m.customer_id"
            " FROM (SELECT t.cidx, i.customer_id FROM {stage_customer} t"
            " CROSS JOIN LATERAL (SELECT customer_id FROM {identities}"
            " WHERE store_id = %(store)s AND external_id = t.external_id LIMIT 1) i"
            " WHERE t.external_id IS NOT NULL) m WHERE m.cidx = k.cidx"
        ),
        "match_email": sql.SQL(
            "UPDATE {stage_customer} k SET customer_id = m.id"
            " FROM (SELECT t.cidx, c.id FROM {stage_customer} t"
            " CROSS JOIN LATERAL (SELECT id FROM {customers}"
            " WHERE UPPER(email) = UPPER(t.email) LIMIT 1) c"
            " WHERE t.customer_id IS NULL AND t.email IS NOT NULL) m"
            " WHERE m.cidx = k.cidx"
        ),
        # A file naming no customer: a stored order keeps the customer it has.
        "keep_guest": sql.SQL(
            "UPDATE {stage_customer} k SET customer_id = s.old_customer_id"
            " FROM {stage} s WHERE k.guest_order = s.idx"
            " AND s.old_customer_id IS NOT NULL"
        ),
        "drop_unused_customers": sql.SQL(
            "DELETE FROM {stage_customer} k WHERE NOT EXISTS"
            " (SELECT 1 FROM {stage} s WHERE s.cidx = k.cidx)"
        ),
        # Records of one new email (under several store ids) make one customer.
        # MATERIALIZED: nextval() runs once per email, however the join is planned.
        "allocate_by_email": sql.SQL(
            "WITH g AS MATERIALIZED (SELECT UPPER(email) AS email,"
            " min(cidx) AS first,"
            " nextval(pg_get_serial_sequence({customer_table}, 'id')) AS id"
            " FROM {stage_customer} WHERE customer_id IS NULL AND email IS NOT NULL"
            " GROUP BY UPPER(email))"
            " UPDATE {stage_customer} k"
            " SET customer_id = g.id, is_new = (k.cidx = g.first)"
            " FROM g WHERE k.customer_id IS NULL AND UPPER(k.email) = g.email"
        ),
        "allocate_customers": sql.SQL(
            "UPDATE {stage_customer} SET is_new = true,"
            " customer_id = nextval(pg_get_serial_sequence({customer_table}, 'id'))"
            " WHERE customer_id IS NULL"
        ),
        "insert_customers": sql.SQL(
            "INSERT INTO {customers} (id, email, first_name, last_name, phone, status,"
            " {customer_defaults}, {customer_auto})"
            " SELECT k.customer_id, k.email, k.first_name, k.last_name, k.phone,"
            " {buyer}, {customer_default_values}, {customer_now}"
            " FROM {stage_customer} k WHERE k.is_new ORDER BY k.cidx"
        ),
        "identities": sql.SQL(
            "INSERT INTO {identities} (store_id, external_id, customer_id, created_at)"
            " SELECT %(store)s, k.external_id, k.customer_id, now()"
            " FROM {stage_customer} k WHERE k.external_id IS NOT NULL ORDER BY k.cidx"
            " ON CONFLICT (store_id, external_id) DO NOTHING"
        ),
        # Ordering makes a lead a buyer; blank names and phone are filled in (never
        # for an erased customer). The batch's first record of a customer counts.
        "update_customers": sql.SQL(
            "UPDATE {customers} c SET status = {buyer},"
            " first_name = CASE WHEN c.first_name = '' AND c.erased_at IS NULL"
            " THEN k.first_name ELSE c.first_name END,"
            " last_name = CASE WHEN c.last_name = '' AND c.erased_at IS NULL"
            " THEN k.last_name ELSE c.last_name END,"
            " phone = CASE WHEN c.phone = '' AND c.erased_at IS NULL"
            " THEN k.phone ELSE c.phone END,"
            " updated_at = now()"
            " FROM (SELECT DISTINCT ON (customer_id) customer_id, first_name,"
            " last_name, phone FROM {stage_customer} WHERE NOT is_new"
            " ORDER BY customer_id, cidx) k"
            " WHERE c.id = k.customer_id AND (c.status <> {buyer}"
            " OR (c.erased_at IS NULL AND ((c.first_name = '' AND k.first_name <> '')"
            " OR (c.last_name = '' AND k.last_name <> '')"
            " OR (c.phone = '' AND k.phone <> ''))))"
        ),
        "order_customers": sql.SQL(
            "UPDATE {stage} s SET customer_id = k.customer_id"
            " FROM {stage_customer} k WHERE s.cidx = k.cidx"
        ),
        # A stored order's lines against the file's, position by position.
        "lines_changed": sql.SQL(
            "UPDATE {stage} SET lines_changed = true WHERE idx IN ("
            " SELECT COALESCE(c.idx, n.idx) FROM"
            " (SELECT s.idx, {l_columns} FROM {stage} s CROSS JOIN LATERAL"
            " (SELECT * FROM {lines} WHERE order_id = s.order_id) l"
            " WHERE s.has_lines AND s.order_id IS NOT NULL) c"
            " FULL JOIN (SELECT n.oidx AS idx, {n_columns} FROM {stage_line} n"
            " JOIN {stage} s ON s.idx = n.oidx WHERE s.order_id IS NOT NULL) n"
            " ON c.idx = n.idx AND c.position = n.position"
            " WHERE c.idx IS NULL OR n.idx IS NULL OR {line_differs})"
        ),
        "allocate_orders": sql.SQL(
            "UPDATE {stage} SET is_new = true,"
            " order_id = nextval(pg_get_serial_sequence({order_table}, 'id'))"
            " WHERE order_id IS NULL"
        ),
        "insert_orders": sql.SQL(
            "INSERT INTO {orders} (id, {order_columns}, {order_defaults}, {order_auto})"
            " SELECT s.order_id, {order_values}, {order_default_values}, {order_now}"
            " FROM {stage} s WHERE s.is_new ORDER BY s.idx"
        ),
        "update_orders": sql.SQL(
            "UPDATE {orders} o SET {sets}, {time_sets}, {updated_at} = now()"
            " FROM {stage} s WHERE s.order_id = o.id AND NOT s.is_new"
            " AND (({current}) IS DISTINCT FROM ({wanted}) OR {times_differ}"
            " OR s.lines_changed)"
            " RETURNING s.idx"
        ),
        "delete_lines": sql.SQL(
            "DELETE FROM {lines} l USING {stage} s"
            " WHERE l.order_id = s.order_id AND s.lines_changed"
        ),
        "insert_lines": sql.SQL(
            "INSERT INTO {lines} ({line_insert_columns})"
            " SELECT {line_insert_values} FROM {stage_line} n"
            " JOIN {stage} s ON s.idx = n.oidx WHERE s.is_new OR s.lines_changed"
            " ORDER BY n.oidx, n.position"
        ),
    }
    params = {
        "stage": stage,
        "stage_line": stage_line,
        "stage_customer": stage_customer,
        "orders": orders,
        "lines": lines,
        "customers": customers,
        "identities": identities,
        "customer_table": sql.Literal(Customer._meta.db_table),
        "order_table": sql.Literal(Order._meta.db_table),
        "buyer": sql.Literal(Customer.Status.BUYER.value),
        "customer_defaults": joined(
            [sql.Identifier(f.column) for f in customer_defaults]
        ),
        "customer_default_values": joined(
            [
                sql.SQL("%s::{}").format(sql.SQL(f.db_type(connection)))
                for f in customer_defaults
            ]
        ),
        "customer_auto": joined(
            [sql.Identifier(f.column) for f in _auto_fields(Customer)]
        ),
        "customer_now": joined([sql.SQL("now()") for _f in _auto_fields(Customer)]),
        "l_columns": joined(
            [sql.SQL("l.{}").format(sql.Identifier(c)) for c in _LINE_COLUMNS]
        ),
        "n_columns": joined(
            [sql.SQL("n.{}").format(sql.Identifier(c)) for c in _LINE_COLUMNS]
        ),
        "line_differs": line_differs,
        "order_columns": joined([column(name) for name, _v in order_inserted]),
        "order_values": joined([value for _n, value in order_inserted]),
        "order_defaults": joined([sql.Identifier(f.column) for f in order_defaults]),
        "order_default_values": joined(
            [
                sql.SQL("%s::{}").format(sql.SQL(f.db_type(connection)))
                for f in order_defaults
            ]
        ),
        "order_auto": joined([sql.Identifier(f.column) for f in _auto_fields(Order)]),
        "order_now": joined([sql.SQL("now()") for _f in _auto_fields(Order)]),
        "sets": joined(
            [sql.SQL("{} = {}").format(column(name), staged[name]) for name in compared]
        ),
        "time_sets": joined(
            [
                sql.SQL("{c} = COALESCE(s.{c}, o.{c})").format(c=sql.Identifier(name))
                for name in TIME_FIELDS
            ]
        ),
        "updated_at": column("updated_at"),
        "current": joined([sql.SQL("o.{}").format(column(name)) for name in compared]),
        "wanted": joined([staged[name] for name in compared]),
        "times_differ": sql.SQL(" OR ").join(
            sql.SQL("(s.{c} IS NOT NULL AND s.{c} IS DISTINCT FROM o.{c})").format(
                c=sql.Identifier(name)
            )
            for name in TIME_FIELDS
        ),
        "line_insert_columns": joined([sql.Identifier(f.column) for f in line_fields]),
        "line_insert_values": joined([line_sources[f.name] for f in line_fields]),
    }
    return {
        name: rawsql.compiled(statement.format(**params))
        for name, statement in statements.items()
    }
