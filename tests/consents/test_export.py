"""The access export: one JSON document and formula-safe CSVs, logged."""

import csv
import datetime as dt
import io
import json
import zipfile
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from consents.export import SCHEMA_VERSION, SECTIONS, csv_cell, customer_export
from consents.models import AccessLog, ConsentEvent
from consents.services import consent_grant, consent_text_current
from customers.interactions import interaction_attach, interaction_log
from customers.models import Event, Visitor
from orders.models import Cart
from tests.factories.consents import DataSubjectRequestFactory
from tests.factories.customers import (
    AddressFactory,
    CustomerFactory,
    CustomerIdentityFactory,
    TagFactory,
)
from tests.factories.orders import OrderFactory, OrderLineFactory

pytestmark = pytest.mark.django_db

JSON_SECTIONS = {
    "profile",
    "addresses",
    "identities",
    "orders",
    "carts",
    "interactions",
    "events",
    "visitors",
    "consent_state",
    "consent_ledger",
    "double_opt_ins",
    "messages",
    "access_log",
    "data_subject_requests",
}


@pytest.fixture
def full_customer(store, purposes):
    customer = CustomerFactory(
        first_name="Zofia",
        last_name="Nowak",
        email="zofia.nowak@example.pl",
        phone="+48601234567",
        company='=HYPERLINK("http://evil.example","click")',
        attributes={"shoe_size": 38},
    )
    customer.tags.add(TagFactory(name="VIP"))
    AddressFactory(customer=customer, street="ul. Kwiatowa 7", city="Kraków")
    CustomerIdentityFactory(customer=customer, store=store, external_id="C-77")
    order = OrderFactory(
        customer=customer,
        store=store,
        number="ZAM/1",
        billing_address={"street": "ul. Kwiatowa 7", "city": "Kraków"},
    )
    OrderLineFactory(order=order, name="@SUM(1+1)", quantity=Decimal("1"))
    Cart.objects.create(
        store=store,
        external_id="K-1",
        customer=customer,
        value=Decimal("20.00"),
        items=[{"sku": "S1", "name": "Kubek", "quantity": 1}],
        updated_at=timezone.now(),
    )
    complaint = interaction_log(
        customer=customer,
        kind="complaint",
        channel="phone",
        actor=None,
        subject="Pęknięty kubek",
        body="@SUM(2+2) przyszedł pęknięty",
        order=order,
    )
    interaction_attach(
        interaction=complaint,
        upload=ContentFile(b"zdjecie", name="kubek.txt"),
        actor=None,
    )
    now = timezone.now()
    Visitor.objects.create(
        store=store,
        anonymous_id="anon-1",
        customer=customer,
        first_seen_at=now,
        last_seen_at=now,
    )
    Event.objects.bulk_create(
        Event(
            store=store,
            customer=customer,
            kind="page_view",
            occurred_at=now - dt.timedelta(minutes=i),
            url=f"https://sklep.example.pl/p/{i}",
        )
        for i in range(25)
    )
    text = consent_text_current(purpose=purposes["email_marketing"], language="pl")
    consent_grant(
        customer=customer,
        purpose="email_marketing",
        text=text,
        source=ConsentEvent.Source.NEWSLETTER_FORM,
        ip_address="83.1.2.3",
        user_agent="Firefox",
        evidence={"form": "footer"},
    )
    DataSubjectRequestFactory(
        customer=customer, due_on=dt.date(2026, 2, 28), requester="-signed email"
    )
    return customer


def open_zip(content):
    archive = zipfile.ZipFile(io.BytesIO(content))
    return archive, json.loads(archive.read("customer.json"))


def read_csv(archive, name):
    raw = archive.read(f"{name}.csv")
    assert raw.startswith(b"\xef\xbb\xbf"), "UTF-8 with a BOM, for Excel"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))


def test_export_has_every_section(full_customer, make_staff):
    dpo = make_staff("Data protection officer")
    archive, document = open_zip(customer_export(customer=full_customer, actor=dpo))

    assert document["schema_version"] == SCHEMA_VERSION
    assert document["customer_id"] == full_customer.pk
    assert JSON_SECTIONS <= set(document)
    assert document["generated_at"]

    profile = document["profile"]
    assert profile["email"] == "zofia.nowak@example.pl"
    assert profile["first_name"] == "Zofia"
    assert profile["tags"] == ["VIP"]
    assert profile["attributes"] == {"shoe_size": 38}
    assert document["addresses"][0]["street"] == "ul. Kwiatowa 7"
    assert document["identities"] == [
        {
            "store": "sklep",
            "external_id": "C-77",
            "created_at": document["identities"][0]["created_at"],
        }
    ]
    (order,) = document["orders"]
    assert order["number"] == "ZAM/1"
    assert order["total"] == "112.99"
    assert order["billing_address"]["city"] == "Kraków"
    assert order["lines"][0]["name"] == "@SUM(1+1)"
    assert document["carts"][0]["items"][0]["name"] == "Kubek"
    (complaint,) = document["interactions"]
    assert complaint["kind"] == "complaint"
    assert complaint["subject"] == "Pęknięty kubek"
    assert complaint["order_number"] == "ZAM/1"
    assert complaint["status"] == "open"
    assert complaint["due_at"]
    assert complaint["attachments"] == ["kubek.txt"]
    assert document["messages"] == []
    assert len(document["events"]) == 25
    assert document["visitors"][0]["anonymous_id"] == "anon-1"
    assert {"purpose": "email_marketing", "granted": True}.items() <= document[
        "consent_state"
    ][0].items()
    (grant,) = document["consent_ledger"]
    assert grant["text_version"] == 1
    assert grant["text_language"] == "pl"
    assert grant["text"]
    assert grant["source"] == "newsletter_form"
    assert grant["ip_address"] == "83.1.2.3"
    assert grant["occurred_at"]
    assert document["data_subject_requests"][0]["kind"] == "access"
    # The export lists itself, with date, action and purpose; no staff names.
    (entry,) = document["access_log"]
    assert entry["action"] == "access_export"
    assert entry["by"] == "staff"
    assert entry["purpose"] == "access request"
    assert dpo.username not in json.dumps(document)

    names = set(archive.namelist())
    assert "customer.json" in names
    assert {f"{section.name}.csv" for section in SECTIONS} <= names
    assert {f"{name}.csv" for name in JSON_SECTIONS} <= names


def test_csv_cells_are_formula_safe(full_customer, make_staff):
    archive, _document = open_zip(
        customer_export(customer=full_customer, actor=make_staff("Manager"))
    )
    (profile,) = read_csv(archive, "profile")
    assert profile["company"] == '\'=HYPERLINK("http://evil.example","click")'
    assert profile["phone"] == "'+48601234567"
    assert profile["email"] == "zofia.nowak@example.pl"
    assert profile["last_name"] == "Nowak"
    (line,) = read_csv(archive, "order_lines")
    assert line["name"] == "'@SUM(1+1)"
    assert line["order_number"] == "ZAM/1"
    (request,) = read_csv(archive, "data_subject_requests")
    assert request["requester"] == "'-signed email"
    assert len(read_csv(archive, "events")) == 25
    (address,) = read_csv(archive, "addresses")
    assert address["city"] == "Kraków"
    (complaint,) = read_csv(archive, "interactions")
    assert complaint["body"] == "'@SUM(2+2) przyszedł pęknięty"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+48", "'+48"),
        ("-2", "'-2"),
        ("@A1", "'@A1"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        (None, ""),
        (True, "true"),
        (Decimal("-1.50"), "'-1.50"),
        ({"a": "ż"}, '{"a": "ż"}'),
        (dt.date(2026, 1, 2), "2026-01-02"),
    ],
)
def test_csv_cell(value, cell):
    assert csv_cell(value) == cell


def test_each_export_is_logged(customer, make_staff):
    dpo = make_staff("Data protection officer")
    customer_export(customer=customer, actor=dpo, purpose="Request #7")
    customer_export(customer=customer, actor=dpo)
    entries = AccessLog.objects.filter(customer=customer, action="access_export")
    assert entries.count() == 2
    assert set(entries.values_list("purpose", flat=True)) == {
        "Request #7",
        "access request",
    }
    assert set(entries.values_list("user", flat=True)) == {dpo.pk}


def test_empty_customer_exports_valid_json(make_staff):
    customer = CustomerFactory(first_name="", last_name="", email=None, phone="")
    archive, document = open_zip(
        customer_export(customer=customer, actor=make_staff("Manager"))
    )
    assert document["orders"] == []
    assert document["profile"]["email"] is None
    assert read_csv(archive, "orders") == []
