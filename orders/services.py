"""Writes with business rules for orders. Every interface calls these."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from customers.models import Customer, Store
from customers.services import customer_mark_buyer, customer_upsert
from orders.models import Order, OrderLine, Product

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
    products = {
        product.sku: product
        for product in Product.objects.filter(store=store, sku__in=skus).only(
            "id", "sku", "name", "category_id"
        )
    }
    cleaned = []
    for index, line in enumerate(lines):
        unknown = set(line) - {"sku", "name", "quantity", "unit_price", "total"}
        if unknown:
            raise TypeError(f"order line {index}: unexpected keys {sorted(unknown)}")
        sku = str(line.get("sku") or "").strip()
        product = products.get(sku)
        name = str(line.get("name") or (product.name if product else "")).strip()
        row: dict[str, Any] = {
            "position": index,
            "product_id": product.pk if product else None,
            "category_id": product.category_id if product else None,
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
    actor: Any = None,
) -> tuple[Order, bool]:
    """Create or replace an order keyed by (store, external id), with its lines.

    The shop is the source of truth: the order's fields and lines become what was
    sent (status too, without the transition rules of ``order_set_status``); status
    times left out keep their stored values. Sending the same order again writes
    nothing. The customer is given as ``customer`` or as ``customer_data`` for
    ``customer_upsert`` in the same store. Bad input raises ValidationError keyed by
    field (``lines.2.quantity``, ``customer.email``) and writes nothing.
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
) -> tuple[Order, bool]:
    if customer is None:
        try:
            customer, _created = customer_upsert(store=store, **customer_data)
        except ValidationError as error:
            raise ValidationError(
                {f"customer.{field}": errs for field, errs in error.error_dict.items()}
            ) from None
    order = (
        Order.objects.select_for_update()
        .filter(store=store, external_id=external_id)
        .first()
    )
    created = order is None
    if created:
        order = Order.objects.create(
            store=store, external_id=external_id, customer=customer, **values
        )
        OrderLine.objects.bulk_create(OrderLine(order=order, **line) for line in lines)
    else:
        changed = []
        if order.customer_id != customer.pk:
            order.customer = customer
            changed.append("customer")
        for field, value in values.items():
            if value is None and field.endswith("_at"):
                continue  # status times left out keep what we know
            if getattr(order, field) != value:
                setattr(order, field, value)
                changed.append(field)
        if changed:
            order.save(update_fields=[*changed, "updated_at"])
        if _line_rows(order.lines.all()) != _line_rows(lines):
            order.lines.all().delete()
            OrderLine.objects.bulk_create(
                OrderLine(order=order, **line) for line in lines
            )
            if not changed:
                order.save(update_fields=["updated_at"])
    if customer.status == Customer.Status.LEAD and customer_mark_buyer(
        customer=customer
    ):
        customer.status = Customer.Status.BUYER
    return order, created


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
