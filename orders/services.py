"""Writes with business rules for orders. Every interface calls these."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from psycopg import sql

from config import rawsql
from customers.models import Customer, Store
from customers.services import customer_mark_buyer, customer_upsert, errors_prefixed
from customers.signals import customer_activity_changed_send
from orders.models import (
    Cart,
    Category,
    Order,
    OrderLine,
    Product,
    http_url_validator,
)

CENT = Decimal("0.01")
TEXT_FIELDS = {
    "number": 64,
    "payment_method": 64,
    "shipping_method": 64,
    "coupon_code": 64,
    "source": 64,
    "utm_source": 100,
    "utm_medium": 100,
    "utm_campaign": 200,
}
STATUS_TIMES = {
    Order.Status.PAID: "paid_at",
    Order.Status.SHIPPED: "shipped_at",
    Order.Status.DELIVERED: "delivered_at",
    Order.Status.CANCELLED: "cancelled_at",
    Order.Status.RETURNED: "returned_at",
}
# The shop's order lifecycle as Kartoteka accepts it through order_set_status.
ALLOWED_TRANSITIONS = {
    Order.Status.NEW: {Order.Status.PAID, Order.Status.CANCELLED},
    Order.Status.PAID: {
        Order.Status.SHIPPED,
        Order.Status.CANCELLED,
        Order.Status.RETURNED,
    },
    Order.Status.SHIPPED: {Order.Status.DELIVERED, Order.Status.RETURNED},
    Order.Status.DELIVERED: {Order.Status.RETURNED},
    Order.Status.CANCELLED: set(),
    Order.Status.RETURNED: set(),
}


def _money(value: Any, *, allow_none: bool = False) -> Decimal | None:
    if value is None or value == "":
        if allow_none:
            return None
        raise ValidationError(_("This field is required."), code="required")
    try:
        amount = Decimal(str(value).replace(" ", "").replace(",", "."))
    except InvalidOperation:
        raise ValidationError(
            _("Enter an amount, e.g. 129.99."), code="invalid"
        ) from None
    if not amount.is_finite() or amount < 0:
        raise ValidationError(_("Enter an amount of zero or more."), code="invalid")
    if amount >= Decimal("1e10"):
        raise ValidationError(_("The amount is too large."), code="invalid")
    return amount.quantize(CENT)


def _quantity(value: Any) -> Decimal:
    try:
        quantity = Decimal(str(value).replace(",", "."))
    except InvalidOperation:
        raise ValidationError(_("Enter a quantity, e.g. 2."), code="invalid") from None
    if not quantity.is_finite() or quantity <= 0 or quantity >= Decimal("1e7"):
        raise ValidationError(_("Enter a quantity greater than zero."), code="invalid")
    return quantity.quantize(Decimal("0.001"))


def _moment(value: Any, *, allow_none: bool = True) -> dt.datetime | None:
    if value is None or value == "":
        if allow_none:
            return None
        raise ValidationError(_("This field is required."), code="required")
    try:
        parsed = value if isinstance(value, dt.datetime) else parse_datetime(str(value))
    except ValueError:  # well-formed but impossible, e.g. month 13
        parsed = None
    if parsed is None:
        raise ValidationError(
            _("Enter a date and time in ISO 8601, e.g. 2026-03-01T12:30:00+01:00."),
            code="invalid",
        )
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


def _currency(value: Any, default: str) -> str:
    code = str(value or default).strip().upper()
    if len(code) != 3 or not code.isalpha() or not code.isascii():
        raise ValidationError(
            _("Use a three-letter ISO 4217 code, e.g. PLN."), code="invalid_currency"
        )
    return code


def _clean_lines(
    store: Store, lines: Sequence[Mapping[str, Any]], errors: dict
) -> list[dict[str, Any]]:
    if len(lines) > 500:
        errors["lines"] = ValidationError(_("At most 500 lines."), code="too_many")
        return []
    skus = {str(line.get("sku") or "").strip() for line in lines} - {""}
    products = _products_by_sku(store, skus)
    cleaned = []
    for index, line in enumerate(lines):
        unknown = set(line) - {"sku", "name", "quantity", "unit_price", "total"}
        if unknown:
            raise TypeError(f"order line {index}: unexpected keys {sorted(unknown)}")
        sku = str(line.get("sku") or "").strip()
        product_id, product_name, category_id = products.get(sku, (None, "", None))
        name = str(line.get("name") or product_name).strip()
        row: dict[str, Any] = {
            "position": index,
            "product_id": product_id,
            "category_id": category_id,
            "sku": sku[:64],
            "name": name[:255],
        }
        if not name:
            errors[f"lines.{index}.name"] = ValidationError(
                _("Give the product name or a known SKU."), code="required"
            )
        for field, parse in (("quantity", _quantity), ("unit_price", _money)):
            try:
                row[field] = parse(line.get(field))
            except ValidationError as error:
                errors[f"lines.{index}.{field}"] = error
        try:
            total = _money(line.get("total"), allow_none=True)
        except ValidationError as error:
            errors[f"lines.{index}.total"] = error
            total = None
        if "quantity" in row and "unit_price" in row:
            row["total"] = (
                total
                if total is not None
                else (row["quantity"] * row["unit_price"]).quantize(CENT)
            )
        cleaned.append(row)
    return cleaned


def _products_by_sku(store: Store, skus: set[str]) -> dict[str, tuple]:
    """The store's products with these SKUs: (id, name, category id) by SKU.

    Every order upsert runs this, precompiled (see config.rawsql).
    """
    if not skus:
        return {}
    with rawsql.cursor() as cursor:
        cursor.execute(_products_by_sku_query(), [store.pk, list(skus)])
        return {sku: tuple(rest) for sku, *rest in cursor.fetchall()}


@cache
def _products_by_sku_query() -> str:
    return rawsql.compiled(
        sql.SQL(
            "SELECT sku, id, name, category_id FROM {products}"
            " WHERE store_id = %s AND sku = ANY(%s)"
        ).format(products=rawsql.table(Product))
    )


def order_upsert(
    *,
    store: Store,
    external_id: str,
    placed_at: dt.datetime | str,
    lines: Sequence[Mapping[str, Any]] = (),
    customer: Customer | None = None,
    customer_data: Mapping[str, Any] | None = None,
    number: str | None = None,
    status: str = Order.Status.NEW,
    currency: str | None = None,
    subtotal: Any = None,
    discount_total: Any = 0,
    shipping_total: Any = 0,
    total: Any = None,
    payment_method: str = "",
    shipping_method: str = "",
    coupon_code: str = "",
    source: str = "",
    utm_source: str = "",
    utm_medium: str = "",
    utm_campaign: str = "",
    billing_address: Mapping[str, Any] | None = None,
    shipping_address: Mapping[str, Any] | None = None,
    paid_at: Any = None,
    shipped_at: Any = None,
    delivered_at: Any = None,
    cancelled_at: Any = None,
    returned_at: Any = None,
    cart_external_id: str | None = None,
    actor: Any = None,
) -> tuple[Order, bool]:
    """Create or replace an order keyed by (store, external id), with its lines.

    The shop is the source of truth: the order's fields and lines become what was
    sent (status too, without the transition rules of ``order_set_status``); status
    times left out keep their stored values. Sending the same order again writes
    nothing. The customer is given as ``customer`` or as ``customer_data`` for
    ``customer_upsert`` in the same store. ``cart_external_id`` names the store's
    cart the order came from: that cart is marked converted (a cart not yet reported
    is recorded as converted, so a late cart update cannot make it look abandoned);
    left out, the order keeps the cart it has. Bad input raises ValidationError keyed
    by field (``lines.2.quantity``, ``customer.email``) and writes nothing.
    """
    errors: dict[str, Any] = {}
    external_id = (external_id or "").strip()
    if not external_id or len(external_id) > 100:
        errors["external_id"] = ValidationError(
            _("Give the order's id in the shop (at most 100 characters)."),
            code="required",
        )
    if status not in Order.Status.values:
        errors["status"] = ValidationError(
            _("Choose one of: %(choices)s."),
            code="invalid_choice",
            params={"choices": ", ".join(Order.Status.values)},
        )
    values: dict[str, Any] = {}
    for field, raw, parse in (
        ("placed_at", placed_at, lambda v: _moment(v, allow_none=False)),
        ("currency", currency, lambda v: _currency(v, store.currency)),
        ("discount_total", discount_total, _money),
        ("shipping_total", shipping_total, _money),
        ("subtotal", subtotal, lambda v: _money(v, allow_none=True)),
        ("total", total, lambda v: _money(v, allow_none=True)),
        ("paid_at", paid_at, _moment),
        ("shipped_at", shipped_at, _moment),
        ("delivered_at", delivered_at, _moment),
        ("cancelled_at", cancelled_at, _moment),
        ("returned_at", returned_at, _moment),
    ):
        try:
            values[field] = parse(raw)
        except ValidationError as error:
            errors[field] = error
    texts = {
        "number": number if number is not None else external_id,
        "payment_method": payment_method,
        "shipping_method": shipping_method,
        "coupon_code": coupon_code,
        "source": source,
        "utm_source": utm_source,
        "utm_medium": utm_medium,
        "utm_campaign": utm_campaign,
    }
    for field, value in texts.items():
        text = str(value or "").strip()
        if len(text) > TEXT_FIELDS[field]:
            errors[field] = ValidationError(
                _("At most %(limit)d characters."),
                code="too_long",
                params={"limit": TEXT_FIELDS[field]},
            )
        values[field] = text
    for field, address in (
        ("billing_address", billing_address),
        ("shipping_address", shipping_address),
    ):
        if address is not None and not isinstance(address, Mapping):
            errors[field] = ValidationError(
                _("Give the address as an object."), "invalid"
            )
        values[field] = dict(address or {})
    cleaned_lines = _clean_lines(store, lines, errors)
    if cart_external_id is not None:
        cart_external_id = str(cart_external_id).strip()
        if not cart_external_id or len(cart_external_id) > 100:
            errors["cart_id"] = ValidationError(
                _("Give the cart's id in the shop (at most 100 characters)."),
                code="invalid",
            )
    if customer is None and customer_data is None:
        errors["customer"] = ValidationError(
            _("Give the customer who placed the order."), code="required"
        )
    if errors:
        raise ValidationError(errors)

    if values["subtotal"] is None:
        values["subtotal"] = sum(
            (line["total"] for line in cleaned_lines), Decimal("0")
        )
    if values["total"] is None:
        values["total"] = max(
            values["subtotal"] - values["discount_total"] + values["shipping_total"],
            Decimal("0"),
        )
    values["status"] = status
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _order_upsert(
                    store=store,
                    external_id=external_id,
                    customer=customer,
                    customer_data=customer_data,
                    values=values,
                    lines=cleaned_lines,
                    cart_external_id=cart_external_id,
                )
        except IntegrityError:
            # A concurrent upsert of the same order won the insert: update it instead.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _order_upsert(
    *,
    store: Store,
    external_id: str,
    customer: Customer | None,
    customer_data: Mapping[str, Any] | None,
    values: dict[str, Any],
    lines: list[dict[str, Any]],
    cart_external_id: str | None = None,
) -> tuple[Order, bool]:
    if customer is None:
        try:
            # Ordering makes a lead a buyer: in the same write as any other change.
            customer, _created = customer_upsert(
                store=store,
                savepoint=False,  # order_upsert retries its transaction itself
                **{**customer_data, "status": Customer.Status.BUYER},
            )
        except ValidationError as error:
            raise errors_prefixed(error, "customer") from None
    elif customer.status == Customer.Status.LEAD and customer_mark_buyer(
        customer=customer
    ):
        customer.status = Customer.Status.BUYER
    # Every order upsert runs this: one precompiled statement (see config.rawsql).
    order = Order(store=store, external_id=external_id, customer=customer, **values)
    found = rawsql.lock_or_insert(order, key=("store", "external_id"))
    if found is None:  # a concurrent upsert inserted it first: update that one
        existing = rawsql.get_for_update(Order, store=store, external_id=external_id)
        found = existing, False
    order, created = found
    previous_customer_id = order.customer_id
    if created:
        order_lines = [OrderLine(order=order, **line) for line in lines]
        rawsql.insert_many(order_lines)
        touched = True
    else:
        changed = []
        if order.customer_id != customer.pk:
            changed.append("customer")
        order.customer = customer
        for field, value in values.items():
            if value is None and field.endswith("_at"):
                continue  # status times left out keep what we know
            if getattr(order, field) != value:
                setattr(order, field, value)
                changed.append(field)
        if changed:
            order.save(update_fields=[*changed, "updated_at"])
        order_lines = list(order.lines.order_by("position"))
        if _line_rows(order_lines) != _line_rows(lines):
            order.lines.all().delete()
            order_lines = [OrderLine(order=order, **line) for line in lines]
            rawsql.insert_many(order_lines)
            changed.append("lines")
            if len(changed) == 1:
                order.save(update_fields=["updated_at"])
        touched = bool(changed)
    if touched:
        customer_activity_changed_send(
            sender=Order, customer_ids={customer.pk, previous_customer_id}
        )
    _set_prefetched(order, "lines", order_lines)
    if cart_external_id:
        _cart_convert(
            store=store, external_id=cart_external_id, order=order, lines=lines
        )
    return order, created


def _set_prefetched(instance: Any, relation: str, rows: list) -> None:
    """Give ``instance`` its related ``rows`` as prefetch_related would.

    The caller then reads them without a query; filtering them still queries.
    This mirrors what Django's prefetch_related_objects() stores.
    """
    queryset = getattr(instance, relation).all()
    queryset._result_cache = rows
    queryset._prefetch_done = True
    instance.__dict__.setdefault("_prefetched_objects_cache", {})[relation] = queryset


def _line_rows(lines) -> list[tuple]:
    fields = ("position", "product_id", "category_id", "sku", "name", "quantity")
    rows = []
    for line in lines:
        get = (
            line.get
            if isinstance(line, dict)
            else lambda f, line=line: getattr(line, f)
        )
        rows.append((*(get(f) for f in fields), get("unit_price"), get("total")))
    return rows


def order_set_status(
    *, order: Order, status: str, at: dt.datetime | None = None, actor: Any = None
) -> bool:
    """Move an order to ``status`` along ALLOWED_TRANSITIONS, stamping its time.

    Setting the status it already has is a no-op (retries are safe); returns whether
    anything changed.
    """
    if status not in Order.Status.values:
        raise ValidationError(
            {"status": ValidationError(_("Unknown status."), code="invalid_choice")}
        )
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status == status:
            return False
        if status not in ALLOWED_TRANSITIONS[order.status]:
            raise ValidationError(
                {
                    "status": ValidationError(
                        _("An order that is %(current)s cannot become %(new)s."),
                        code="invalid_transition",
                        params={
                            "current": order.get_status_display(),
                            "new": Order.Status(status).label,
                        },
                    )
                }
            )
        order.status = status
        time_field = STATUS_TIMES[status]
        setattr(order, time_field, at or timezone.now())
        order.save(update_fields=["status", time_field, "updated_at"])
        customer_activity_changed_send(sender=Order, customer_ids={order.customer_id})
    return True


def customer_statuses_refresh() -> dict[str, int]:
    """Set every customer's lead/buyer status from their orders, in two statements.

    order_upsert keeps statuses current one order at a time; this nightly pass mends
    what bulk paths (imports, seeding, deletions) left behind.
    """
    has_orders = Order.objects.filter(customer=OuterRef("pk"))
    now = timezone.now()
    promoted = (
        Customer.objects.leads()
        .filter(Exists(has_orders))
        .update(status=Customer.Status.BUYER, updated_at=now)
    )
    demoted = (
        Customer.objects.buyers()
        .filter(~Exists(has_orders))
        .update(status=Customer.Status.LEAD, updated_at=now)
    )
    return {"promoted": promoted, "demoted": demoted}


# --- Carts ---------------------------------------------------------------------

CART_ITEM_LIMIT = 200
# A shop clock a little ahead is tolerated; further ahead, the stored state would
# outrank every later update.
CART_FUTURE_TOLERANCE = dt.timedelta(days=1)
CART_ITEM_FIELDS = frozenset({"sku", "name", "quantity", "unit_price"})


def _cart_item(line: Mapping[str, Any]) -> dict[str, Any]:
    """A cart item as stored in Cart.items: amounts as strings, JSON-safe."""
    return {
        "sku": line["sku"],
        "name": line["name"],
        "quantity": str(line["quantity"]),
        "unit_price": str(line["unit_price"]),
        "product_id": line["product_id"],
    }


def _clean_cart_items(
    store: Store, items: Any, errors: dict[str, ValidationError]
) -> list[dict[str, Any]]:
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        errors["items"] = ValidationError(_("Give the items as a list."), "invalid")
        return []
    if len(items) > CART_ITEM_LIMIT:
        errors["items"] = ValidationError(
            _("At most %(limit)d items."),
            code="too_many",
            params={"limit": CART_ITEM_LIMIT},
        )
        return []
    skus = {
        item["sku"].strip()
        for item in items
        if isinstance(item, Mapping) and isinstance(item.get("sku"), str)
    } - {""}
    products = (
        {
            product.sku: product
            for product in Product.objects.filter(store=store, sku__in=skus).only(
                "id", "sku", "name"
            )
        }
        if skus
        else {}
    )
    cleaned = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            errors[f"items.{index}"] = ValidationError(
                _("Give each item as an object."), code="invalid"
            )
            continue
        for name in sorted(set(item) - CART_ITEM_FIELDS):
            errors[f"items.{index}.{name}"] = ValidationError(
                _("Unknown field."), code="unknown_field"
            )
        sku = str(item.get("sku") or "").strip()[:64]
        product = products.get(sku)
        name = str(item.get("name") or (product.name if product else "")).strip()
        if not name:
            errors[f"items.{index}.name"] = ValidationError(
                _("Give the product name or a known SKU."), code="required"
            )
        row: dict[str, Any] = {
            "sku": sku,
            "name": name[:255],
            "product_id": product.pk if product else None,
        }
        for field, parse in (("quantity", _quantity), ("unit_price", _money)):
            try:
                row[field] = parse(item.get(field))
            except ValidationError as error:
                errors[f"items.{index}.{field}"] = error
        cleaned.append(row)
    return cleaned


def cart_upsert(
    *,
    store: Store,
    external_id: str,
    items: Sequence[Mapping[str, Any]],
    updated_at: dt.datetime | str,
    currency: str | None = None,
    value: Any = None,
    customer: Customer | None = None,
    customer_data: Mapping[str, Any] | None = None,
    anonymous_id: str = "",
) -> tuple[Cart, bool]:
    """Create or update the store's cart keyed by (store, external id).

    ``updated_at`` is the store's time of this state: an update older than the
    stored one is ignored (webhooks arrive out of order) and the stored cart is
    returned; the same update twice writes nothing. ``value`` defaults to the sum
    of the items. The cart belongs to ``customer``, to the customer that
    ``customer_data`` upserts, or only to the visitor ``anonymous_id``; an update
    naming no customer keeps the one stored. Invalid input raises ValidationError
    keyed by field (``items.3.quantity``) and writes nothing.
    """
    errors: dict[str, ValidationError] = {}
    external_id = str(external_id or "").strip()
    if not external_id or len(external_id) > 100:
        errors["external_id"] = ValidationError(
            _("Give the cart's id in the shop (at most 100 characters)."),
            code="required",
        )
    values: dict[str, Any] = {}
    for field, raw, parse in (
        ("updated_at", updated_at, lambda v: _moment(v, allow_none=False)),
        ("currency", currency, lambda v: _currency(v, store.currency)),
        ("value", value, lambda v: _money(v, allow_none=True)),
    ):
        try:
            values[field] = parse(raw)
        except ValidationError as error:
            errors[field] = error
    if values.get("updated_at") and (
        values["updated_at"] > timezone.now() + CART_FUTURE_TOLERANCE
    ):
        errors["updated_at"] = ValidationError(
            _("This time is in the future."), code="in_future"
        )
    anonymous_id = str(anonymous_id or "").strip()
    if len(anonymous_id) > 64:
        errors["anonymous_id"] = ValidationError(
            _("At most %(limit)d characters."), code="too_long", params={"limit": 64}
        )
    lines = _clean_cart_items(store, items, errors)
    if customer is None and customer_data is None and not anonymous_id:
        errors["customer"] = ValidationError(
            _("Give the customer or the visitor's anonymous id."), code="required"
        )
    if errors:
        raise ValidationError(errors)
    if values["value"] is None:
        values["value"] = sum(
            ((line["quantity"] * line["unit_price"]).quantize(CENT) for line in lines),
            Decimal("0"),
        )
    values["items"] = [_cart_item(line) for line in lines]
    if anonymous_id:
        values["anonymous_id"] = anonymous_id
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _cart_upsert(
                    store=store,
                    external_id=external_id,
                    customer=customer,
                    customer_data=customer_data,
                    values=values,
                )
        except IntegrityError:
            # A concurrent upsert of the same cart won the insert: update it instead.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _cart_upsert(
    *,
    store: Store,
    external_id: str,
    customer: Customer | None,
    customer_data: Mapping[str, Any] | None,
    values: dict[str, Any],
) -> tuple[Cart, bool]:
    cart = (
        Cart.objects.select_for_update()
        .filter(store=store, external_id=external_id)
        .first()
    )
    if cart is not None and cart.updated_at > values["updated_at"]:
        return cart, False  # a late, older state: what we hold is newer
    if customer is None and customer_data is not None:
        try:
            customer, _created = customer_upsert(
                store=store, savepoint=False, **customer_data
            )
        except ValidationError as error:
            raise errors_prefixed(error, "customer") from None
    if customer is not None:
        values["customer"] = customer
    if cart is None:
        return Cart.objects.create(store=store, external_id=external_id, **values), True
    changed = []
    for field, value in values.items():
        current = cart.customer_id if field == "customer" else getattr(cart, field)
        if current != (value.pk if field == "customer" else value):
            setattr(cart, field, value)
            changed.append(field)
    if changed:
        cart.save(update_fields=[*changed, "modified_at"])
    return cart, False


def _cart_convert(
    *, store: Store, external_id: str, order: Order, lines: list[dict[str, Any]]
) -> None:
    """Record that ``order`` came from the store's cart ``external_id``; idempotent.

    A cart already converted to another order keeps its first order. A cart never
    reported is recorded from the order, converted, so a late cart update cannot
    make it look abandoned.
    """
    cart = (
        Cart.objects.select_for_update()
        .filter(store=store, external_id=external_id)
        .first()
    )
    if cart is not None and cart.converted_order_id is not None:
        return  # converted already: to this order, or first to another one
    # The order named another cart before. That cart stays converted (it did end
    # in a purchase) but no longer points at this order: one order, one cart.
    Cart.objects.filter(converted_order=order).update(
        converted_order=None, modified_at=timezone.now()
    )
    if cart is None:
        Cart.objects.create(
            store=store,
            external_id=external_id,
            customer=order.customer,
            currency=order.currency,
            value=order.subtotal,
            items=[_cart_item(line) for line in lines],
            updated_at=order.placed_at,
            converted_order=order,
            converted_at=order.placed_at,
        )
        return
    cart.converted_order = order
    cart.converted_at = cart.converted_at or order.placed_at
    update_fields = ["converted_order", "converted_at", "modified_at"]
    if cart.customer_id is None:
        cart.customer = order.customer
        update_fields.append("customer")
    cart.save(update_fields=update_fields)


# --- Products and categories, set-based ---------------------------------------

CATALOG_BATCH_LIMIT = 1000
_MISSING = object()


def _encodable(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _text_parser(limit: int, *, required: bool) -> Any:
    def parse(value: Any) -> str | None:
        if value is None:
            if required:
                raise ValidationError(_("This field is required."), code="required")
            return None
        if not isinstance(value, str):
            raise ValidationError(_("Enter text."), code="invalid")
        # PostgreSQL stores no NUL character, and UTF-8 no lone surrogate.
        if "\x00" in value or not _encodable(value):
            raise ValidationError(
                _("The text holds characters that are not allowed."), code="invalid"
            )
        text = value.strip()
        if required and not text:
            raise ValidationError(_("This field may not be blank."), code="blank")
        if len(text) > limit:
            raise ValidationError(
                _("At most %(limit)d characters."),
                code="too_long",
                params={"limit": limit},
            )
        return text

    return parse


def _flag(value: Any) -> bool:
    # Leave the field out to keep the stored flag; null is not a flag.
    if isinstance(value, bool):
        return value
    raise ValidationError(_("Enter true or false."), code="invalid")


def _days(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 32768:
        raise ValidationError(
            _("Enter a whole number of days from 1 to 32767."), code="invalid"
        )
    return value


def _optional_currency(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(_("Enter text."), code="invalid")
    return _currency(value, "")


_url_text = _text_parser(2000, required=False)


def _url(value: Any) -> str:
    # Null or "" removes the link; only absolute http(s) addresses go to customers.
    text = _url_text(value) or ""
    if text:
        http_url_validator(text)
    return text


# Field -> parser. A parser gets None for null; a field left out is not parsed.
PRODUCT_FIELDS = {
    "external_id": _text_parser(100, required=True),
    "sku": _text_parser(64, required=True),
    "name": _text_parser(255, required=True),
    "brand": _text_parser(100, required=False),
    "category": _text_parser(100, required=False),
    "price": _money,
    "currency": _optional_currency,
    "replenishment_days": _days,
    "is_sensitive": _flag,
    "is_active": _flag,
    "url": _url,
    "image_url": _url,
}
PRODUCT_REQUIRED = ("external_id", "sku", "name", "price")
CATEGORY_FIELDS = {
    "external_id": _text_parser(100, required=True),
    "name": _text_parser(200, required=True),
    "parent": _text_parser(100, required=False),
    "is_sensitive": _flag,
}
CATEGORY_REQUIRED = ("external_id", "name")


def _catalog_clean(
    items: Sequence[Any], fields: Mapping[str, Any], required: Sequence[str]
) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, ValidationError]]:
    """Parse every item; return (index, fields given) and errors keyed items.N.x.

    A field left out is absent from the result, so the upsert can keep what is
    stored; a repeated external id is an error on the later item.
    """
    if len(items) > CATALOG_BATCH_LIMIT:
        raise ValidationError(
            {
                "items": ValidationError(
                    _("At most %(limit)d items per request."),
                    code="too_many",
                    params={"limit": CATALOG_BATCH_LIMIT},
                )
            }
        )
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: dict[str, ValidationError] = {}
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            errors[f"items.{index}"] = ValidationError(
                _("Give each item as an object."), code="invalid"
            )
            continue
        row: dict[str, Any] = {}
        for name in sorted(set(item) - set(fields)):
            errors[f"items.{index}.{name}"] = ValidationError(
                _("Unknown field."), code="unknown_field"
            )
        for name, parse in fields.items():
            raw = item.get(name, _MISSING)
            if raw is _MISSING:
                if name in required:
                    errors[f"items.{index}.{name}"] = ValidationError(
                        _("This field is required."), code="required"
                    )
                continue
            try:
                row[name] = parse(raw)
            except ValidationError as error:
                errors[f"items.{index}.{name}"] = error
        external_id = row.get("external_id")
        if external_id:
            if external_id in seen:
                errors[f"items.{index}.external_id"] = ValidationError(
                    _("This external id appears twice in the batch."),
                    code="duplicate",
                )
            seen.add(external_id)
        rows.append((index, row))
    return rows, errors


# Fields left out keep the stored value: each row is merged with the stored product
# (LEFT JOIN) before the insert, so EXCLUDED holds the product's whole new state
# and an unchanged product is neither rewritten nor counted as updated.
_PRODUCTS_UPSERT = sql.SQL("""
    INSERT INTO {product} AS p
        (store_id, external_id, sku, name, brand, category_id, price, currency,
         replenishment_days, is_sensitive, is_active, url, image_url,
         created_at, updated_at)
    SELECT %s, b.external_id, b.sku, b.name,
           COALESCE(b.brand, o.brand, ''),
           CASE WHEN b.has_category THEN b.category_id ELSE o.category_id END,
           b.price,
           COALESCE(b.currency, o.currency, %s),
           CASE WHEN b.has_days THEN b.replenishment_days
                ELSE o.replenishment_days END,
           COALESCE(b.is_sensitive, o.is_sensitive, false),
           COALESCE(b.is_active, o.is_active, true),
           COALESCE(b.url, o.url, ''),
           COALESCE(b.image_url, o.image_url, ''),
           %s, %s
    FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::varchar[],
                %s::bigint[], %s::boolean[], %s::numeric[], %s::varchar[],
                %s::integer[], %s::boolean[], %s::boolean[], %s::boolean[],
                %s::varchar[], %s::varchar[])
        AS b(external_id, sku, name, brand, category_id, has_category, price,
             currency, replenishment_days, has_days, is_sensitive, is_active,
             url, image_url)
    LEFT JOIN {product} o ON o.store_id = %s AND o.external_id = b.external_id
    ORDER BY b.external_id
    ON CONFLICT (store_id, external_id) DO UPDATE SET
        sku = EXCLUDED.sku,
        name = EXCLUDED.name,
        brand = EXCLUDED.brand,
        category_id = EXCLUDED.category_id,
        price = EXCLUDED.price,
        currency = EXCLUDED.currency,
        replenishment_days = EXCLUDED.replenishment_days,
        is_sensitive = EXCLUDED.is_sensitive,
        is_active = EXCLUDED.is_active,
        url = EXCLUDED.url,
        image_url = EXCLUDED.image_url,
        updated_at = EXCLUDED.updated_at
    WHERE (p.sku, p.name, p.brand, p.category_id, p.price, p.currency,
           p.replenishment_days, p.is_sensitive, p.is_active, p.url, p.image_url)
        IS DISTINCT FROM
          (EXCLUDED.sku, EXCLUDED.name, EXCLUDED.brand, EXCLUDED.category_id,
           EXCLUDED.price, EXCLUDED.currency, EXCLUDED.replenishment_days,
           EXCLUDED.is_sensitive, EXCLUDED.is_active, EXCLUDED.url,
           EXCLUDED.image_url)
    RETURNING (xmax = 0) AS created
""").format(product=sql.Identifier(Product._meta.db_table))


def product_upsert_bulk(
    *, store: Store, items: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """Create or update up to 1,000 products by (store, external id) in one INSERT.

    Every item is checked first and one ValidationError keyed ``items.<n>.<field>``
    refuses the whole batch: an unknown category, an external id or SKU given twice,
    a SKU another product of the store holds, a link that is not an absolute http(s)
    address. Fields left out keep the stored value (defaults for a new product), so
    a flag set in Kartoteka (``is_sensitive``) survives a sync that does not send
    it; null or "" removes a link (``url``, ``image_url``). Returns counts of
    created, updated and unchanged products; sending the same batch again writes
    nothing.
    """
    rows, errors = _catalog_clean(items, PRODUCT_FIELDS, PRODUCT_REQUIRED)
    by_sku: dict[str, int] = {}
    for index, row in rows:
        sku = row.get("sku")
        if not sku:
            continue
        if sku in by_sku:
            errors[f"items.{index}.sku"] = ValidationError(
                _("This SKU appears twice in the batch."), code="duplicate"
            )
        by_sku.setdefault(sku, index)
    category_ids = dict(
        Category.objects.filter(
            store=store,
            external_id__in={
                row["category"] for _i, row in rows if row.get("category")
            },
        ).values_list("external_id", "id")
    )
    for index, row in rows:
        if row.get("category") and row["category"] not in category_ids:
            errors[f"items.{index}.category"] = ValidationError(
                _("The store has no category with this id."),
                code="unknown_category",
            )
    holders = dict(
        Product.objects.filter(store=store, sku__in=by_sku).values_list(
            "sku", "external_id"
        )
    )
    for index, row in rows:
        holder = holders.get(row.get("sku"))
        if holder is not None and holder != row.get("external_id"):
            errors[f"items.{index}.sku"] = ValidationError(
                _("Another product of the store (%(external_id)s) has this SKU."),
                code="sku_taken",
                params={"external_id": holder},
            )
    if errors:
        raise ValidationError(errors)
    if not rows:
        return {"created": 0, "updated": 0, "unchanged": 0}
    # Sorted by external id: concurrent batches then lock shared rows in one order.
    ordered = sorted((row for _i, row in rows), key=lambda row: row["external_id"])
    columns = [
        [row["external_id"] for row in ordered],
        [row["sku"] for row in ordered],
        [row["name"] for row in ordered],
        [row.get("brand") for row in ordered],
        [category_ids.get(row.get("category")) for row in ordered],
        ["category" in row for row in ordered],
        [row["price"] for row in ordered],
        [row.get("currency") for row in ordered],
        [row.get("replenishment_days") for row in ordered],
        ["replenishment_days" in row for row in ordered],
        [row.get("is_sensitive") for row in ordered],
        [row.get("is_active") for row in ordered],
        [row.get("url") for row in ordered],
        [row.get("image_url") for row in ordered],
    ]
    now = timezone.now()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                _PRODUCTS_UPSERT,
                [store.pk, store.currency, now, now, *columns, store.pk],
            )
            written = [created for (created,) in cursor.fetchall()]
    except IntegrityError as error:
        if "product_store_sku_unique" not in str(error):
            raise
        # Another request took one of these SKUs after the check above.
        raise ValidationError(
            {
                "items": ValidationError(
                    _("A SKU in this batch was just taken by another product."),
                    code="sku_taken",
                )
            }
        ) from None
    created = sum(written)
    return {
        "created": created,
        "updated": len(written) - created,
        "unchanged": len(ordered) - len(written),
    }


_CATEGORY_LOCK = 0x6B617465  # pg_advisory_xact_lock's first key: "category batches"
_CATEGORIES_UPSERT = sql.SQL("""
    INSERT INTO {category} AS c (store_id, external_id, name, is_sensitive)
    SELECT %s, b.external_id, b.name, COALESCE(b.is_sensitive, o.is_sensitive, false)
    FROM unnest(%s::varchar[], %s::varchar[], %s::boolean[])
        AS b(external_id, name, is_sensitive)
    LEFT JOIN {category} o ON o.store_id = %s AND o.external_id = b.external_id
    ORDER BY b.external_id
    ON CONFLICT (store_id, external_id) DO UPDATE SET
        name = EXCLUDED.name, is_sensitive = EXCLUDED.is_sensitive
    WHERE (c.name, c.is_sensitive)
        IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.is_sensitive)
    RETURNING c.external_id, (xmax = 0) AS created
""").format(category=sql.Identifier(Category._meta.db_table))
# Parents are set once every category of the batch exists; null makes a root.
_CATEGORY_PARENTS = sql.SQL("""
    UPDATE {category} c SET parent_id = parent.id
    FROM unnest(%s::varchar[], %s::varchar[]) AS b(external_id, parent)
    LEFT JOIN {category} parent
        ON parent.store_id = %s AND parent.external_id = b.parent
    WHERE c.store_id = %s AND c.external_id = b.external_id
        AND c.parent_id IS DISTINCT FROM parent.id
    RETURNING c.external_id
""").format(category=sql.Identifier(Category._meta.db_table))


def _category_cycles(
    parents: Mapping[str, str | None], starts: Sequence[str]
) -> set[str]:
    """The external ids among ``starts`` whose chain of parents comes back round."""
    cyclic: set[str] = set()
    rooted: set[str] = set()
    for start in starts:
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node not in rooted:
            if node in on_path:
                cyclic.add(start)
                break
            on_path.add(node)
            path.append(node)
            node = parents.get(node)
        else:
            rooted.update(path)
    return cyclic


def category_upsert_bulk(
    *, store: Store, items: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """Create or update up to 1,000 categories by (store, external id), set-based.

    Every item is checked first and one ValidationError keyed ``items.<n>.<field>``
    refuses the whole batch. ``parent`` is a category external id: one in the batch
    or one already stored; null makes a root, left out keeps the stored parent.
    A batch that would close a loop of parents is refused. ``is_sensitive`` left
    out keeps the stored flag. Returns counts of created, updated and unchanged.
    """
    rows, errors = _catalog_clean(items, CATEGORY_FIELDS, CATEGORY_REQUIRED)
    if errors:
        raise ValidationError(errors)
    if not rows:
        return {"created": 0, "updated": 0, "unchanged": 0}
    with transaction.atomic(), connection.cursor() as cursor:
        # One category batch per store at a time: the loop check below reads the
        # whole tree, which a concurrent batch could otherwise change under it.
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)", [_CATEGORY_LOCK, store.pk]
        )
        parents: dict[str, str | None] = dict(
            Category.objects.filter(store=store).values_list(
                "external_id", "parent__external_id"
            )
        )
        batch_ids = {row["external_id"] for _i, row in rows}
        for index, row in rows:
            parent = row.get("parent")
            if parent and parent not in parents and parent not in batch_ids:
                errors[f"items.{index}.parent"] = ValidationError(
                    _("The store has no category with this id."),
                    code="unknown_category",
                )
        for _index, row in rows:
            parents.setdefault(row["external_id"], None)
            if "parent" in row:
                parents[row["external_id"]] = row["parent"] or None
        cyclic = _category_cycles(
            parents, [row["external_id"] for _i, row in rows if row.get("parent")]
        )
        for index, row in rows:
            if row["external_id"] in cyclic:
                errors.setdefault(
                    f"items.{index}.parent",
                    ValidationError(
                        _("This parent would make the category its own ancestor."),
                        code="cycle",
                    ),
                )
        if errors:
            raise ValidationError(errors)
        ordered = sorted((row for _i, row in rows), key=lambda row: row["external_id"])
        cursor.execute(
            _CATEGORIES_UPSERT,
            [
                store.pk,
                [row["external_id"] for row in ordered],
                [row["name"] for row in ordered],
                [row.get("is_sensitive") for row in ordered],
                store.pk,
            ],
        )
        written = dict(cursor.fetchall())
        with_parent = [row for row in ordered if "parent" in row]
        if with_parent:
            cursor.execute(
                _CATEGORY_PARENTS,
                [
                    [row["external_id"] for row in with_parent],
                    [row["parent"] or None for row in with_parent],
                    store.pk,
                    store.pk,
                ],
            )
            for (external_id,) in cursor.fetchall():
                written.setdefault(external_id, False)
    created = sum(written.values())
    return {
        "created": created,
        "updated": len(written) - created,
        "unchanged": len(ordered) - len(written),
    }
