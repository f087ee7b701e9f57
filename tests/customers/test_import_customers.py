import csv
import io
import os
import time
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import translation

from customers.importers.customers import customers_import
from customers.importers.reading import open_csv
from customers.models import Address, Customer, CustomerIdentity, Tag
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    """Messages are checked in English (Polish is the default language)."""
    with translation.override("en"):
        yield


SHOPIFY_HEADER = [
    "Customer ID",
    "First Name",
    "Last Name",
    "Email",
    "Accepts Email Marketing",
    "Default Address Company",
    "Default Address Address1",
    "Default Address Address2",
    "Default Address City",
    "Default Address Province Code",
    "Default Address Country Code",
    "Default Address Zip",
    "Default Address Phone",
    "Phone",
    "Accepts SMS Marketing",
    "Total Spent",
    "Total Orders",
    "Note",
    "Tax Exempt",
    "Tags",
]


def shopify_row(n: int, **overrides: str) -> list[str]:
    row = {
        "Customer ID": f"'{7000000 + n}",
        "First Name": "Zofia",
        "Last Name": f"Wójcik{n}",
        "Email": f"Zofia.{n}@Example.PL",
        "Accepts Email Marketing": "yes" if n % 2 else "no",
        "Default Address Company": "Łąka sp. z o.o.",
        "Default Address Address1": f"ul. Marszałkowska {n}",
        "Default Address Address2": "",
        "Default Address City": "Warszawa",
        "Default Address Province Code": "MZ",
        "Default Address Country Code": "PL",
        "Default Address Zip": "'00-950",
        "Default Address Phone": "",
        "Phone": f"'+48 601 {n // 1000 % 1000:03d} {n % 1000:03d}",
        "Accepts SMS Marketing": "no",
        "Total Spent": "120.50",
        "Total Orders": "2",
        "Note": "Lubi herbatę",
        "Tax Exempt": "no",
        "Tags": "VIP, newsletter",
    }
    row.update(overrides)
    return [row[name] for name in SHOPIFY_HEADER]


def write_csv(path, header, rows, *, encoding="utf-8", delimiter=","):
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(path, store, **kwargs):
    return customers_import(source=open_csv(path), store=store, **kwargs)


def test_shopify_file_imports_every_field(tmp_path, store):
    path = write_csv(
        tmp_path / "customers_export.csv", SHOPIFY_HEADER, [shopify_row(1)]
    )

    result = run(path, store)

    assert (result.format, result.variant) == ("shopify", "customers_export")
    assert (result.created, result.updated, result.errors) == (1, 0, [])
    customer = Customer.objects.get()
    assert customer.email == "Zofia.1@example.pl"
    assert (customer.first_name, customer.last_name) == ("Zofia", "Wójcik1")
    assert customer.phone == "+48601000001"
    assert customer.company == "Łąka sp. z o.o."
    assert CustomerIdentity.objects.get(store=store).external_id == "7000001"
    address = customer.addresses.get()
    assert (address.street, address.postcode, address.city, address.region) == (
        "ul. Marszałkowska 1",
        "00-950",
        "Warszawa",
        "MZ",
    )
    assert address.country.code == "PL"
    assert address.is_default
    assert sorted(customer.tags.values_list("name", flat=True)) == ["VIP", "newsletter"]
    # Customer has no note field: the Note column is read but not stored.
    [consent] = result.consent_rows
    assert consent.customer_id == customer.pk
    assert consent.line == 2
    assert consent.values == {
        "accepts_email_marketing": True,
        "accepts_sms_marketing": False,
    }


def test_reimport_changes_nothing(tmp_path, store):
    rows = [shopify_row(n) for n in range(1, 6)]
    path = write_csv(tmp_path / "c.csv", SHOPIFY_HEADER, rows)
    run(path, store)
    before = dict(Customer.objects.values_list("pk", "updated_at"))
    addresses = dict(Address.objects.values_list("pk", "updated_at"))

    again = run(path, store)

    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    assert dict(Customer.objects.values_list("pk", "updated_at")) == before
    assert dict(Address.objects.values_list("pk", "updated_at")) == addresses
    assert Tag.objects.count() == 2
    assert CustomerIdentity.objects.count() == 5


def test_polish_cp1250_semicolon_spreadsheet(tmp_path, store):
    path = write_csv(
        tmp_path / "klienci.csv",
        ["imię", "nazwisko", "e-mail", "telefon", "ulica", "kod pocztowy", "miasto"],
        [
            [
                "Łucja",
                "Źdźbło-Śliwińska",
                "lucja@example.pl",
                "601 234 567",
                "Żółkiewska 5",
                "31555",
                "Kraków",
            ],
            ["Jędrzej", "Gęś", "jedrzej@example.pl", "", "", "", "Łódź"],
        ],
        encoding="cp1250",
        delimiter=";",
    )

    result = run(path, store)

    assert (result.encoding, result.delimiter, result.format) == (
        "cp1250",
        ";",
        "generic",
    )
    assert (result.created, result.errors) == (2, [])
    lucja = Customer.objects.get(email="lucja@example.pl")
    assert (lucja.first_name, lucja.last_name) == ("Łucja", "Źdźbło-Śliwińska")
    assert lucja.phone == "+48601234567"
    address = lucja.addresses.get()
    assert (address.street, address.postcode, address.city) == (
        "Żółkiewska 5",
        "31-555",
        "Kraków",
    )
    # City alone makes no address.
    assert not Customer.objects.get(first_name="Jędrzej").addresses.exists()


def test_existing_customer_by_email_is_updated_and_gets_identity(tmp_path, store):
    existing = CustomerFactory(email="zofia.1@example.pl", first_name="Zosia")
    path = write_csv(tmp_path / "c.csv", SHOPIFY_HEADER, [shopify_row(1)])

    result = run(path, store)

    assert (result.created, result.updated) == (0, 1)
    assert Customer.objects.count() == 1
    existing.refresh_from_db()
    assert existing.first_name == "Zofia"
    # The email's domain is stored lower-cased; the local part as the file has it.
    assert existing.email == "Zofia.1@example.pl"
    assert existing.identities.get().store == store


def test_blank_cells_keep_stored_values(tmp_path, store):
    existing = CustomerFactory(email="zofia.1@example.pl", company="Stara firma")
    path = write_csv(
        tmp_path / "c.csv",
        SHOPIFY_HEADER,
        [shopify_row(1, **{"Default Address Company": "", "Last Name": ""})],
    )

    run(path, store)

    existing.refresh_from_db()
    assert existing.company == "Stara firma"
    assert existing.last_name


def test_missing_required_column_fails_and_writes_nothing(tmp_path, store):
    path = write_csv(
        tmp_path / "c.csv",
        ["First Name", "Last Name", "Phone", "Default Address City"],
        [["Jan", "Kowalski", "601234567", "Gdańsk"]],
    )

    with pytest.raises(ValidationError) as raised:
        run(path, store, format="shopify")

    assert raised.value.error_dict["source"][0].code == "missing_columns"
    assert "Email" in raised.value.messages[0]
    assert not Customer.objects.exists()


def broken_file(tmp_path):
    rows = [shopify_row(n) for n in range(1, 5)]
    rows[2] = shopify_row(3, Email="nie-email")
    return write_csv(tmp_path / "broken.csv", SHOPIFY_HEADER, rows)


def test_abort_writes_nothing_and_reports_the_row(tmp_path, store):
    result = run(broken_file(tmp_path), store, batch_size=2)

    assert result.aborted
    assert not Customer.objects.exists()
    assert not Tag.objects.exists()
    [error] = result.errors
    assert (error.line, error.column, error.value, error.code) == (
        4,
        "Email",
        "nie-email",
        "invalid_email",
    )
    assert error.reason


def test_skip_imports_the_rest(tmp_path, store):
    result = run(broken_file(tmp_path), store, on_error="skip", batch_size=2)

    assert not result.aborted
    assert (result.rows, result.created, len(result.errors)) == (4, 3, 1)
    assert Customer.objects.count() == 3


def test_bad_values_become_row_errors(tmp_path, store):
    path = write_csv(
        tmp_path / "c.csv",
        ["email", "phone", "birth_date", "postcode", "street", "city", "ip"],
        [
            ["a@example.pl", "123", "1990-02-31", "00950x", "Długa 1", "Gdańsk", "x"],
        ],
    )

    result = run(path, store, on_error="skip")

    columns = {error.column for error in result.errors}
    assert columns == {"phone", "birth_date", "postcode", "ip"}
    assert not Customer.objects.exists()


def test_repeated_customer_is_merged_in_file_order(tmp_path, store):
    path = write_csv(
        tmp_path / "c.csv",
        ["email", "first_name", "last_name", "company", "tags"],
        [
            ["ola@example.pl", "Ola", "Nowak", "Firma A", "a"],
            ["OLA@example.pl", "Aleksandra", "", "", "b"],
        ],
    )

    result = run(path, store)

    assert (result.created, result.merged) == (1, 1)
    ola = Customer.objects.get()
    assert (ola.first_name, ola.last_name, ola.company) == (
        "Aleksandra",
        "Nowak",
        "Firma A",
    )
    assert ola.email == "OLA@example.pl"
    assert sorted(ola.tags.values_list("name", flat=True)) == ["a", "b"]


def test_identity_and_email_of_two_rows_reaching_one_customer(tmp_path, store):
    existing = CustomerFactory(email="ewa@example.pl", first_name="Ewa")
    CustomerIdentity.objects.create(store=store, external_id="1", customer=existing)
    path = write_csv(
        tmp_path / "c.csv",
        ["customer id", "email", "first_name"],
        [["1", "", "Ewelina"], ["", "ewa@example.pl", "Ewa Maria"]],
    )

    result = run(path, store)

    assert result.errors == []
    existing.refresh_from_db()
    assert existing.first_name == "Ewa Maria"
    assert Customer.objects.count() == 1


def test_email_of_another_customer_is_a_row_error(tmp_path, store):
    first = CustomerFactory(email="a@example.pl")
    CustomerFactory(email="b@example.pl")
    CustomerIdentity.objects.create(store=store, external_id="1", customer=first)
    path = write_csv(
        tmp_path / "c.csv", ["customer id", "email"], [["1", "b@example.pl"]]
    )

    result = run(path, store)

    assert [(e.line, e.column, e.code) for e in result.errors] == [
        (2, "email", "email_taken")
    ]
    first.refresh_from_db()
    assert first.email == "a@example.pl"


def test_dry_run_writes_nothing_and_counts_the_same(tmp_path, store):
    CustomerFactory(email="zofia.1@example.pl")
    path = write_csv(
        tmp_path / "c.csv", SHOPIFY_HEADER, [shopify_row(n) for n in range(1, 4)]
    )
    customers = Customer.objects.count()

    dry = run(path, store, dry_run=True)

    assert Customer.objects.count() == customers
    assert not Tag.objects.exists()
    assert not CustomerIdentity.objects.exists()
    real = run(path, store)
    assert (
        (dry.created, dry.updated, dry.unchanged)
        == (
            real.created,
            real.updated,
            real.unchanged,
        )
        == (2, 1, 0)
    )
    assert [row.customer_id for row in dry.consent_rows][1:] == [None, None]


def test_new_default_address_replaces_the_default(tmp_path, store):
    path = write_csv(tmp_path / "a.csv", SHOPIFY_HEADER, [shopify_row(1)])
    run(path, store)
    moved = shopify_row(1, **{"Default Address Address1": "ul. Nowa 2"})
    run(write_csv(tmp_path / "b.csv", SHOPIFY_HEADER, [moved]), store)

    addresses = Address.objects.order_by("pk")
    assert [(a.street, a.is_default) for a in addresses] == [
        ("ul. Marszałkowska 1", False),
        ("ul. Nowa 2", True),
    ]


def test_command_end_to_end_writes_error_report(tmp_path, store, capsys):
    path = broken_file(tmp_path)
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    rows[1][3] = "=HYPERLINK()"
    write_csv(path, rows[0], rows[1:])

    with pytest.raises(CommandError):
        call_command("import_csv", "--kind", "customers", "--store", "sklep", path)
    assert not Customer.objects.exists()

    call_command(
        "import_csv",
        "--kind=customers",
        "--store=sklep",
        "--skip-bad-rows",
        str(path),
    )
    out = capsys.readouterr().out
    assert "shopify" in out
    assert "Created: 2" in out
    report = tmp_path / "broken.errors.csv"
    lines = list(csv.reader(report.read_text(encoding="utf-8").splitlines()))
    assert lines[0] == ["line", "column", "value", "reason"]
    assert lines[1][:3] == ["2", "Email", "'=HYPERLINK()"]
    assert lines[2][:3] == ["4", "Email", "nie-email"]


def test_large_file(tmp_path, store):
    size = int(os.environ.get("IMPORT_BENCH_ROWS", "20000"))
    path = write_csv(
        tmp_path / "big.csv", SHOPIFY_HEADER, (shopify_row(n) for n in range(size))
    )
    started = time.monotonic()
    result = run(path, store)
    seconds = time.monotonic() - started
    print(f"\n{size} rows in {seconds:.1f} s: {size / seconds:.0f} rows/s")  # noqa: T201
    assert (result.created, result.errors) == (size, [])
    started = time.monotonic()
    again = run(path, store)
    seconds = time.monotonic() - started
    print(f"re-import: {seconds:.1f} s: {size / seconds:.0f} rows/s")  # noqa: T201
    assert (again.created, again.updated, again.unchanged) == (0, 0, size)


def test_command_dry_run_and_error_path(tmp_path, store, capsys):
    path = write_csv(tmp_path / "c.csv", SHOPIFY_HEADER, [shopify_row(1)])
    report = tmp_path / "report.csv"

    call_command(
        "import_csv",
        "--store=sklep",
        "--dry-run",
        f"--errors={report}",
        str(path),
    )

    out = capsys.readouterr().out
    assert "Format: shopify (customers_export), encoding: utf-8" in out
    assert "Dry run" in out
    assert "Created: 1" in out
    assert not Customer.objects.exists()
    assert not report.exists()  # no errors, no report


def test_command_missing_column(tmp_path, store):
    path = write_csv(tmp_path / "c.csv", ["imię", "miasto"], [["Jan", "Gdańsk"]])
    with pytest.raises(CommandError, match="email"):
        call_command("import_csv", "--store=sklep", "--format=generic", str(path))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_command_shows_progress_on_a_terminal(tmp_path, store):
    path = write_csv(
        tmp_path / "c.csv", SHOPIFY_HEADER, [shopify_row(n) for n in range(5)]
    )
    out = Terminal()

    call_command("import_csv", "--store=sklep", "--batch-size=2", str(path), stdout=out)

    assert "\r2 rows, " in out.getvalue()
    assert "\r5 rows, " in out.getvalue()


def test_note_and_the_previous_platforms_totals_are_kept(tmp_path, store):
    rows = [
        shopify_row(
            1,
            **{
                "Note": "Stała klientka, woli kurier",
                "Total Spent": "1 234,50 zł",
                "Total Orders": "7",
            },
        ),
        shopify_row(2, **{"Total Orders": "-2"}),
    ]
    path = write_csv(tmp_path / "c.csv", SHOPIFY_HEADER, rows)

    result = customers_import(source=open_csv(path), store=store, on_error="skip")

    assert (result.created, len(result.errors)) == (1, 1)
    assert result.errors[0].column == "Total Orders"
    customer = Customer.objects.get()
    assert customer.note == "Stała klientka, woli kurier"
    assert customer.imported_total_spent == Decimal("1234.50")
    assert customer.imported_orders_count == 7
    again = customers_import(source=open_csv(path), store=store, on_error="skip")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
