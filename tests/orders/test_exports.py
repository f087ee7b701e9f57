"""Order exports: staff list downloads (CSV, XLSX) and the admin's buttons."""

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import openpyxl
import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone, translation

from consents.models import AccessLog
from customers.exports import XLSX_CONTENT_TYPE
from customers.importers.formats import ORDER_FIELDS, map_header
from customers.models import Customer
from orders.exports import ORDER_COLUMNS
from orders.models import Order
from tests.factories.customers import CustomerFactory, CustomerIdentityFactory
from tests.factories.orders import OrderFactory, OrderLineFactory

pytestmark = pytest.mark.django_db

LIST = reverse("orders:list")
CSV_URL = reverse("orders:export", args=["csv"])
XLSX_URL = reverse("orders:export", args=["xlsx"])
ADMIN_CHANGELIST = reverse("admin:orders_order_changelist")
ADMIN_IMPORT = reverse("admin:orders_order_import")
ADMIN_PROCESS_IMPORT = reverse("admin:orders_order_process_import")
ADMIN_EXPORT = reverse("admin:orders_order_export")
FORMULAS = ['=HYPERLINK("http://x")', "+1", "-1", "@SUM(A1)", "\tTab", "\rCR"]


@pytest.fixture(autouse=True)
def _english(client):
    """Messages are checked in English (Polish is the default language).

    The code's messages by override; staff pages by their language cookie.
    """
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def manager(client, make_staff):
    user = make_staff("Manager")
    client.force_login(user)
    return user


def at(days: int) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


def body(response) -> bytes:
    """A download's bytes: the staff pages stream, the admin does not."""
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    content = body(response)
    text = content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:], newline="")))


def xlsx_sheet(response):
    assert response.status_code == 200
    assert response["Content-Type"] == XLSX_CONTENT_TYPE
    content = body(response)
    return openpyxl.load_workbook(io.BytesIO(content)).active


def column(rows: list[list], name: str) -> list:
    index = rows[0].index(name)
    return [row[index] for row in rows[1:]]


# ---------- Staff list export ----------


def test_columns_are_the_generic_orders_names():
    assert set(ORDER_COLUMNS) <= set(ORDER_FIELDS)
    mapping = map_header(list(ORDER_COLUMNS), "generic", "orders")
    assert mapping.columns == {name: name for name in ORDER_COLUMNS}


def test_csv_export_is_the_filtered_list_one_row_per_line(client, manager, store):
    customer = CustomerFactory(first_name="Anna", last_name="Nowak")
    CustomerIdentityFactory(customer=customer, store=store, external_id="C-1")
    order = OrderFactory(
        store=store,
        customer=customer,
        external_id="O-1",
        number="ZAM/1",
        placed_at=at(1),
        billing_address={"address1": "ul. Polna 1", "zip": "00-950", "city": "Łódź"},
    )
    OrderLineFactory(order=order, position=0, name="Herbata", quantity=Decimal(2))
    OrderLineFactory(order=order, position=1, name="Kawa", quantity=Decimal(1))
    OrderFactory(store=store, customer=customer, external_id="O-2", placed_at=at(2))
    OrderFactory(store=store, status=Order.Status.NEW, placed_at=at(0))

    rows = csv_rows(client.get(CSV_URL, {"status": "paid", "page": "2"}))

    assert rows[0] == list(ORDER_COLUMNS)
    assert column(rows, "order_id") == ["O-1", "O-1", "O-2"]
    assert column(rows, "line_name") == ["Herbata", "Kawa", ""]
    assert column(rows, "line_quantity") == ["2.000", "1.000", ""]
    assert column(rows, "order_number")[0] == "ZAM/1"
    assert column(rows, "total")[0] == "112.99"
    assert column(rows, "status") == ["paid"] * 3
    assert column(rows, "customer_external_id") == ["C-1"] * 3
    assert column(rows, "customer_name") == ["Anna Nowak"] * 3
    assert column(rows, "email") == [customer.email] * 3
    assert column(rows, "billing_street")[0] == "ul. Polna 1"
    assert column(rows, "billing_postcode")[0] == "00-950"
    assert column(rows, "billing_city")[0] == "Łódź"


def test_export_of_one_customers_orders(client, manager):
    customer = CustomerFactory()
    mine = OrderFactory(customer=customer)
    OrderFactory()

    rows = csv_rows(client.get(CSV_URL, {"customer": customer.pk}))

    assert column(rows, "order_id") == [mine.external_id]


def test_xlsx_export_is_the_filtered_list(client, manager):
    order = OrderFactory(status=Order.Status.SHIPPED)
    OrderLineFactory(order=order, name="Herbata")
    OrderFactory(status=Order.Status.PAID)

    response = client.get(XLSX_URL, {"status": "shipped"})

    assert 'filename="orders-' in response["Content-Disposition"]
    rows = [list(row) for row in xlsx_sheet(response).iter_rows(values_only=True)]
    assert rows[0] == list(ORDER_COLUMNS)
    assert column(rows, "order_id") == [order.external_id]
    assert column(rows, "line_name") == ["Herbata"]


@pytest.mark.parametrize("value", FORMULAS)
def test_cells_are_formula_safe_in_csv_and_xlsx(client, manager, value):
    order = OrderFactory(
        customer=CustomerFactory(first_name=value, last_name="Nowak"),
        payment_method=value,
    )
    OrderLineFactory(order=order, name=value)

    rows = csv_rows(client.get(CSV_URL))
    sheet = xlsx_sheet(client.get(XLSX_URL))

    assert column(rows, "line_name") == [f"'{value}"]
    assert column(rows, "payment_method") == [f"'{value}"]
    if not value[0].isspace():  # full_name strips a leading tab or CR
        assert column(rows, "customer_name") == [f"'{value} Nowak"]
    header = [cell.value for cell in sheet[1]]
    for name in ("line_name", "payment_method"):
        cell = sheet.cell(row=2, column=header.index(name) + 1)
        assert cell.data_type == "s"
        assert cell.value in (f"'{value}", f"'{value}".replace("\r", "\n"))


def test_orders_of_restricted_or_erased_customers_are_left_out(client, manager):
    kept = OrderFactory()
    OrderFactory(customer=CustomerFactory(restricted_at=timezone.now()))
    OrderFactory(customer=CustomerFactory(erased_at=timezone.now(), email=None))

    rows = csv_rows(client.get(CSV_URL))

    assert column(rows, "order_id") == [kept.external_id]


@pytest.mark.parametrize("url", [CSV_URL, XLSX_URL])
def test_the_orders_customers_are_in_the_access_log(client, manager, url):
    anna, jan = CustomerFactory(), CustomerFactory()
    OrderFactory(customer=anna)
    OrderFactory(customer=anna)
    OrderFactory(customer=jan)

    response = client.get(url)
    b"".join(response.streaming_content)

    entries = AccessLog.objects.filter(action="export", user=manager)
    assert sorted(entries.values_list("customer_id", flat=True)) == sorted(
        [anna.pk, jan.pk]
    )


# ---------- Permissions and buttons ----------


def test_support_gets_403_and_no_buttons(client, make_staff):
    client.force_login(make_staff("Support"))
    OrderFactory()

    assert client.get(CSV_URL).status_code == 403
    assert client.get(XLSX_URL).status_code == 403
    page = client.get(LIST)
    assert page.status_code == 200
    assert CSV_URL.encode() not in page.content
    assert not AccessLog.objects.filter(action="export").exists()


def test_manager_sees_buttons_carrying_the_filter(client, manager):
    customer = CustomerFactory()

    page = client.get(LIST, {"customer": customer.pk, "status": "paid", "page": "2"})

    html = page.content.decode()
    for url in (CSV_URL, XLSX_URL):
        [href] = re.findall(rf'href="({re.escape(url)}[^"]*)"', html)
        assert f"customer={customer.pk}" in href
        assert "status=paid" in href
        assert "page" not in href


# ---------- Admin ----------


@pytest.fixture
def admin_client(client, admin_user, settings):
    client.force_login(admin_user)
    # Staff pages speak the language of the switcher's cookie (Polish without it).
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def test_admin_changelist_has_import_and_export_buttons(admin_client):
    page = admin_client.get(ADMIN_CHANGELIST)

    assert page.status_code == 200
    assert ADMIN_IMPORT.encode() in page.content
    assert ADMIN_EXPORT.encode() in page.content


def test_admin_buttons_need_the_order_permissions(client, make_staff):
    client.force_login(make_staff("Support"))

    page = client.get(ADMIN_CHANGELIST)

    assert page.status_code == 200
    assert ADMIN_IMPORT.encode() not in page.content
    assert ADMIN_EXPORT.encode() not in page.content
    assert client.get(ADMIN_EXPORT).status_code == 403
    assert client.get(ADMIN_IMPORT).status_code == 403


def test_admin_export_is_escaped_and_logged(admin_client, admin_user):
    order = OrderFactory(coupon_code="=1+1")
    fields = {f"orderresource_{name}": "on" for name in ORDER_COLUMNS}

    response = admin_client.post(
        ADMIN_EXPORT, {"resource": "0", "format": "0", **fields}
    )

    rows = csv_rows(response)
    assert column(rows, "coupon_code") == ["'=1+1"]
    entry = AccessLog.objects.get(action="export")
    assert (entry.customer_id, entry.user) == (order.customer_id, admin_user)


def upload(client, store, content: str):
    file = io.BytesIO(content.encode("utf-8"))
    file.name = "orders.csv"
    return client.post(
        ADMIN_IMPORT,
        {"resource": "0", "format": "0", "store": store.pk, "import_file": file},
    )


def test_admin_import_writes_orders_through_order_upsert(admin_client, store):
    content = (
        "order_id;placed_at;status;email;customer_name;line_name;line_quantity;"
        "line_unit_price\n"
        'Z-1;01.03.2026 12:30;zrealizowane;ola@example.pl;Ola Nowak;Herbata;2;"12,50"\n'
        "Z-1;;;;;Kawa;1;30\n"
    )

    preview = upload(admin_client, store, content)

    result = preview.context["result"]
    assert not result.has_errors()
    assert not result.has_validation_errors()
    assert [row.import_type for row in result.rows] == ["new", "skip"]
    assert not Order.objects.exists()  # the preview was a dry run
    confirm = preview.context["confirm_form"]

    response = admin_client.post(ADMIN_PROCESS_IMPORT, confirm.initial)

    assert response.status_code == 302
    order = Order.objects.get(store=store, external_id="Z-1")
    assert order.status == Order.Status.DELIVERED
    assert order.total == Decimal("55.00")
    assert [(line.name, line.total) for line in order.lines.order_by("position")] == [
        ("Herbata", Decimal("25.00")),
        ("Kawa", Decimal("30.00")),
    ]
    customer = order.customer
    assert (customer.email, customer.first_name, customer.last_name) == (
        "ola@example.pl",
        "Ola",
        "Nowak",
    )
    assert customer.status == Customer.Status.BUYER


def test_admin_import_reports_each_bad_row(admin_client, store):
    content = (
        "order_id,placed_at,status,email,line_name,line_quantity,line_unit_price\n"
        "Z-1,2026-03-01,paid,ola@example.pl,Herbata,1,10\n"
        "Z-1,,,,Kawa,dużo,10\n"
        "Z-2,2026-03-02,zaginione,jan@example.pl,Kawa,1,10\n"
    )

    response = upload(admin_client, store, content)

    result = response.context["result"]
    assert "confirm_form" not in response.context
    invalid = {row.number: row.error_dict for row in result.invalid_rows}
    assert set(invalid) == {1, 2, 3}
    assert "line_quantity" in invalid[2]
    assert invalid[1]["__all__"] == ["This order is not imported: row 2 has errors."]
    assert "Unknown order status: zaginione." in invalid[3]["status"][0]
    assert not Order.objects.exists()


def test_an_export_imported_again_through_the_admin_changes_nothing(
    admin_client, store
):
    customer = CustomerFactory(first_name='=HYPERLINK("http://x")')
    order = OrderFactory(
        store=store,
        customer=customer,
        billing_address={"street": "ul. Polna 1", "postcode": "00-950", "city": "Łódź"},
    )
    OrderLineFactory(order=order, position=0)
    OrderLineFactory(order=order, position=1, quantity=Decimal("1.5"))
    OrderFactory(store=store, customer=customer)
    exported = b"".join(admin_client.get(CSV_URL).streaming_content).decode("utf-8")
    before = dict(Order.objects.values_list("pk", "updated_at"))

    preview = upload(admin_client, store, exported)

    result = preview.context["result"]
    assert not result.has_errors()
    assert not result.has_validation_errors()
    assert {row.import_type for row in result.rows} == {"skip"}
    admin_client.post(ADMIN_PROCESS_IMPORT, preview.context["confirm_form"].initial)
    assert dict(Order.objects.values_list("pk", "updated_at")) == before
    assert Customer.objects.count() == 1


def test_admin_import_keeps_what_the_file_cannot_say(admin_client, store):
    customer = CustomerFactory(email="ola@example.pl")
    order = OrderFactory(
        store=store,
        customer=customer,
        external_id="Z-1",
        payment_method="BLIK",
        source="allegro",
        utm_source="newsletter",
        delivered_at=at(1),
    )
    OrderLineFactory(order=order, name="Herbata")
    content = (
        "order_id,placed_at,status,email,total,line_name,line_quantity,line_total\n"
        f"Z-1,{order.placed_at.isoformat()},delivered,ola@example.pl,99.00,,,\n"
    )

    preview = upload(admin_client, store, content)
    assert [row.import_type for row in preview.context["result"].rows] == ["update"]
    admin_client.post(ADMIN_PROCESS_IMPORT, preview.context["confirm_form"].initial)

    order.refresh_from_db()
    assert (order.status, order.total) == (Order.Status.DELIVERED, Decimal("99.00"))
    assert (order.payment_method, order.source, order.utm_source) == (
        "BLIK",
        "allegro",
        "newsletter",
    )
    assert order.delivered_at is not None
    assert list(order.lines.values_list("name", flat=True)) == ["Herbata"]


def test_admin_import_does_not_bring_an_erased_customer_back(admin_client, store):
    erased = CustomerFactory(
        email=None, first_name="", last_name="", phone="", erased_at=timezone.now()
    )
    order = OrderFactory(store=store, customer=erased, external_id="Z-1")
    content = (
        "order_id,placed_at,email,customer_name,billing_street,line_name,"
        "line_quantity,line_unit_price\n"
        f"Z-1,{order.placed_at.isoformat()},ola@example.pl,Ola Nowak,ul. Polna 1,"
        "Herbata,1,10\n"
    )

    preview = upload(admin_client, store, content)
    admin_client.post(ADMIN_PROCESS_IMPORT, preview.context["confirm_form"].initial)

    order.refresh_from_db()
    assert order.customer_id == erased.pk
    assert order.billing_address == {}
    assert not Customer.objects.filter(email="ola@example.pl").exists()
