"""The access and portability export (Art. 15, Art. 20): all we hold about a person.

One ZIP: ``customer.json`` (one JSON document, schema in docs/access-export.md) and
one CSV per section for people who open it in a spreadsheet. The CSVs are UTF-8
with a BOM (Excel reads it as UTF-8) and formula-safe: a cell starting with = + -
@, a tab or a carriage return gets a leading apostrophe, so no spreadsheet runs it.

Each section is a ``Section``: its name, its columns and a function yielding one
dict per row. Adding a section (the support log, campaign messages) is one line in
``SECTIONS``. Big sections are read with ``.iterator()`` and written as they are
read, so a customer with a million behaviour events does not fill the memory twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from config.spreadsheets import formula_safe
from consents.models import (
    AccessLog,
    ConsentEvent,
    ConsentState,
    DataSubjectRequest,
    DoubleOptIn,
)
from customers.models import (
    Address,
    ApiKey,
    Customer,
    CustomerIdentity,
    Event,
    Store,
    Visitor,
)
from orders.models import Cart, Order, OrderLine

SCHEMA_VERSION = 1
CHUNK = 2000
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).

Row = dict[str, Any]


class _Encoder(DjangoJSONEncoder):
    """Times in the business's zone with their offset; amounts as exact strings."""

    def default(self, o: Any) -> Any:
        if isinstance(o, dt.datetime) and timezone.is_aware(o):
            return timezone.localtime(o).isoformat()
        return super().default(o)


@dataclass(frozen=True)
class Section:
    name: str
    columns: tuple[str, ...]
    rows: Callable[[Customer], Iterable[Row]]
    in_json: bool = True  # False: a CSV only (order lines are inside orders in JSON)
    single: bool = False  # one object, not a list (the profile)


def _stores() -> dict[int, str]:
    return dict(Store.objects.values_list("pk", "code"))


def _pick(values: Row, columns: Iterable[str]) -> Row:
    return {column: values.get(column) for column in columns}


# --- Sections ----------------------------------------------------------------------

PROFILE = (
    "id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "birth_date",
    "gender",
    "language",
    "company",
    "nip",
    "status",
    "preferred_channels",
    "acquisition_source",
    "acquisition_medium",
    "acquisition_campaign",
    "acquisition_keyword",
    "last_device",
    "last_os",
    "last_browser",
    "attributes",
    "tags",
    "created_at",
    "updated_at",
    "last_seen_at",
    "restricted_at",
    "marketing_objection_at",
    "profiling_objection_at",
    "erased_at",
)


def _profile(customer: Customer) -> Iterator[Row]:
    values = Customer.objects.filter(pk=customer.pk).values(
        *(column for column in PROFILE if column != "tags")
    )[0]
    values["tags"] = list(customer.tags.order_by("name").values_list("name", flat=True))
    yield _pick(values, PROFILE)


ADDRESSES = (
    "kind",
    "is_default",
    "first_name",
    "last_name",
    "company",
    "street",
    "street2",
    "postcode",
    "city",
    "region",
    "country",
    "phone",
    "created_at",
    "updated_at",
)


def _addresses(customer: Customer) -> Iterator[Row]:
    for values in Address.objects.filter(customer=customer).values(*ADDRESSES):
        values["country"] = str(values["country"])
        yield values


IDENTITIES = ("store", "external_id", "created_at")


def _identities(customer: Customer) -> Iterator[Row]:
    rows = CustomerIdentity.objects.filter(customer=customer).order_by("created_at")
    for identity in rows.select_related("store"):
        yield {
            "store": identity.store.code,
            "external_id": identity.external_id,
            "created_at": identity.created_at,
        }


ORDER_FIELDS = (
    "number",
    "external_id",
    "status",
    "placed_at",
    "paid_at",
    "shipped_at",
    "delivered_at",
    "cancelled_at",
    "returned_at",
    "currency",
    "subtotal",
    "discount_total",
    "shipping_total",
    "total",
    "payment_method",
    "shipping_method",
    "coupon_code",
    "source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "billing_address",
    "shipping_address",
)
ORDERS = ("store", *ORDER_FIELDS)
LINE_FIELDS = ("position", "sku", "name", "quantity", "unit_price", "total")
ORDER_LINES = ("store", "order_number", *LINE_FIELDS)


def _orders(customer: Customer) -> Iterator[Row]:
    stores = _stores()
    orders = (
        Order.objects.filter(customer=customer)
        .order_by("placed_at", "pk")
        .prefetch_related("lines")
    )
    for order in orders.iterator(chunk_size=CHUNK):
        row = {"store": stores.get(order.store_id)}
        row.update({name: getattr(order, name) for name in ORDER_FIELDS})
        row["lines"] = [
            {name: getattr(line, name) for name in LINE_FIELDS}
            for line in order.lines.all()
        ]
        yield row


def _order_lines(customer: Customer) -> Iterator[Row]:
    stores = _stores()
    lines = (
        OrderLine.objects.filter(order__customer=customer)
        .order_by("order__placed_at", "order_id", "position")
        .values("order__store_id", "order__number", *LINE_FIELDS)
    )
    for values in lines.iterator(chunk_size=CHUNK):
        values["store"] = stores.get(values.pop("order__store_id"))
        values["order_number"] = values.pop("order__number")
        yield _pick(values, ORDER_LINES)


CARTS = (
    "store",
    "external_id",
    "currency",
    "value",
    "items",
    "updated_at",
    "converted_order",
    "converted_at",
    "created_at",
)


def _carts(customer: Customer) -> Iterator[Row]:
    stores = _stores()
    carts = (
        Cart.objects.filter(customer=customer)
        .order_by("created_at", "pk")
        .values(
            "store_id",
            "external_id",
            "currency",
            "value",
            "items",
            "updated_at",
            "converted_order__number",
            "converted_at",
            "created_at",
        )
    )
    for values in carts.iterator(chunk_size=CHUNK):
        values["store"] = stores.get(values.pop("store_id"))
        values["converted_order"] = values.pop("converted_order__number")
        yield _pick(values, CARTS)


INTERACTIONS = (
    "store",
    "occurred_at",
    "kind",
    "channel",
    "direction",
    "subject",
    "body",
    "order_number",
    "status",
    "due_at",
    "resolved_at",
    "rating",
    "rating_scale",
    "attachments",
)


def _interactions(customer: Customer) -> Iterator[Row]:
    # What the person told the shop and what it answered (Art. 15): the text, the
    # order it was about, how a complaint ended. Staff names are not theirs; the
    # attachments are listed by name (the files are theirs to ask for too).
    stores = _stores()
    interactions = (
        customer.interactions.order_by("occurred_at", "pk")
        .select_related("order")
        .prefetch_related("attachments")
    )
    for interaction in interactions.iterator(chunk_size=CHUNK):
        row = {
            name: getattr(interaction, name)
            for name in INTERACTIONS
            if name not in ("store", "order_number", "attachments")
        }
        row["store"] = stores.get(interaction.store_id)
        row["order_number"] = interaction.order.number if interaction.order else ""
        row["attachments"] = [a.name for a in interaction.attachments.all()]
        yield _pick(row, INTERACTIONS)


EVENTS = (
    "store",
    "kind",
    "occurred_at",
    "url",
    "referrer",
    "keyword",
    "product_sku",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "device",
    "os",
    "browser",
    "ip_network",
    "anonymous_id",
)


def _events(customer: Customer) -> Iterator[Row]:
    stores = _stores()
    events = (
        Event.objects.filter(customer=customer)
        .order_by("occurred_at", "pk")
        .values("store_id", *EVENTS[1:])
    )
    for values in events.iterator(chunk_size=CHUNK):
        values["store"] = stores.get(values.pop("store_id"))
        yield _pick(values, EVENTS)


VISITORS = ("store", "anonymous_id", "first_seen_at", "last_seen_at", "identified_at")


def _visitors(customer: Customer) -> Iterator[Row]:
    stores = _stores()
    visitors = (
        Visitor.objects.filter(customer=customer)
        .order_by("first_seen_at", "pk")
        .values("store_id", *VISITORS[1:])
    )
    for values in visitors.iterator(chunk_size=CHUNK):
        values["store"] = stores.get(values.pop("store_id"))
        yield _pick(values, VISITORS)


CONSENT_STATE = ("purpose", "granted", "changed_at")


def _consent_state(customer: Customer) -> Iterator[Row]:
    states = (
        ConsentState.objects.filter(customer=customer)
        .order_by("purpose__position", "purpose__code")
        .values_list("purpose__code", "granted", "changed_at")
    )
    for code, granted, changed_at in states:
        yield {"purpose": code, "granted": granted, "changed_at": changed_at}


CONSENT_LEDGER = (
    "purpose",
    "action",
    "occurred_at",
    "recorded_at",
    "source",
    "store",
    "text_version",
    "text_language",
    "text",
    "evidence",
    "evidence_hash",
    "ip_address",
    "user_agent",
)


def _consent_ledger(customer: Customer) -> Iterator[Row]:
    events = (
        ConsentEvent.objects.filter(customer=customer)
        .select_related("purpose", "text", "store")
        .order_by("occurred_at", "pk")
    )
    for event in events.iterator(chunk_size=CHUNK):
        yield {
            "purpose": event.purpose.code,
            "action": event.action,
            "occurred_at": event.occurred_at,
            "recorded_at": event.recorded_at,
            "source": event.source,
            "store": event.store.code if event.store else None,
            "text_version": event.text.version if event.text else None,
            "text_language": event.text.language if event.text else None,
            "text": event.text.text if event.text else None,
            "evidence": event.evidence,
            "evidence_hash": event.evidence_hash,
            "ip_address": event.ip_address,
            "user_agent": event.user_agent,
        }


DOUBLE_OPT_INS = (
    "purpose",
    "store",
    "requested_at",
    "confirmed_at",
    "request_ip",
    "request_user_agent",
)


def _double_opt_ins(customer: Customer) -> Iterator[Row]:
    rows = (
        DoubleOptIn.objects.filter(customer=customer)
        .select_related("purpose", "store")
        .order_by("requested_at", "pk")
    )
    for row in rows:
        yield {
            "purpose": row.purpose.code,
            "store": row.store.code if row.store else None,
            "requested_at": row.requested_at,
            "confirmed_at": row.confirmed_at,
            "request_ip": row.request_ip,
            "request_user_agent": row.request_user_agent,
        }


MESSAGES: tuple[str, ...] = ()


def _messages(customer: Customer) -> Iterator[Row]:
    # campaigns has no models yet, and sits to the right of consents: when it has
    # deliveries, this reads them through the reverse relation, e.g.
    # ``yield from _model_rows(customer.deliveries.all(), MESSAGES)``.
    yield from ()


ACCESS_LOG = ("at", "action", "purpose", "by")


def _access_log(customer: Customer) -> Iterator[Row]:
    # Art. 15(1)(c): who the data was disclosed to, as categories; staff names
    # are not the person's data and stay out.
    entries = (
        AccessLog.objects.filter(customer=customer)
        .order_by("at", "pk")
        .values_list("at", "action", "purpose", "user_id", "api_key_id")
    )
    for at, action, purpose, user_id, api_key_id in entries.iterator(chunk_size=CHUNK):
        by = "staff" if user_id else "api" if api_key_id else "system"
        yield {"at": at, "action": action, "purpose": purpose, "by": by}


DATA_SUBJECT_REQUESTS = (
    "id",
    "kind",
    "status",
    "received_at",
    "due_on",
    "extended_until",
    "extension_reason",
    "channel",
    "requester",
    "completed_at",
    "outcome",
)


def _data_subject_requests(customer: Customer) -> Iterator[Row]:
    yield from (
        DataSubjectRequest.objects.filter(customer=customer)
        .order_by("received_at", "pk")
        .values(*DATA_SUBJECT_REQUESTS)
    )


def _model_rows(queryset: Any, columns: tuple[str, ...]) -> Iterator[Row]:
    """Rows of a plain model section: its named fields, read in chunks."""
    yield from queryset.values(*columns).iterator(chunk_size=CHUNK)


SECTIONS: tuple[Section, ...] = (
    Section("profile", PROFILE, _profile, single=True),
    Section("addresses", ADDRESSES, _addresses),
    Section("identities", IDENTITIES, _identities),
    Section("orders", ORDERS, _orders),
    Section("order_lines", ORDER_LINES, _order_lines, in_json=False),
    Section("carts", CARTS, _carts),
    Section("interactions", INTERACTIONS, _interactions),
    Section("events", EVENTS, _events),
    Section("visitors", VISITORS, _visitors),
    Section("consent_state", CONSENT_STATE, _consent_state),
    Section("consent_ledger", CONSENT_LEDGER, _consent_ledger),
    Section("double_opt_ins", DOUBLE_OPT_INS, _double_opt_ins),
    Section("messages", MESSAGES, _messages),
    Section("access_log", ACCESS_LOG, _access_log),
    Section("data_subject_requests", DATA_SUBJECT_REQUESTS, _data_subject_requests),
)


# --- Writing -----------------------------------------------------------------------


def csv_cell(value: Any) -> str:
    """A value as a spreadsheet-safe CSV cell: text, never a formula."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict | list):
        text = json.dumps(value, cls=_Encoder, ensure_ascii=False, sort_keys=True)
    elif isinstance(value, dt.datetime):
        text = json.loads(json.dumps(value, cls=_Encoder))
    elif isinstance(value, dt.date | Decimal):
        text = value.isoformat() if isinstance(value, dt.date) else str(value)
    else:
        text = str(value)
    return formula_safe(text)


def _dump(value: Any) -> str:
    return json.dumps(value, cls=_Encoder, ensure_ascii=False, indent=2)


def _write_json(out: io.TextIOBase, customer: Customer, generated_at: dt.datetime):
    out.write("{\n")
    out.write(f'  "schema_version": {SCHEMA_VERSION},\n')
    out.write(f'  "generated_at": {_dump(generated_at)},\n')
    out.write(f'  "customer_id": {customer.pk}')
    for section in SECTIONS:
        if not section.in_json:
            continue
        out.write(f',\n  "{section.name}": ')
        if section.single:
            row = next(iter(section.rows(customer)), None)
            out.write(_dump(row).replace("\n", "\n  "))
            continue
        out.write("[")
        first = True
        for row in section.rows(customer):
            out.write("\n    " if first else ",\n    ")
            out.write(_dump(row).replace("\n", "\n    "))
            first = False
        out.write("]" if first else "\n  ]")
    out.write("\n}\n")


def _write_csv(out: io.TextIOBase, customer: Customer, section: Section) -> None:
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(section.columns)
    for row in section.rows(customer):
        writer.writerow(csv_cell(row.get(column)) for column in section.columns)


def customer_export(
    *, customer: Customer, actor: Any, purpose: str = "access request"
) -> bytes:
    """The ZIP of everything held about ``customer``; the access log records it."""
    generated_at = timezone.now()
    buffer = io.BytesIO()
    with transaction.atomic():
        # Logged first, inside the transaction: the export lists itself, and an
        # export that fails leaves no log row claiming it happened.
        AccessLog.objects.create(
            customer=customer,
            action=AccessLog.Action.ACCESS_EXPORT,
            at=generated_at,
            user=actor if getattr(actor, "is_authenticated", False) else None,
            api_key=actor if isinstance(actor, ApiKey) else None,
            purpose=(purpose or "")[:200],
        )
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            with archive.open("customer.json", "w") as raw:
                with io.TextIOWrapper(raw, encoding="utf-8", newline="") as out:
                    _write_json(out, customer, generated_at)
            for section in SECTIONS:
                with archive.open(f"{section.name}.csv", "w") as raw:
                    with io.TextIOWrapper(raw, encoding="utf-8", newline="") as out:
                        _write_csv(out, customer, section)
    return buffer.getvalue()
