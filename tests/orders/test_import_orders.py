import csv
import os
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone, translation

from customers.importers import registry
from customers.importers.reading import open_csv
from customers.models import Customer, CustomerIdentity
from orders.importers.orders import orders_import
from orders.models import Order, OrderLine
from tests.factories.customers import CustomerFactory, CustomerIdentityFactory
from tests.factories.orders import (
    CategoryFactory,
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
)

pytestmark = pytest.mark.django_db

WARSAW = timezone.get_default_timezone()


@pytest.fixture(autouse=True)
def _english():
    """Messages are checked in English (Polish is the default language)."""
    with translation.override("en"):
        yield


def write_csv(path, header, rows, *, encoding="utf-8", delimiter=","):
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(path, store, **kwargs):
    return orders_import(source=open_csv(path), store=store, **kwargs)


def counts(result):
    return (result.created, result.updated, result.unchanged)


def snapshot():
    """Every order, line and customer row with its last-changed time."""
    return (
        sorted(Order.objects.values_list("pk", "updated_at")),
        sorted(OrderLine.objects.values_list("pk", "order_id", "position")),
        sorted(Customer.objects.values_list("pk", "updated_at")),
        sorted(CustomerIdentity.objects.values_list("pk", "customer_id")),
    )


def assert_reimport_changes_nothing(path, store, orders, **kwargs):
    before = snapshot()
    again = run(path, store, **kwargs)
    assert again.errors == []
    assert counts(again) == (0, 0, orders)
    assert again.extra == {"lines": 0, "customers_created": 0}
    assert snapshot() == before


# --- Shopify -------------------------------------------------------------------------

SHOPIFY_HEADER = [
    "Name",
    "Email",
    "Financial Status",
    "Paid at",
    "Fulfillment Status",
    "Fulfilled at",
    "Accepts Marketing",
    "Currency",
    "Subtotal",
    "Shipping",
    "Taxes",
    "Total",
    "Discount Code",
    "Discount Amount",
    "Shipping Method",
    "Created at",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
    "Lineitem compare at price",
    "Lineitem sku",
    "Lineitem requires shipping",
    "Lineitem taxable",
    "Lineitem fulfillment status",
    "Billing Name",
    "Billing Street",
    "Billing Address1",
    "Billing Address2",
    "Billing Company",
    "Billing City",
    "Billing Zip",
    "Billing Province",
    "Billing Country",
    "Billing Phone",
    "Shipping Name",
    "Shipping Street",
    "Shipping Address1",
    "Shipping Address2",
    "Shipping Company",
    "Shipping City",
    "Shipping Zip",
    "Shipping Province",
    "Shipping Country",
    "Shipping Phone",
    "Notes",
    "Note Attributes",
    "Cancelled at",
    "Payment Method",
    "Payment Reference",
    "Refunded Amount",
    "Vendor",
    "Outstanding Balance",
    "Employee",
    "Location",
    "Device ID",
    "Id",
    "Tags",
    "Risk Level",
    "Source",
    "Lineitem discount",
    "Tax 1 Name",
    "Tax 1 Value",
    "Phone",
    "Receipt Number",
    "Duties",
    "Billing Province Name",
    "Shipping Province Name",
    "Payment ID",
    "Payment Terms Name",
    "Next Payment Due At",
    "Payment References",
]


def shopify_order(number, lines, **overrides):
    """Rows of one order as Shopify writes them: order cells on the first row only."""
    order = {
        "Name": f"#{number}",
        "Email": f"klientka{number}@Example.PL",
        "Financial Status": "paid",
        "Paid at": "2024-03-01 12:35:00 +0100",
        "Fulfillment Status": "unfulfilled",
        "Fulfilled at": "",
        "Accepts Marketing": "yes",
        "Currency": "PLN",
        "Subtotal": "",
        "Shipping": "12.99",
        "Taxes": "23.00",
        "Total": "",
        "Discount Code": "",
        "Discount Amount": "0.00",
        "Shipping Method": "InPost Paczkomaty 24/7",
        "Created at": "2024-03-01 12:30:00 +0100",
        "Billing Name": "Zofia Wójcik",
        "Billing Street": "ul. Marszałkowska 1",
        "Billing Address1": "ul. Marszałkowska 1",
        "Billing City": "Warszawa",
        "Billing Zip": "'00-950",
        "Billing Province": "MZ",
        "Billing Country": "PL",
        "Billing Phone": "'+48 601 234 567",
        "Shipping Name": "Zofia Wójcik",
        "Shipping Street": "ul. Długa 5",
        "Shipping Address1": "ul. Długa 5",
        "Shipping City": "Gdańsk",
        "Shipping Zip": "'80-001",
        "Shipping Country": "PL",
        "Notes": "Proszę o szybką wysyłkę",
        "Payment Method": "Przelewy24",
        "Id": f"{5000000000 + number}",
        "Tags": "vip",
        "Source": "web",
        "Tax 1 Name": "VAT 23%",
        "Tax 1 Value": "23.00",
    }
    order.update(overrides)
    # The order's subtotal and total, as Shopify computes them.
    if not order["Subtotal"]:
        subtotal = sum(Decimal(q) * Decimal(p) for q, p, *_rest in lines)
        order["Subtotal"] = f"{subtotal:.2f}"
    if not order["Total"]:
        subtotal = Decimal(order["Subtotal"])
        total = (
            subtotal + Decimal(order["Shipping"]) - Decimal(order["Discount Amount"])
        )
        order["Total"] = f"{total:.2f}"
    rows = []
    for position, (quantity, price, name, sku) in enumerate(lines):
        row = dict(order) if position == 0 else {"Name": order["Name"]}
        # Later rows repeat the order's email and date, as Shopify's export does.
        if position:
            row["Email"] = order["Email"]
            row["Created at"] = order["Created at"]
        row.update(
            {
                "Lineitem quantity": quantity,
                "Lineitem name": name,
                "Lineitem price": price,
                "Lineitem sku": sku,
                "Lineitem requires shipping": "true",
                "Lineitem taxable": "true",
                "Lineitem fulfillment status": "pending",
                "Vendor": "Kartoteka Test",
                "Lineitem discount": "0.00",
            }
        )
        rows.append([row.get(name, "") for name in SHOPIFY_HEADER])
    return rows


def shopify_file(tmp_path, *orders, name="orders_export_1.csv"):
    rows = [row for order in orders for row in order]
    return write_csv(tmp_path / name, SHOPIFY_HEADER, rows)


@pytest.fixture
def catalog(store):
    herbs = CategoryFactory(store=store, external_id="herbaty", name="Herbaty")
    return {
        "TEA-1": ProductFactory(
            store=store, sku="TEA-1", name="Herbata zielona", category=herbs
        ),
        "MUG-1": ProductFactory(store=store, sku="MUG-1", name="Kubek", category=None),
    }


def test_shopify_export_lands_in_orders_lines_and_customers(tmp_path, store, catalog):
    lead = CustomerFactory(
        email="klientka1001@example.pl",
        first_name="",
        last_name="Wójcik-Stara",
        phone="",
        status="lead",
    )
    path = shopify_file(
        tmp_path,
        shopify_order(
            1001,
            [
                ("2", "24.50", "Herbata zielona 100 g", "TEA-1"),
                ("1", "39.00", "Kubek", "MUG-1"),
                ("3", "5.00", "Próbka", "SAMPLE-X"),
            ],
            **{"Discount Code": "WIOSNA10", "Discount Amount": "10.00"},
        ),
        shopify_order(
            1002,
            [("1", "39.00", "", "MUG-1")],
            **{
                "Email": "nowa@example.pl",
                "Billing Name": "Anna Maria Nowak",
                "Fulfillment Status": "fulfilled",
                "Fulfilled at": "2024-03-02 09:00:00 +0100",
            },
        ),
        shopify_order(
            1003,
            [("1", "24.50", "Herbata", "TEA-1")],
            **{
                "Email": "nowa@example.pl",
                "Financial Status": "refunded",
                "Cancelled at": "2024-03-03 10:00:00 +0100",
            },
        ),
    )

    result = run(path, store)

    assert result.errors == []
    assert (result.format, result.variant) == ("shopify", "orders_export")
    assert (result.rows, *counts(result)) == (5, 3, 0, 0)
    assert result.extra == {"lines": 5, "customers_created": 1}

    first = Order.objects.get(store=store, external_id="#1001")
    assert first.number == "#1001"
    assert first.customer == lead
    assert first.status == Order.Status.PAID
    assert first.placed_at == datetime(2024, 3, 1, 11, 30, tzinfo=UTC)
    assert first.paid_at == datetime(2024, 3, 1, 11, 35, tzinfo=UTC)
    assert first.shipped_at is None
    assert first.currency == "PLN"
    assert (first.subtotal, first.discount_total, first.shipping_total) == (
        Decimal("103.00"),
        Decimal("10.00"),
        Decimal("12.99"),
    )
    assert first.total == Decimal("105.99")
    assert (first.payment_method, first.shipping_method, first.coupon_code) == (
        "Przelewy24",
        "InPost Paczkomaty 24/7",
        "WIOSNA10",
    )
    assert first.note == "Proszę o szybką wysyłkę"
    assert first.billing_address == {
        "name": "Zofia Wójcik",
        "street": "ul. Marszałkowska 1",
        "postcode": "00-950",
        "city": "Warszawa",
        "region": "MZ",
        "country": "PL",
        "phone": "+48601234567",
    }
    assert first.shipping_address == {
        "name": "Zofia Wójcik",
        "street": "ul. Długa 5",
        "postcode": "80-001",
        "city": "Gdańsk",
        "country": "PL",
    }
    lines = list(first.lines.order_by("position"))
    assert [
        (
            line.position,
            line.sku,
            line.name,
            line.quantity,
            line.unit_price,
            line.total,
            line.product_id,
            line.category_id,
        )
        for line in lines
    ] == [
        (
            0,
            "TEA-1",
            "Herbata zielona 100 g",
            Decimal("2.000"),
            Decimal("24.50"),
            Decimal("49.00"),
            catalog["TEA-1"].pk,
            catalog["TEA-1"].category_id,
        ),
        (
            1,
            "MUG-1",
            "Kubek",
            Decimal("1.000"),
            Decimal("39.00"),
            Decimal("39.00"),
            catalog["MUG-1"].pk,
            None,
        ),
        (
            2,
            "SAMPLE-X",
            "Próbka",
            Decimal("3.000"),
            Decimal("5.00"),
            Decimal("15.00"),
            None,
            None,
        ),
    ]
    # The existing lead became a buyer; blank names and phone were filled in, the
    # stored email kept.
    lead.refresh_from_db()
    assert lead.status == Customer.Status.BUYER
    assert (lead.first_name, lead.last_name) == ("Zofia", "Wójcik-Stara")
    assert lead.phone == "+48601234567"
    assert lead.email == "klientka1001@example.pl"

    second = Order.objects.get(external_id="#1002")
    assert second.status == Order.Status.SHIPPED
    assert second.shipped_at == datetime(2024, 3, 2, 8, 0, tzinfo=UTC)
    # No name in the file: the product's name, as order_upsert does.
    assert second.lines.get().name == "Kubek"
    anna = second.customer
    assert anna.email == "nowa@example.pl"
    assert (anna.first_name, anna.last_name) == ("Anna", "Maria Nowak")
    assert anna.phone == "+48601234567"
    assert anna.status == Customer.Status.BUYER
    third = Order.objects.get(external_id="#1003")
    assert third.customer == anna  # one new customer for both of her orders
    assert third.status == Order.Status.CANCELLED
    assert third.cancelled_at == datetime(2024, 3, 3, 9, 0, tzinfo=UTC)
    assert Customer.objects.count() == 2
    assert not CustomerIdentity.objects.exists()  # Shopify's file has no customer id

    assert_reimport_changes_nothing(path, store, 3)


def test_shopify_order_straddling_batches(tmp_path, store, catalog):
    path = shopify_file(
        tmp_path,
        shopify_order(1, [("1", "10.00", "A", "TEA-1")]),
        shopify_order(
            2,
            [
                ("1", "10.00", "B1", "TEA-1"),
                ("2", "20.00", "B2", "MUG-1"),
                ("3", "30.00", "B3", ""),
                ("4", "40.00", "B4", ""),
            ],
        ),
        shopify_order(3, [("1", "5.00", "C1", ""), ("1", "6.00", "C2", "")]),
    )
    seen = []

    result = run(path, store, batch_size=2, progress=seen.append)

    assert result.errors == []
    assert counts(result) == (3, 0, 0)
    assert result.extra["lines"] == 7
    assert seen[-1] == result.rows == 7
    assert len(seen) >= 3
    two = Order.objects.get(external_id="#2")
    assert [(line.position, line.name, line.quantity) for line in two.lines.all()] == [
        (0, "B1", Decimal("1")),
        (1, "B2", Decimal("2")),
        (2, "B3", Decimal("3")),
        (3, "B4", Decimal("4")),
    ]
    assert two.subtotal == Decimal("300.00")
    assert Customer.objects.count() == 3
    assert_reimport_changes_nothing(path, store, 3, batch_size=2)


def test_changed_file_updates_only_what_changed(tmp_path, store, catalog):
    lines = [("2", "24.50", "Herbata", "TEA-1"), ("1", "39.00", "Kubek", "MUG-1")]
    run(shopify_file(tmp_path, shopify_order(1, lines), shopify_order(2, lines)), store)
    # The test runs in one transaction, where now() stands still: backdate.
    long_ago = timezone.now() - timedelta(days=30)
    Order.objects.update(updated_at=long_ago)
    one = Order.objects.get(external_id="#1")
    two = Order.objects.get(external_id="#2")
    untouched_lines = list(two.lines.values_list("pk", flat=True))
    changed = shopify_file(
        tmp_path,
        shopify_order(
            1,
            [("3", "24.50", "Herbata", "TEA-1"), ("1", "39.00", "Kubek", "MUG-1")],
            **{
                "Fulfillment Status": "fulfilled",
                "Fulfilled at": "2024-03-05 10:00:00 +0100",
            },
        ),
        shopify_order(2, lines),
        name="later.csv",
    )

    result = run(changed, store)

    assert counts(result) == (0, 1, 1)
    assert result.extra["lines"] == 2
    one_after = Order.objects.get(pk=one.pk)
    assert one_after.status == Order.Status.SHIPPED
    assert one_after.updated_at > long_ago
    assert [line.quantity for line in one_after.lines.all()] == [
        Decimal("3"),
        Decimal("1"),
    ]
    assert one_after.subtotal == Decimal("112.50")
    assert Order.objects.get(pk=two.pk).updated_at == two.updated_at
    assert list(two.lines.values_list("pk", flat=True)) == untouched_lines


# --- WooCommerce, PrestaShop, Magento, generic: sample exports ---------------------

SAMPLES = Path(__file__).parent / "samples"


def sample_subset(tmp_path, name, lines):
    """The sample's first ``lines`` physical lines (the header and some rows)."""
    text = (SAMPLES / name).read_bytes().splitlines(keepends=True)
    path = tmp_path / name
    path.write_bytes(b"".join(text[:lines]))
    return path


def test_woocommerce_order_export(store, catalog):
    path = SAMPLES / "woocommerce_advanced_order_export.csv"

    result = run(path, store)

    assert result.errors == []
    assert (result.format, result.variant) == ("woocommerce", "advanced_order_export")
    assert counts(result) == (3, 0, 0)
    assert result.extra == {"lines": 4, "customers_created": 2}
    order = Order.objects.get(store=store, external_id="501")
    assert order.number == "2024/501"
    assert order.status == Order.Status.DELIVERED
    assert order.placed_at == datetime(2024, 2, 10, 18, 4, tzinfo=WARSAW)
    assert order.paid_at == datetime(2024, 2, 10, 18, 6, tzinfo=WARSAW)
    assert order.shipped_at == datetime(2024, 2, 14, 10, 0, tzinfo=WARSAW)
    assert (order.subtotal, order.discount_total, order.shipping_total) == (
        Decimal("99.00"),
        Decimal("5.00"),
        Decimal("15.00"),
    )
    assert order.total == Decimal("109.00")
    assert (order.payment_method, order.shipping_method, order.coupon_code) == (
        "Przelew bankowy",
        "Kurier DPD",
        "rabat5",
    )
    assert order.note == "Zostawić u sąsiada"
    assert order.billing_address == {
        "first_name": "Jan",
        "last_name": "Kowalski",
        "company": "Kowalski sp. j.",
        "street": "ul. Polna 3 m. 4",
        "postcode": "30-001",
        "city": "Kraków",
        "country": "PL",
        "phone": "+48601234567",
    }
    assert order.shipping_address == {
        "first_name": "Jan",
        "last_name": "Kowalski",
        "street": "ul. Polna 3 m. 4",
        "postcode": "30-001",
        "city": "Kraków",
        "country": "PL",
    }
    assert [
        (line.sku, line.product_id, line.unit_price, line.total)
        for line in order.lines.all()
    ] == [
        ("TEA-1", catalog["TEA-1"].pk, Decimal("30.00"), Decimal("60.00")),
        ("MUG-1", catalog["MUG-1"].pk, Decimal("39.00"), Decimal("39.00")),
    ]
    jan = order.customer
    assert (jan.email, jan.first_name, jan.last_name, jan.phone) == (
        "jan@example.pl",
        "Jan",
        "Kowalski",
        "+48601234567",
    )
    assert jan.status == Customer.Status.BUYER
    # The store's customer id became an identity; user id 0 is a guest checkout.
    identity = CustomerIdentity.objects.get(store=store)
    assert (identity.external_id, identity.customer) == ("17", jan)
    guest = Order.objects.get(external_id="502")
    assert (guest.status, guest.coupon_code) == (Order.Status.PAID, "")
    assert guest.customer.email == "gosc@example.pl"
    assert (guest.customer.first_name, guest.customer.last_name) == ("Ola", "Gość")
    assert guest.lines.get().name == "Zestaw prezentowy"
    pending = Order.objects.get(external_id="503")
    assert (pending.status, pending.customer) == (Order.Status.NEW, jan)
    assert pending.paid_at is None

    assert_reimport_changes_nothing(path, store, 3)


def test_customer_found_by_store_identity(tmp_path, store):
    known = CustomerIdentityFactory(
        store=store, external_id="17", customer__email="inny@example.pl"
    ).customer
    path = sample_subset(tmp_path, "woocommerce_advanced_order_export.csv", 3)

    result = run(path, store)

    assert (result.created, result.extra["customers_created"]) == (1, 0)
    assert Order.objects.get(external_id="501").customer == known
    known.refresh_from_db()
    assert known.email == "inny@example.pl"  # an order does not rewrite the profile
    assert known.status == Customer.Status.BUYER


PRESTASHOP = "prestashop_orders_pl.csv"


def test_prestashop_polish_export_in_windows_1250(store):
    path = SAMPLES / PRESTASHOP

    result = run(path, store)

    assert result.errors == []
    assert (result.encoding, result.delimiter) == ("cp1250", ";")
    assert (result.format, result.variant) == ("prestashop", "orders_export_pl")
    assert counts(result) == (4, 0, 0)
    assert result.extra == {"lines": 0, "customers_created": 4}
    order = Order.objects.get(store=store, external_id="12")
    assert order.number == "XKBKNABJK"
    assert order.status == Order.Status.PAID
    assert order.placed_at == datetime(2024, 3, 1, 12, 30, tzinfo=WARSAW)
    assert order.total == Decimal("1234.56")
    # No lines and no subtotal in a summary: the total says what the goods cost.
    assert order.subtotal == Decimal("1234.56")
    assert order.shipping_total == order.discount_total == Decimal("0")
    assert order.currency == store.currency
    assert order.payment_method == "Przelew bankowy"
    assert order.shipping_address == {"country": "PL"}
    assert not order.lines.exists()
    # The export names the customer but gives no email: a customer per order.
    assert (order.customer.first_name, order.customer.last_name) == ("Łucja", "Żak")
    assert order.customer.email is None
    assert order.customer.status == Customer.Status.BUYER
    statuses = dict(Order.objects.values_list("external_id", "status"))
    assert statuses == {
        "12": "paid",
        "13": "delivered",
        "14": "cancelled",
        "15": "returned",
    }
    gesia = Order.objects.get(external_id="13")
    assert gesia.shipping_address == {"country": "DE"}
    assert gesia.total == Decimal("89.90")
    assert gesia.customer.last_name == "Gęś"
    assert Order.objects.get(external_id="14").placed_at == datetime(
        2024, 3, 3, tzinfo=WARSAW
    )

    # Again: each stored order keeps its customer, nobody new is created.
    assert_reimport_changes_nothing(path, store, 4)


def prestashop_file(tmp_path, *rows):
    """A PrestaShop export (Polish, Windows-1250, semicolons) with these rows."""
    header = (SAMPLES / PRESTASHOP).read_bytes().splitlines()[0].decode("cp1250")
    path = tmp_path / PRESTASHOP
    path.write_bytes("\r\n".join([header, *rows, ""]).encode("cp1250"))
    return path


def test_summary_file_keeps_stored_lines_and_fields_it_lacks(tmp_path, store):
    order = OrderFactory(
        store=store,
        external_id="12",
        number="ZAM/12",
        coupon_code="LATO",
        status=Order.Status.NEW,
    )
    OrderLineFactory(order=order)
    path = prestashop_file(
        tmp_path, "12;XKBKNABJK;0;Polska;Jan Nowak;100,00;PayU;Wysłane;01.03.2024"
    )

    result = run(path, store)

    assert counts(result) == (0, 1, 0)
    order.refresh_from_db()
    assert (order.status, order.number, order.total) == (
        Order.Status.SHIPPED,
        "XKBKNABJK",
        Decimal("100.00"),
    )
    assert order.coupon_code == "LATO"  # no column for it: kept
    assert order.lines.count() == 1
    assert Customer.objects.count() == 1  # the stored order kept its customer


def test_magento_orders_grid_export(store):
    existing = CustomerFactory(email="piotr@example.pl", status="lead")
    path = SAMPLES / "magento_sales_order_grid.csv"

    result = run(path, store)

    assert result.errors == []
    assert (result.format, result.variant) == ("magento", "sales_order_grid")
    assert counts(result) == (5, 0, 0)
    assert result.extra == {"lines": 0, "customers_created": 1}
    order = Order.objects.get(external_id="000000001")
    # PHP's "M j, Y h:i:s A" in the admin's time zone.
    assert order.placed_at == datetime(2024, 3, 1, 14, 30, tzinfo=WARSAW)
    assert (order.subtotal, order.shipping_total, order.total) == (
        Decimal("119.00"),
        Decimal("10.00"),
        Decimal("129.00"),
    )
    assert order.shipping_method == "Flat Rate - Fixed"
    assert order.payment_method == "Check / Money order"
    assert (
        order.billing_address == order.shipping_address == {"name": "Piotr Zieliński"}
    )
    assert order.customer == existing
    existing.refresh_from_db()
    assert existing.status == Customer.Status.BUYER
    assert Order.objects.get(external_id="000000002").customer == existing
    statuses = dict(Order.objects.values_list("external_id", "status"))
    assert statuses == {
        "000000001": "delivered",
        "000000002": "paid",
        "000000003": "cancelled",
        "000000004": "returned",
        "000000005": "new",
    }
    assert Order.objects.get(external_id="000000004").placed_at == datetime(
        2023, 12, 31, 23, 59, tzinfo=WARSAW
    )
    assert Order.objects.get(external_id="000000005").placed_at == datetime(
        2024, 3, 4, 0, 15, tzinfo=WARSAW
    )
    karol = Customer.objects.get(email="nowy@example.pl")
    assert (karol.first_name, karol.last_name) == ("Karol", "Nowy")
    assert karol.orders.count() == 3

    assert_reimport_changes_nothing(path, store, 5)


def test_generic_file(store, catalog):
    path = SAMPLES / "generic_orders.csv"

    result = run(path, store)

    assert result.errors == []
    assert (result.format, result.variant) == ("generic", "orders")
    assert counts(result) == (1, 0, 0)
    order = Order.objects.get(external_id="Z/1")
    assert order.number == "Z/1"
    assert (order.status, order.currency) == (Order.Status.PAID, "EUR")
    assert order.placed_at == datetime(2024, 1, 15, 9, 0, tzinfo=UTC)
    assert order.paid_at == datetime(2024, 1, 15, 10, 5, tzinfo=WARSAW)
    assert (order.subtotal, order.discount_total, order.shipping_total) == (
        Decimal("30.00"),
        Decimal("2.00"),
        Decimal("9.99"),
    )
    assert order.total == Decimal("37.99")
    assert (order.coupon_code, order.payment_method, order.shipping_method) == (
        "NOWY",
        "BLIK",
        "Paczkomat",
    )
    assert order.note == "Faktura"
    assert order.billing_address == {
        "first_name": "Marta",
        "last_name": "Lis",
        "street": "Rynek 1",
        "postcode": "50-101",
        "city": "Wrocław",
        "country": "PL",
    }
    tea = catalog["TEA-1"]
    assert [
        (line.name, line.quantity, line.unit_price, line.total, line.product_id)
        for line in order.lines.all()
    ] == [
        ("Herbata zielona", Decimal("1.5"), Decimal("20"), Decimal("30"), tea.pk),
        ("Gratis", Decimal("1"), Decimal("0"), Decimal("0"), None),
    ]
    marta = order.customer
    assert (marta.email, marta.phone, marta.first_name) == (
        "marta@example.pl",
        "+48502111222",
        "Marta",
    )
    assert marta.identities.get(store=store).external_id == "K-7"

    assert_reimport_changes_nothing(path, store, 1)


def test_one_new_customer_for_one_email_under_two_keys(tmp_path, store):
    path = write_csv(
        tmp_path / "o.csv",
        ["order_id", "placed_at", "email", "customer_external_id", "line_name"]
        + ["line_quantity", "line_unit_price", "line_total"],
        [
            ["A", "2024-05-01", "Ola@Example.pl", "C-1", "Herbata", "2", "", "9.00"],
            ["B", "2024-05-02", "ola@example.pl", "", "Kubek", "1", "5", ""],
            ["C", "2024-05-03", "OLA@EXAMPLE.PL", "C-2", "Kubek", "1", "5", ""],
        ],
    )

    result = run(path, store)

    assert result.errors == []
    assert result.extra["customers_created"] == 1
    ola = Customer.objects.get()
    assert ola.email == "Ola@example.pl"  # the first order's spelling
    assert sorted(ola.identities.values_list("external_id", flat=True)) == [
        "C-1",
        "C-2",
    ]
    assert set(Order.objects.values_list("customer_id", flat=True)) == {ola.pk}
    # Only the line's total given: the unit price is total / quantity.
    line = Order.objects.get(external_id="A").lines.get()
    assert (line.unit_price, line.total) == (Decimal("4.50"), Decimal("9.00"))
    assert_reimport_changes_nothing(path, store, 3)


def test_statistics_are_refreshed_as_the_import_fills_the_tables(
    tmp_path, store, monkeypatch
):
    from django.db import connection

    from orders.importers import orders as importer

    monkeypatch.setattr(importer, "STATISTICS_REFRESH_ROWS", 1)
    path = shopify_file(
        tmp_path,
        *(
            shopify_order(n, [("1", "10.00", "A", ""), ("1", "5.00", "B", "")])
            for n in range(1, 7)
        ),
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        (timeout,) = cursor.fetchone()

    result = run(path, store, batch_size=4)

    assert counts(result) == (6, 0, 0)
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone() == (timeout,)
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE relname = %s",
            [OrderLine._meta.db_table],
        )
        # ANALYZE counted the lines this (still open) transaction inserted.
        assert cursor.fetchone()[0] >= 8


def test_statistics_refresh_is_skipped_when_the_lock_is_taken(
    tmp_path, store, monkeypatch
):
    import psycopg
    from django.db import connection

    from orders.importers import orders as importer

    def reltuples():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples FROM pg_class WHERE relname = %s",
                [Order._meta.db_table],
            )
            return cursor.fetchone()[0]

    monkeypatch.setattr(importer, "STATISTICS_REFRESH_ROWS", 1)
    path = shopify_file(tmp_path, shopify_order(1, [("1", "10.00", "A", "")]))
    # Another session (autovacuum, a concurrent import) is analyzing the first
    # table: it holds ANALYZE's lock, which does not block the import's writes.
    # It sees no committed orders: reltuples becomes 0 (pg_class is updated in
    # place, at once).
    with psycopg.connect(**connection.get_connection_params()) as other:
        other.execute(f"ANALYZE {Order._meta.db_table}")
        assert reltuples() == 0

        result = run(path, store)

    assert (result.created, result.errors) == (1, [])
    # The ANALYZE gave up (else reltuples would be 1), rolled back to its
    # savepoint, lock_timeout with it.
    assert reltuples() == 0
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone() == ("0",)


# --- Bad input -----------------------------------------------------------------------


def test_missing_required_column_fails_at_once_and_writes_nothing(tmp_path, store):
    header = [name for name in SHOPIFY_HEADER if name != "Lineitem quantity"]
    rows = [
        [
            value
            for name, value in zip(SHOPIFY_HEADER, row, strict=True)
            if name != "Lineitem quantity"
        ]
        for row in shopify_order(1, [("1", "10.00", "A", "")])
    ]
    path = write_csv(tmp_path / "o.csv", header, rows)

    with pytest.raises(ValidationError) as raised:
        run(path, store, format="shopify")

    assert raised.value.error_dict["source"][0].code == "missing_columns"
    assert "Lineitem quantity" in raised.value.messages[0]
    assert not Order.objects.exists()
    assert not Customer.objects.exists()


def test_unknown_format_is_a_source_error(tmp_path, store):
    path = write_csv(tmp_path / "o.csv", ["foo", "bar"], [["1", "2"]])

    with pytest.raises(ValidationError) as raised:
        run(path, store)

    assert raised.value.error_dict["source"][0].code == "unknown_format"


def broken_file(tmp_path):
    """Five orders; #2 has a negative quantity on its second line, #3 a bad date,
    #4 a bad email."""
    return shopify_file(
        tmp_path,
        shopify_order(1, [("1", "10.00", "A", "")]),
        shopify_order(2, [("1", "10.00", "B1", ""), ("-1", "10.00", "B2", "")]),
        shopify_order(3, [("1", "10.00", "C", "")], **{"Created at": "2024-13-45"}),
        shopify_order(4, [("1", "10.00", "D", "")], Email="nie-email"),
        shopify_order(5, [("1", "10.00", "E", "")]),
        name="broken.csv",
    )


def test_broken_rows_are_reported_and_abort_writes_nothing(tmp_path, store):
    result = run(broken_file(tmp_path), store, batch_size=2)

    assert result.aborted
    assert counts(result) == (0, 0, 0)
    assert not Order.objects.exists()
    assert not OrderLine.objects.exists()
    assert not Customer.objects.exists()
    assert [(e.line, e.column, e.value, e.code) for e in result.errors] == [
        (4, "Lineitem quantity", "-1", "invalid"),
        (5, "Created at", "2024-13-45", "invalid_date"),
        (6, "Email", "nie-email", "invalid_email"),
    ]
    assert result.errors[0].reason == "Enter a quantity greater than zero."
    assert "2024-13-45" in result.errors[1].reason
    assert result.errors[2].reason == "Enter a valid email address."


def test_skip_imports_the_other_orders_but_never_part_of_one(tmp_path, store):
    result = run(broken_file(tmp_path), store, on_error="skip", batch_size=2)

    assert not result.aborted
    assert result.bad_rows == 3
    assert counts(result) == (2, 0, 0)
    assert sorted(Order.objects.values_list("external_id", flat=True)) == ["#1", "#5"]
    assert OrderLine.objects.count() == 2  # nothing of #2, not even its good line
    assert result.extra == {"lines": 2, "customers_created": 2}


def test_bad_values_of_lines_and_statuses(tmp_path, store):
    path = shopify_file(
        tmp_path,
        shopify_order(1, [("1", "-5.00", "A", "")], Subtotal="5.00", Total="5.00"),
        shopify_order(2, [("0", "5.00", "B", "")]),
        shopify_order(3, [("1", "5.00", "", "")]),
        shopify_order(4, [("1", "5.00", "D", "")], **{"Financial Status": "lost"}),
        shopify_order(5, [("x", "5.00", "E", "")], Subtotal="5.00", Total="5.00"),
    )

    result = run(path, store, on_error="skip")

    assert [(e.line, e.column, e.value, e.code) for e in result.errors] == [
        (2, "Lineitem price", "-5.00", "invalid"),
        (3, "Lineitem quantity", "0", "invalid"),
        (4, "Lineitem name", "", "required"),
        (5, "Financial Status", "lost", "unknown_status"),
        (6, "Lineitem quantity", "x", "invalid"),
    ]
    assert result.errors[0].reason == "Enter an amount of zero or more."
    assert result.errors[3].reason == "Unknown order status: lost."
    assert not Order.objects.exists()


def test_unknown_platform_status_names_the_value(tmp_path, store):
    path = prestashop_file(
        tmp_path, "1;A;0;Polska;Jan Nowak;10,00;PayU;Zaginione;01.03.2024"
    )

    result = run(path, store)

    [error] = result.errors
    assert (error.line, error.column, error.value, error.code) == (
        2,
        "Status",
        "Zaginione",
        "unknown_status",
    )
    assert "Zaginione" in error.reason


def test_rows_without_order_id_and_repeated_orders(tmp_path, store):
    rows = [
        *shopify_order(1, [("1", "10.00", "A", "")]),
        *shopify_order(2, [("1", "10.00", "B", "")]),
        *shopify_order(1, [("1", "10.00", "A again", "")]),
    ]
    rows.append(shopify_order(3, [("1", "10.00", "C", "")])[0])
    rows[-1][0] = ""
    path = write_csv(tmp_path / "o.csv", SHOPIFY_HEADER, rows)

    result = run(path, store, on_error="skip")

    assert [(e.line, e.column, e.code) for e in result.errors] == [
        (4, "Name", "order_repeated"),
        (5, "Name", "required"),
    ]
    assert "line 2" in result.errors[0].reason
    assert counts(result) == (2, 0, 0)
    assert Order.objects.get(external_id="#1").lines.get().name == "A"


def test_dry_run_writes_nothing_and_counts_the_same(tmp_path, store, catalog):
    CustomerFactory(email="klientka2@example.pl")
    OrderFactory(store=store, external_id="#3")
    path = shopify_file(
        tmp_path,
        *(shopify_order(n, [("1", "10.00", "A", "TEA-1")]) for n in range(1, 5)),
    )
    before = snapshot()

    dry = run(path, store, dry_run=True)

    assert dry.dry_run
    assert snapshot() == before
    real = run(path, store)
    assert counts(dry) == counts(real) == (3, 1, 0)
    assert dry.extra == real.extra == {"lines": 4, "customers_created": 3}


def test_erased_customers_order_keeps_its_customer_and_empty_addresses(tmp_path, store):
    erased = CustomerFactory(email=None, first_name="", last_name="", phone="")
    Customer.objects.filter(pk=erased.pk).update(erased_at=timezone.now())
    OrderFactory(store=store, external_id="#1", customer=erased, status="new")
    path = shopify_file(tmp_path, shopify_order(1, [("1", "10.00", "A", "")]))

    result = run(path, store)

    assert result.errors == []
    order = Order.objects.get(external_id="#1")
    assert order.customer_id == erased.pk
    assert order.billing_address == order.shipping_address == {}
    assert order.note == ""
    assert order.status == Order.Status.PAID  # accounting facts still follow the shop
    assert not Customer.objects.filter(email__iexact="klientka1@example.pl").exists()
    erased.refresh_from_db()
    assert (erased.first_name, erased.phone) == ("", "")


# --- Interfaces ----------------------------------------------------------------------


def test_registered_as_the_orders_kind():
    kind = registry.get("orders")
    assert kind.run is orders_import
    assert kind.permission == "orders.change_order"


def test_import_csv_command(tmp_path, store, capsys):
    path = broken_file(tmp_path)

    with pytest.raises(CommandError):
        call_command("import_csv", "--kind", "orders", "--store", store.code, path)
    assert not Order.objects.exists()

    call_command(
        "import_csv", "--kind", "orders", "--store", store.code, "--skip-bad-rows", path
    )
    out = capsys.readouterr().out
    assert "Format: shopify (orders_export)" in out
    assert "Created: 2" in out
    assert Order.objects.count() == 2
    report = tmp_path / "broken.errors.csv"
    lines = list(csv.reader(report.read_text(encoding="utf-8").splitlines()))
    assert [line[:2] for line in lines[1:]] == [
        ["4", "Lineitem quantity"],
        ["5", "Created at"],
        ["6", "Email"],
    ]


def test_the_import_wizard_checks_and_runs_an_orders_file(store, make_staff):
    from customers.imports import (
        import_job_check,
        import_job_confirm,
        import_job_create,
        import_job_run,
    )
    from customers.models import ImportJob

    manager = make_staff("Manager")
    with open(SAMPLES / "woocommerce_advanced_order_export.csv", "rb") as handle:
        job = import_job_create(
            file=handle, filename="woo.csv", kind="orders", store=store, actor=manager
        )

    import_job_check(job=job)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.CHECKED, job.message
    assert (job.checked["created"], job.checked["extra"]) == (
        3,
        {"lines": 4, "customers_created": 2},
    )
    assert not Order.objects.exists()  # the check is a dry run
    import_job_confirm(job=job, actor=manager)
    import_job_run(job=job)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.message
    assert (job.created, job.extra) == (3, {"lines": 4, "customers_created": 2})
    assert Order.objects.count() == 3


# --- Size ----------------------------------------------------------------------------


def test_large_shopify_file(tmp_path, store, catalog):
    """IMPORT_BENCH_ORDER_LINES=100000 measures; the default keeps the suite quick.

    2.5 lines per order on average; a customer (email and phone) orders 2 times.
    """
    size = int(os.environ.get("IMPORT_BENCH_ORDER_LINES", "3000"))
    customers = size // 5 + 1
    start = datetime(2022, 1, 1, tzinfo=UTC)

    def orders():
        lines = 0
        number = 0
        while lines < size:
            number += 1
            count = min(1 + number % 4, size - lines)
            lines += count
            who = number % customers
            yield shopify_order(
                number,
                [
                    ("1", "19.99", f"Produkt {n}", ("TEA-1", "MUG-1", "")[n % 3])
                    for n in range(count)
                ],
                Email=f"klient{who}@example.pl",
                **{
                    "Billing Phone": f"+48 601 {who // 1000:03d} {who % 1000:03d}",
                    "Created at": (start + timedelta(minutes=number)).isoformat(),
                    "Financial Status": ("paid", "pending", "refunded")[number % 3],
                },
            )

    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SHOPIFY_HEADER)
        for rows in orders():
            writer.writerows(rows)

    started = time.monotonic()
    result = run(path, store)
    seconds = time.monotonic() - started
    print(  # noqa: T201
        f"\n{size} lines, {result.created} orders, "
        f"{result.extra['customers_created']} customers in {seconds:.1f} s: "
        f"{size / seconds:.0f} rows/s"
    )
    assert result.errors == []
    assert result.extra["lines"] == size == OrderLine.objects.count()
    assert result.created == Order.objects.count()
    assert result.extra["customers_created"] == Customer.objects.count()
    started = time.monotonic()
    again = run(path, store)
    seconds = time.monotonic() - started
    print(f"re-import: {seconds:.1f} s: {size / seconds:.0f} rows/s")  # noqa: T201
    assert counts(again) == (0, 0, result.created)
    assert again.extra == {"lines": 0, "customers_created": 0}
