"""Customer exports: staff list downloads (CSV, XLSX) and the admin's buttons."""

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import openpyxl
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from consents.models import AccessLog
from customers import exports
from customers.exports import CUSTOMER_COLUMNS, export_cell
from customers.importers.customers import customers_import
from customers.importers.formats import CUSTOMER_FIELDS, map_header
from customers.importers.reading import open_csv
from customers.models import Address, Customer, CustomerIdentity
from customers.signals import personal_data_accessed
from tests.factories.customers import (
    AddressFactory,
    CustomerFactory,
    CustomerIdentityFactory,
    StoreFactory,
    TagFactory,
)

pytestmark = pytest.mark.django_db

LIST = reverse("customers:list")
CSV_URL = reverse("customers:export", args=["csv"])
XLSX_URL = reverse("customers:export", args=["xlsx"])
ADMIN_CHANGELIST = reverse("admin:customers_customer_changelist")
ADMIN_IMPORT = reverse("admin:customers_customer_import")
ADMIN_PROCESS_IMPORT = reverse("admin:customers_customer_process_import")
ADMIN_EXPORT = reverse("admin:customers_customer_export")

# Values a spreadsheet would run as a formula (CSV injection), and how they leave.
FORMULAS = ['=HYPERLINK("http://x")', "+48 cmd", "-2+3", "@SUM(A1)", "\tTab", "\rCR"]


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


@pytest.fixture
def support(client, make_staff):
    user = make_staff("Support")
    client.force_login(user)
    return user


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:], newline="")))


def xlsx_rows(response) -> list[list]:
    assert response.status_code == 200
    assert response["Content-Type"] == exports.XLSX_CONTENT_TYPE
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    return [list(row) for row in workbook.active.iter_rows(values_only=True)]


def column(rows: list[list], name: str) -> list:
    index = rows[0].index(name)
    return [row[index] for row in rows[1:]]


def export_log(user) -> list[int]:
    return sorted(
        AccessLog.objects.filter(action="export", user=user).values_list(
            "customer_id", flat=True
        )
    )


# ---------- Columns ----------


def test_columns_are_the_generic_import_names():
    assert set(CUSTOMER_COLUMNS) <= set(CUSTOMER_FIELDS)
    mapping = map_header(list(CUSTOMER_COLUMNS), "generic", "customers")
    assert mapping.columns == {name: name for name in CUSTOMER_COLUMNS}
    assert mapping.unmapped == ()


@pytest.mark.parametrize("value", FORMULAS)
def test_export_cell_escapes_formulas(value):
    assert export_cell(value) == f"'{value}"


def test_export_cell_texts():
    moment = dt.datetime(2026, 3, 1, 11, 30, tzinfo=dt.UTC)
    assert export_cell(moment) == "2026-03-01T12:30:00+01:00"
    assert export_cell(dt.date(1990, 5, 12)) == "1990-05-12"
    assert export_cell(Decimal("120.50")) == "120.50"
    assert (export_cell(True), export_cell(None), export_cell("Ala")) == (
        "true",
        "",
        "Ala",
    )
    # XML cannot hold C0 control characters; a formula start behind one is caught.
    assert export_cell("A\x00B\x1f") == "AB"
    assert export_cell("\x01=1+1") == "'=1+1"


# ---------- Staff list export ----------


def test_csv_export_is_the_filtered_list_in_generic_columns(client, manager, store):
    vip = TagFactory(name="VIP")
    older = CustomerFactory(last_name="Starsza")
    older.tags.add(vip)
    newer = CustomerFactory(last_name="Nowsza")
    newer.tags.add(vip)
    CustomerFactory(last_name="Bez tagu")
    CustomerIdentityFactory(customer=newer, store=store, external_id="C-1")

    rows = csv_rows(client.get(CSV_URL, {"tag": vip.pk, "page": "3"}))

    assert rows[0] == list(CUSTOMER_COLUMNS)
    assert column(rows, "last_name") == ["Nowsza", "Starsza"]  # the list's order
    assert column(rows, "email") == [newer.email, older.email]
    assert column(rows, "tags") == ["VIP", "VIP"]
    # The only store's ids fill external_id.
    assert column(rows, "external_id") == ["C-1", ""]


def test_export_follows_the_lists_order_and_search(client, manager):
    CustomerFactory(last_name="Zielińska", email="z@example.pl")
    CustomerFactory(last_name="Adamska", email="a@example.pl")
    CustomerFactory(last_name="Kowalska", email="k@inny.pl")

    rows = csv_rows(client.get(CSV_URL, {"q": "example.pl", "o": "name"}))

    assert column(rows, "last_name") == ["Adamska", "Zielińska"]


def test_xlsx_export_is_the_filtered_list(client, manager):
    lead = CustomerFactory(status=Customer.Status.LEAD, first_name="Ola")
    CustomerFactory(status=Customer.Status.BUYER)

    response = client.get(XLSX_URL, {"status": "lead"})

    assert response["Content-Disposition"].startswith(
        'attachment; filename="customers-'
    )
    rows = xlsx_rows(response)
    assert rows[0] == list(CUSTOMER_COLUMNS)
    assert column(rows, "email") == [lead.email]
    assert column(rows, "first_name") == ["Ola"]


@pytest.mark.parametrize("value", FORMULAS)
def test_csv_cells_are_formula_safe(client, manager, value):
    CustomerFactory(first_name=value, company=value)

    rows = csv_rows(client.get(CSV_URL))

    assert column(rows, "first_name") == [f"'{value}"]
    assert column(rows, "company") == [f"'{value}"]


@pytest.mark.parametrize("value", FORMULAS)
def test_xlsx_cells_are_formula_safe(client, manager, value):
    CustomerFactory(first_name=value)

    response = client.get(XLSX_URL)

    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    sheet = workbook.active
    header = [cell.value for cell in sheet[1]]
    cell = sheet.cell(row=2, column=header.index("first_name") + 1)
    assert cell.data_type == "s"  # text, never a formula
    # XML reads a lone carriage return back as a newline.
    assert cell.value in (f"'{value}", f"'{value}".replace("\r", "\n"))
    assert cell.value.startswith("'")


def test_phone_and_names_come_out_escaped_not_mangled(client, manager):
    CustomerFactory(
        first_name='=HYPERLINK("http://x")', phone="+48601234567", email="a@b.pl"
    )

    rows = csv_rows(client.get(CSV_URL))

    assert column(rows, "first_name") == ['\'=HYPERLINK("http://x")']
    assert column(rows, "phone") == ["'+48601234567"]
    assert column(rows, "email") == ["a@b.pl"]


def test_restricted_and_erased_customers_are_left_out(client, manager):
    kept = CustomerFactory()
    CustomerFactory(restricted_at=timezone.now())
    CustomerFactory(erased_at=timezone.now(), email=None, first_name="", last_name="")

    rows = csv_rows(client.get(CSV_URL))

    assert column(rows, "email") == [kept.email]
    assert export_log(manager) == [kept.pk]


@pytest.mark.parametrize("url", [CSV_URL, XLSX_URL])
def test_each_exported_customer_is_in_the_access_log(client, manager, url):
    customers = [CustomerFactory() for _ in range(3)]
    CustomerFactory(restricted_at=timezone.now())

    response = client.get(url)
    b"".join(response.streaming_content)

    assert export_log(manager) == sorted(c.pk for c in customers)
    entry = AccessLog.objects.filter(action="export").first()
    assert entry.ip_address == "127.0.0.1"


def test_the_log_is_sent_per_chunk_before_its_rows(client, manager, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK_SIZE", 2)
    customers = [CustomerFactory() for _ in range(5)]
    sent = []

    def receiver(sender, customer_ids, action, **kwargs):
        sent.append((action, customer_ids))

    personal_data_accessed.connect(receiver)
    try:
        response = client.get(CSV_URL)
        assert sent == []  # nothing read yet: the file streams
        rows = csv_rows(response)
    finally:
        personal_data_accessed.disconnect(receiver)

    assert [len(ids) for _action, ids in sent] == [2, 2, 1]
    assert {action for action, _ids in sent} == {"export"}
    assert sorted(i for _a, ids in sent for i in ids) == sorted(c.pk for c in customers)
    assert len(rows) == 6


def test_external_ids_are_those_of_the_stores_filter(client, manager):
    shop, marketplace = StoreFactory(code="shop"), StoreFactory(code="allegro")
    customer = CustomerFactory()
    CustomerIdentityFactory(customer=customer, store=shop, external_id="S-1")
    CustomerIdentityFactory(customer=customer, store=marketplace, external_id="A-9")

    in_marketplace = csv_rows(client.get(CSV_URL, {"store": marketplace.pk}))
    unfiltered = csv_rows(client.get(CSV_URL))

    assert column(in_marketplace, "external_id") == ["A-9"]
    # Two stores and no store filter: no store's ids (a file goes into one store).
    assert column(unfiltered, "external_id") == [""]


def test_address_and_profile_columns(client, manager):
    customer = CustomerFactory(
        nip="5260001246",
        birth_date=dt.date(1990, 5, 12),
        gender="female",
        language="en",
        note="Lubi herbatę",
        imported_total_spent=Decimal("120.50"),
        imported_orders_count=2,
    )
    AddressFactory(
        customer=customer,
        kind=Address.Kind.BILLING,
        street="ul. Polna 1",
        postcode="00-950",
        city="Warszawa",
    )

    [header, row] = csv_rows(client.get(CSV_URL))

    values = dict(zip(header, row, strict=True))
    assert values["nip"] == "5260001246"
    assert values["birth_date"] == "1990-05-12"
    assert (values["gender"], values["language"]) == ("female", "en")
    assert (values["street"], values["postcode"], values["city"]) == (
        "ul. Polna 1",
        "00-950",
        "Warszawa",
    )
    assert values["country"] == "PL"
    assert (values["is_default_billing"], values["is_default_shipping"]) == (
        "true",
        "false",
    )
    assert (values["note"], values["total_spent"], values["orders_count"]) == (
        "Lubi herbatę",
        "120.50",
        "2",
    )


def test_export_queries_do_not_grow_with_the_rows(client, manager):
    def queries(adding, total):
        for _ in range(adding):
            customer = CustomerFactory()
            AddressFactory(customer=customer)
            customer.tags.add(TagFactory())
        with CaptureQueriesContext(connection) as captured:
            rows = csv_rows(client.get(CSV_URL))
        assert len(rows) == total + 1
        return len(captured)

    assert queries(2, total=2) == queries(10, total=12)


def test_reexport_round_trip_changes_nothing(client, manager, store, tmp_path):
    """An exported customers CSV imported again into the same store is a no-op."""
    vip = TagFactory(name="VIP")
    formula = CustomerFactory(
        first_name='=HYPERLINK("http://x")',
        last_name="-Minus",
        company="@Firma",
        nip="5260001246",
        birth_date=dt.date(1990, 5, 12),
        gender="female",
        language="en",
        last_seen_at=timezone.now() - dt.timedelta(days=3),
    )
    formula.tags.add(vip, TagFactory(name="+plus"))
    CustomerIdentityFactory(customer=formula, store=store, external_id="C-7")
    AddressFactory(customer=formula, street="ul. Polna 1", postcode="00-950")
    billing_only = CustomerFactory(phone="+48601000002")
    AddressFactory(customer=billing_only, kind=Address.Kind.BILLING)
    CustomerFactory(phone="", email="bez.telefonu@example.pl")
    path = tmp_path / "customers.csv"
    response = client.get(CSV_URL)
    path.write_bytes(b"".join(response.streaming_content))
    before = dict(Customer.objects.values_list("pk", "updated_at"))
    addresses = Address.objects.count()

    result = customers_import(source=open_csv(path), store=store, format="generic")

    assert result.errors == []
    assert (result.created, result.updated, result.unchanged) == (0, 0, 3)
    assert dict(Customer.objects.values_list("pk", "updated_at")) == before
    assert Address.objects.count() == addresses
    assert CustomerIdentity.objects.count() == 1
    formula.refresh_from_db()
    assert formula.first_name == '=HYPERLINK("http://x")'


# ---------- Permissions and buttons ----------


def test_support_gets_403_and_no_buttons(client, support):
    CustomerFactory()

    assert client.get(CSV_URL).status_code == 403
    assert client.get(XLSX_URL).status_code == 403
    page = client.get(LIST)
    assert page.status_code == 200
    assert reverse("customers:export", args=["csv"]).encode() not in page.content
    assert b"Export CSV" not in page.content
    assert not AccessLog.objects.filter(action="export").exists()


def test_dpo_may_export(client, make_staff):
    client.force_login(make_staff("Data protection officer"))
    CustomerFactory()

    assert client.get(CSV_URL).status_code == 200


def test_buttons_carry_the_lists_filter_without_the_page(client, manager):
    tag = TagFactory()

    page = client.get(LIST, {"tag": tag.pk, "o": "email", "page": "2"})

    html = page.content.decode()
    for url in (CSV_URL, XLSX_URL):
        [href] = re.findall(rf'href="({re.escape(url)}[^"]*)"', html)
        assert f"tag={tag.pk}" in href
        assert "o=email" in href
        assert "page" not in href
    assert "Export CSV" in html
    assert "Export XLSX" in html


def test_anonymous_users_are_sent_to_login(client):
    response = client.get(CSV_URL)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_unknown_format_is_404(client, manager):
    assert client.get(reverse("customers:export", args=["pdf"])).status_code == 404


def test_a_filter_the_list_rejects_goes_back_to_the_list(client, manager):
    CustomerFactory()

    response = client.get(CSV_URL, {"status": "nonsense"})

    assert response.status_code == 302
    assert response.url == f"{LIST}?status=nonsense"
    assert not AccessLog.objects.filter(action="export").exists()


# ---------- Admin: buttons, import through customer_upsert, export ----------


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


def test_admin_buttons_follow_the_permissions(client, make_staff):
    client.force_login(make_staff("Support"))

    page = client.get(ADMIN_CHANGELIST)

    assert page.status_code == 200
    assert ADMIN_EXPORT.encode() not in page.content
    assert client.get(ADMIN_EXPORT).status_code == 403
    # Support adds and changes customers: the import is theirs.
    assert ADMIN_IMPORT.encode() in page.content


def upload(client, store, content: str, *, name="customers.csv"):
    """The import form's POST: the file, its format (0 = CSV) and the store."""
    file = io.BytesIO(content.encode("utf-8"))
    file.name = name
    return client.post(
        ADMIN_IMPORT,
        {"resource": "0", "format": "0", "store": store.pk, "import_file": file},
    )


def test_admin_import_reports_row_errors_and_writes_nothing(admin_client, store):
    response = upload(
        admin_client,
        store,
        "email,first_name,phone\n"
        "ok@example.pl,Ola,\n"
        "not-an-email,Jan,\n"
        "ktos@example.pl,Ewa,123\n",
    )

    assert response.status_code == 200
    result = response.context["result"]
    assert result.has_validation_errors()
    assert "confirm_form" not in response.context
    invalid = {row.number: row.error_dict for row in result.invalid_rows}
    assert set(invalid) == {2, 3}
    assert "email" in invalid[2]
    assert "phone" in invalid[3]
    assert b"Some rows failed to validate" in response.content
    assert not Customer.objects.exists()


def test_admin_import_writes_through_customer_upsert(admin_client, store):
    anna = CustomerFactory(email="anna@example.pl", first_name="Anna", last_name="")
    content = (
        "\ufeffE-mail;Imię;Nazwisko;Telefon;tags;external_id\n"
        "ANNA@example.pl;Anna;Nowak;;VIP;\n"
        "jan@Example.PL;Jan;Kowalski;+48 601 234 567;;K-1\n"
    )

    preview = upload(admin_client, store, content)

    assert preview.status_code == 200
    result = preview.context["result"]
    assert not result.has_errors()
    assert not result.has_validation_errors()
    assert [row.import_type for row in result.rows] == ["update", "new"]
    confirm = preview.context["confirm_form"]
    assert Customer.objects.count() == 1  # the preview was a dry run

    response = admin_client.post(
        ADMIN_PROCESS_IMPORT, {**confirm.initial, "store": store.pk}
    )

    assert response.status_code == 302
    assert Customer.objects.count() == 2
    anna.refresh_from_db()
    assert anna.last_name == "Nowak"  # matched by email, case-insensitively
    assert list(anna.tags.values_list("name", flat=True)) == ["VIP"]
    jan = Customer.objects.get(identities__store=store, identities__external_id="K-1")
    assert jan.email == "jan@example.pl"  # normalised as customer_upsert does
    assert jan.phone == "+48601234567"


def test_admin_import_of_an_unchanged_row_is_skipped(admin_client, store):
    CustomerFactory(email="anna@example.pl", first_name="Anna", last_name="Nowak")

    preview = upload(
        admin_client, store, "email,first_name,last_name\nanna@example.pl,Anna,Nowak\n"
    )

    assert [row.import_type for row in preview.context["result"].rows] == ["skip"]


def test_admin_import_refuses_a_file_without_an_email_or_id(admin_client, store):
    response = upload(admin_client, store, "imię,nazwisko\nAnna,Nowak\n")

    result = response.context["result"]
    assert result.has_errors()
    assert "email or external_id" in str(result.base_errors[0].error)
    assert not Customer.objects.exists()


def test_admin_import_needs_a_store(admin_client):
    file = io.BytesIO(b"email\nanna@example.pl\n")
    file.name = "c.csv"

    response = admin_client.post(
        ADMIN_IMPORT, {"resource": "0", "format": "0", "import_file": file}
    )

    assert response.status_code == 200
    assert "store" in response.context["form"].errors
    assert not Customer.objects.exists()


def admin_export(client, file_format: int, query: str = ""):
    """The admin export form's POST: format (0 = CSV, 1 = XLSX), every column."""
    fields = {f"customerresource_{name}": "on" for name in CUSTOMER_COLUMNS}
    return client.post(
        ADMIN_EXPORT + query, {"resource": "0", "format": str(file_format), **fields}
    )


def test_admin_export_cells_are_escaped_and_logged(admin_client, admin_user):
    customer = CustomerFactory(first_name='=HYPERLINK("http://x")')
    CustomerFactory(restricted_at=timezone.now())

    response = admin_export(admin_client, 0)

    assert response.status_code == 200
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0] == list(CUSTOMER_COLUMNS)
    assert column(rows, "first_name") == ['\'=HYPERLINK("http://x")']
    log = AccessLog.objects.get(action="export")
    assert (log.customer_id, log.user, log.purpose) == (
        customer.pk,
        admin_user,
        "admin",
    )


def test_admin_xlsx_export_is_escaped(admin_client):
    CustomerFactory(first_name="@SUM(A1)", status=Customer.Status.LEAD)
    CustomerFactory(first_name="Kupujący", status=Customer.Status.BUYER)

    response = admin_export(admin_client, 1, "?status__exact=lead")

    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    rows = [list(row) for row in workbook.active.iter_rows(values_only=True)]
    assert column(rows, "first_name") == ["'@SUM(A1)"]


def test_a_long_export_goes_on_in_a_new_sheet(client, manager, monkeypatch):
    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 3)
    customers = [CustomerFactory(last_name=f"N{n}") for n in range(5)]

    response = client.get(XLSX_URL, {"o": "name"})

    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    assert workbook.sheetnames == ["customers", "customers 2", "customers 3"]
    rows = [
        list(row)
        for sheet in workbook.worksheets
        for row in sheet.iter_rows(values_only=True)
    ]
    assert rows.count(list(CUSTOMER_COLUMNS)) == 3
    index = rows[0].index("email")
    assert [row[index] for row in rows if row[index] != "email"] == [
        c.email for c in customers
    ]


def test_admin_import_and_export_pages_render(admin_client, store):
    page = admin_client.get(ADMIN_IMPORT)

    assert page.status_code == 200
    assert b'name="store"' in page.content
    # The columns the admin import writes, as the generic format names them.
    assert b"external_id, email, phone, first_name" in page.content
    assert b"street" not in page.content.split(b"import_file")[0]
    export = admin_client.get(ADMIN_EXPORT)
    assert export.status_code == 200
    assert b"customerresource_postcode" in export.content


def test_admin_import_says_why_a_file_is_unreadable(admin_client, store):
    response = upload(admin_client, store, "email;Email\na@b.pl;c@d.pl\n")

    assert response.status_code == 200
    [error] = response.context["form"].errors["import_file"]
    assert error == "The header repeats a column name: Email."
    assert not Customer.objects.exists()


def test_admin_export_of_a_store_writes_its_customer_ids(admin_client):
    shop, marketplace = StoreFactory(code="shop"), StoreFactory(code="allegro")
    customer = CustomerFactory()
    CustomerIdentityFactory(customer=customer, store=shop, external_id="S-1")
    CustomerIdentityFactory(customer=customer, store=marketplace, external_id="A-9")

    response = admin_export(admin_client, 0, f"?store={marketplace.pk}")

    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8")[1:])))
    assert column(rows, "external_id") == ["A-9"]
