"""Imported consents: customers files' consent columns and Mailchimp/generic files."""

import csv
import datetime as dt
import hashlib
import json
import os
import time
from zoneinfo import ZoneInfo

import pgtrigger
import psycopg
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone, translation

from consents.erasure import customer_erase, customer_restrict
from consents.importers import consents_import, customers_consents_import
from consents.models import ConsentEvent, ConsentState, ConsentText
from consents.services import (
    consent_allows,
    consent_record,
    consent_text_current,
    consent_withdraw,
    suppression_add,
)
from customers.importers import registry
from customers.importers.reading import open_csv
from customers.models import Customer
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db

WARSAW = ZoneInfo("Europe/Warsaw")


@pytest.fixture(autouse=True)
def _english():
    """Messages are checked in English (Polish is the default language)."""
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _purposes(purposes):
    """The seeded purposes and their texts (a flushing test elsewhere drops them)."""
    return purposes


def write_csv(path, header, rows, *, encoding="utf-8", delimiter=","):
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def import_customers(path, store, **kwargs):
    return customers_consents_import(source=open_csv(path), store=store, **kwargs)


def import_consents(path, store, **kwargs):
    return consents_import(source=open_csv(path), store=store, **kwargs)


def events(**filters):
    return list(ConsentEvent.objects.filter(**filters).order_by("id"))


def text(code, language="pl"):
    from consents.models import ConsentPurpose

    purpose = ConsentPurpose.objects.get(code=code)
    return consent_text_current(purpose=purpose, language=language)


def grant_by_form(customer, occurred_at=None):
    event, _new = consent_record(
        customer=customer,
        purpose="email_marketing",
        action="grant",
        source="newsletter_form",
        text=text("email_marketing"),
        occurred_at=occurred_at,
    )
    return event


# --- A Polish customers file ---------------------------------------------------------

POLISH_HEADER = [
    "imię",
    "nazwisko",
    "e-mail",
    "telefon",
    "zgoda na newsletter",
    "data zgody e-mail",
    "zgoda sms",
    "data zgody sms",
    "adres ip",
    "suma zakupów",
    "miasto",
]


def polish_row(**values):
    row = dict.fromkeys(POLISH_HEADER, "")
    row.update(values)
    return [row[name] for name in POLISH_HEADER]


LUCJA = polish_row(
    **{
        "imię": "Łucja",
        "nazwisko": "Źdźbło-Śliwińska",
        "e-mail": "lucja@example.pl",
        "telefon": "601 234 567",
        "zgoda na newsletter": "tak",
        "data zgody e-mail": "01.03.2024 12:30",
        "zgoda sms": "nie",
        "adres ip": "83.1.2.3",
        "suma zakupów": "1 234,56",
        "miasto": "Kraków",
    }
)
JEDRZEJ = polish_row(
    **{
        "imię": "Jędrzej",
        "nazwisko": "Gęś",
        "e-mail": "jedrzej@example.pl",
        "telefon": "602 345 678",
        "zgoda na newsletter": "nie",
        "zgoda sms": "tak",
        "data zgody sms": "2024-05-02 08:15",
        "suma zakupów": "99,90",
        "miasto": "Łódź",
    }
)
ZANETA = polish_row(
    **{
        "imię": "Żaneta",
        "nazwisko": "Bąk",
        "e-mail": "zaneta@example.pl",
        "zgoda na newsletter": "tak",
        "suma zakupów": "0,00",
        "miasto": "Gdańsk",
    }
)


def polish_file(tmp_path, rows=(LUCJA, JEDRZEJ, ZANETA), name="klienci.csv"):
    return write_csv(
        tmp_path / name, POLISH_HEADER, rows, encoding="cp1250", delimiter=";"
    )


def test_customers_kinds_are_registered_by_the_consents_app():
    customers = registry.get("customers")
    consents = registry.get("consents")
    assert customers.run is customers_consents_import
    assert customers.permission == "customers.change_customer"
    assert consents.run is consents_import
    assert consents.permission == "consents.add_consentevent"


def test_polish_customers_file_records_its_consents(tmp_path, store):
    path = polish_file(tmp_path)
    before = timezone.now()

    result = import_customers(path, store)

    assert (result.encoding, result.delimiter, result.format) == (
        "cp1250",
        ";",
        "generic",
    )
    assert (result.created, result.errors) == (3, [])
    lucja = Customer.objects.get(email="lucja@example.pl")
    assert (lucja.first_name, lucja.last_name) == ("Łucja", "Źdźbło-Śliwińska")
    jedrzej = Customer.objects.get(email="jedrzej@example.pl")
    zaneta = Customer.objects.get(email="zaneta@example.pl")

    [granted] = events(customer=lucja)  # her SMS "nie" records nothing
    assert (granted.purpose.code, granted.action, granted.source) == (
        "email_marketing",
        "grant",
        "import",
    )
    assert granted.import_file_hash == sha256(path) == result.sha256
    assert granted.occurred_at == dt.datetime(2024, 3, 1, 12, 30, tzinfo=WARSAW)
    assert granted.ip_address == "83.1.2.3"
    assert granted.text == text("email_marketing")
    assert granted.store == store
    assert granted.evidence == {
        "file": "klienci.csv",
        "line": 2,
        "row": dict(zip(POLISH_HEADER, LUCJA, strict=True)),
    }
    assert granted.evidence["row"]["nazwisko"] == "Źdźbło-Śliwińska"
    body = json.dumps(granted.evidence, sort_keys=True, ensure_ascii=False)
    assert granted.evidence_hash == hashlib.sha256(body.encode()).hexdigest()

    [sms] = events(customer=jedrzej)  # his newsletter "nie" records nothing
    assert (sms.purpose.code, sms.action) == ("sms_marketing", "grant")
    assert sms.occurred_at == dt.datetime(2024, 5, 2, 8, 15, tzinfo=WARSAW)
    assert sms.ip_address is None
    assert sms.evidence["line"] == 3

    [timeless] = events(customer=zaneta)  # no time in the row: the import's time
    assert before <= timeless.occurred_at <= timezone.now()

    assert consent_allows(customer=lucja, purpose="email_marketing")
    assert not consent_allows(customer=lucja, purpose="sms_marketing")
    assert consent_allows(customer=jedrzej, purpose="sms_marketing")
    assert not consent_allows(customer=jedrzej, purpose="email_marketing")
    assert result.extra["consents"] == 3
    assert result.extra["consents_unchanged"] == 0


def test_second_import_of_the_same_file_changes_nothing(tmp_path, store):
    path = polish_file(tmp_path)
    import_customers(path, store)
    ledger = list(ConsentEvent.objects.values_list("pk", flat=True))
    states = list(ConsentState.objects.values_list("pk", "event_id", "changed_at"))

    again = import_customers(path, store)

    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert list(ConsentEvent.objects.values_list("pk", flat=True)) == ledger
    assert (
        list(ConsentState.objects.values_list("pk", "event_id", "changed_at")) == states
    )
    assert (again.extra["consents"], again.extra["consents_unchanged"]) == (0, 3)


def test_no_in_the_file_does_not_withdraw(tmp_path, store):
    customer = CustomerFactory(email="jedrzej@example.pl")
    grant_by_form(customer)

    result = import_customers(polish_file(tmp_path, rows=[JEDRZEJ]), store)

    assert [e.purpose.code for e in events(customer=customer, source="import")] == [
        "sms_marketing"
    ]
    assert consent_allows(customer=customer, purpose="email_marketing")
    assert result.extra["consents"] == 1


def test_old_file_again_does_not_undo_a_later_withdrawal(tmp_path, store):
    path = polish_file(tmp_path, rows=[ZANETA])
    import_customers(path, store)
    zaneta = Customer.objects.get(email="zaneta@example.pl")
    consent_withdraw(
        customer=zaneta, purpose="email_marketing", source="unsubscribe_link"
    )
    count = ConsentEvent.objects.count()

    again = import_customers(path, store)

    assert ConsentEvent.objects.count() == count
    assert not consent_allows(customer=zaneta, purpose="email_marketing")
    assert again.extra["consents_unchanged"] == 1


def test_an_earlier_consent_than_the_current_one_is_history_only(tmp_path, store):
    customer = CustomerFactory(email="lucja@example.pl")
    grant_by_form(customer, occurred_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    # Withdrawn since; the file's grant of 2024 is older than the withdrawal.
    consent_withdraw(
        customer=customer,
        purpose="email_marketing",
        source="unsubscribe_link",
        occurred_at=dt.datetime(2025, 2, 1, tzinfo=dt.UTC),
    )

    result = import_customers(polish_file(tmp_path, rows=[LUCJA]), store)

    assert result.extra["consents"] == 1  # the proof is kept...
    assert not consent_allows(customer=customer, purpose="email_marketing")  # ...late


def test_a_granted_consent_since_the_rows_time_is_not_repeated(tmp_path, store):
    customer = CustomerFactory(email="lucja@example.pl")
    grant_by_form(customer, occurred_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))

    result = import_customers(polish_file(tmp_path, rows=[LUCJA]), store)

    assert not events(customer=customer, source="import")
    assert (result.extra["consents"], result.extra["consents_unchanged"]) == (0, 1)


def test_an_erased_person_is_not_brought_back_by_a_customers_file(tmp_path, store):
    erased = CustomerFactory(email="zaneta@example.pl", phone="")
    customer_erase(customer=erased, actor=None)

    result = import_customers(polish_file(tmp_path, rows=[LUCJA, ZANETA]), store)

    assert not Customer.objects.filter(email__iexact="zaneta@example.pl").exists()
    assert not ConsentEvent.objects.filter(
        source="import", customer__email__iexact="zaneta@example.pl"
    ).exists()
    assert result.extra["skipped_erased"] == 1
    assert (result.created, result.extra["consents"]) == (1, 1)  # Łucja


def test_an_erased_person_who_came_back_is_updated_but_gets_no_consent(tmp_path, store):
    erased = CustomerFactory(email="zaneta@example.pl", phone="")
    customer_erase(customer=erased, actor=None)
    back = CustomerFactory(email="zaneta@example.pl", first_name="", phone="")

    result = import_customers(polish_file(tmp_path, rows=[ZANETA]), store)

    back.refresh_from_db()
    assert (result.created, result.updated) == (0, 1)
    assert back.first_name
    assert "skipped_erased" not in result.extra
    assert result.extra["consents_skipped_suppressed"] == 1
    assert not events(customer=back, source="import")


def test_restricted_customer_gets_the_proof_recorded(tmp_path, store):
    customer = CustomerFactory(email="lucja@example.pl")
    customer_restrict(customer=customer, actor=None)

    result = import_customers(polish_file(tmp_path, rows=[LUCJA]), store)

    assert result.extra["consents"] == 1
    assert events(customer=customer, source="import")
    assert not consent_allows(customer=customer, purpose="email_marketing")


def test_partner_offers_are_not_recorded(tmp_path, store):
    header = ["Email", "First Name", "Newsletter (0/1)", "Opt-in (0/1)"]
    path = write_csv(
        tmp_path / "customers_import.csv",
        header,
        [["ola@example.pl", "Ola", "0", "1"]],
        delimiter=";",
    )

    result = import_customers(path, store, format="prestashop")

    assert (result.created, result.errors) == (1, [])
    assert not ConsentEvent.objects.exists()
    assert result.extra["consents_skipped_no_purpose"] == 1


def test_customers_dry_run_writes_nothing_but_counts_the_consents(tmp_path, store):
    CustomerFactory(email="lucja@example.pl")
    path = polish_file(tmp_path)
    customers = Customer.objects.count()

    dry = import_customers(path, store, dry_run=True)

    assert dry.dry_run
    assert Customer.objects.count() == customers
    assert not ConsentEvent.objects.exists()
    assert not ConsentState.objects.exists()
    real = import_customers(path, store)
    assert (dry.created, dry.updated, dry.unchanged) == (
        real.created,
        real.updated,
        real.unchanged,
    )
    assert dry.extra == real.extra
    assert dry.extra["consents"] == 3
    # Recorded batch by batch: nothing is collected in memory for the caller.
    assert dry.consent_rows == real.consent_rows == []


def test_aborted_customers_import_records_no_consent(tmp_path, store):
    bad = polish_row(**{"e-mail": "nie-email", "zgoda na newsletter": "tak"})
    path = polish_file(tmp_path, rows=[LUCJA, bad, ZANETA])

    result = import_customers(path, store, on_error="abort", batch_size=1)

    assert result.aborted
    assert [error.line for error in result.errors] == [3]
    assert not Customer.objects.exists()
    assert not ConsentEvent.objects.exists()
    assert result.extra["consents"] == 0


def test_consent_time_in_the_future_is_a_row_error(tmp_path, store):
    future = timezone.localtime() + dt.timedelta(days=2)
    row = list(LUCJA)
    row[POLISH_HEADER.index("data zgody e-mail")] = f"{future:%Y-%m-%d %H:%M}"
    path = polish_file(tmp_path, rows=[row, ZANETA])

    aborted = import_customers(path, store)

    assert aborted.aborted
    [error] = aborted.errors
    assert (error.line, error.column, error.code) == (
        2,
        "data zgody e-mail",
        "out_of_range",
    )
    assert "future" in error.reason
    assert not Customer.objects.exists()
    assert not ConsentEvent.objects.exists()

    skipped = import_customers(path, store, on_error="skip")

    assert not skipped.aborted
    assert len(skipped.errors) == 1
    assert skipped.extra["consents"] == 1  # Żaneta's; Łucja's refused
    assert [e.customer.email for e in events()] == ["zaneta@example.pl"]


def test_purpose_without_text_stops_the_import(tmp_path, store):
    with pgtrigger.ignore("consents.ConsentText:consent_text_immutable"):
        ConsentText.objects.filter(purpose__code="sms_marketing").delete()

    with pytest.raises(ValidationError) as error:
        import_customers(polish_file(tmp_path), store)

    assert error.value.error_dict["source"][0].code == "no_text"
    assert "SMS marketing" in error.value.messages[0]
    assert not Customer.objects.exists()
    assert not ConsentEvent.objects.exists()


def test_customers_file_never_calls_consent_record_per_row(
    tmp_path, store, monkeypatch
):
    """The SQL statements of an import do not grow with its rows."""

    def statements(size: int) -> int:
        rows = [
            polish_row(
                **{
                    "e-mail": f"klient{size}-{n}@example.pl",
                    "zgoda na newsletter": "tak",
                    "data zgody e-mail": "2024-03-01 12:00",
                    "zgoda sms": "tak",
                }
            )
            for n in range(size)
        ]
        path = polish_file(tmp_path, rows=rows, name=f"k{size}.csv")
        count = 0
        execute, copy = psycopg.Cursor.execute, psycopg.Cursor.copy

        def counting_execute(self, *args, **kwargs):
            nonlocal count
            count += 1
            return execute(self, *args, **kwargs)

        def counting_copy(self, *args, **kwargs):
            nonlocal count
            count += 1
            return copy(self, *args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(psycopg.Cursor, "execute", counting_execute)
            patch.setattr(psycopg.Cursor, "copy", counting_copy)
            result = import_customers(path, store, batch_size=1000)
        assert result.extra["consents"] == 2 * size
        return count

    few, many = statements(10), statements(300)
    assert few == many
    assert few > 10  # the counting sees the import's statements


def test_large_customers_file(tmp_path, store):
    size = int(os.environ.get("CONSENT_IMPORT_ROWS", "3000"))
    rows = (
        polish_row(
            **{
                "imię": "Zofia",
                "nazwisko": f"Wójcik{n}",
                "e-mail": f"zofia.{n}@example.pl",
                "zgoda na newsletter": "tak" if n % 2 else "nie",
                "data zgody e-mail": "2024-03-01 12:00" if n % 4 == 1 else "",
                "zgoda sms": "tak" if n % 3 == 0 else "",
                "adres ip": "83.1.2.3",
            }
        )
        for n in range(size)
    )
    path = polish_file(tmp_path, rows=rows)
    expected = size // 2 + (size + 2) // 3

    started = time.monotonic()
    result = import_customers(path, store)
    seconds = time.monotonic() - started
    print(f"\n{size} rows in {seconds:.1f} s: {size / seconds:.0f} rows/s")  # noqa: T201

    assert (result.created, result.errors) == (size, [])
    assert result.extra["consents"] == expected == ConsentEvent.objects.count()
    assert ConsentState.objects.filter(granted=True).count() == expected
    started = time.monotonic()
    again = import_customers(path, store)
    seconds = time.monotonic() - started
    print(f"re-import: {seconds:.1f} s: {size / seconds:.0f} rows/s")  # noqa: T201
    assert (again.created, again.updated, again.extra["consents"]) == (0, 0, 0)
    assert ConsentEvent.objects.count() == expected


# --- Mailchimp audience exports ------------------------------------------------------

MAILCHIMP_HEADER = [
    "Email Address",
    "First Name",
    "Last Name",
    "Address",
    "Phone Number",
    "MEMBER_RATING",
    "OPTIN_TIME",
    "OPTIN_IP",
    "CONFIRM_TIME",
    "CONFIRM_IP",
    "LATITUDE",
    "LONGITUDE",
    "GMTOFF",
    "DSTOFF",
    "TIMEZONE",
    "CC",
    "REGION",
    "LAST_CHANGED",
    "LEID",
    "EUID",
    "NOTES",
    "TAGS",
]
GDPR_COLUMNS = ["Email", "Direct Mail", "Customized Online Advertising"]
UNSUB_COLUMNS = [
    "UNSUB_TIME",
    "UNSUB_CAMPAIGN_TITLE",
    "UNSUB_CAMPAIGN_ID",
    "UNSUB_REASON",
    "UNSUB_REASON_OTHER",
]
CLEAN_COLUMNS = ["CLEAN_TIME", "CLEAN_CAMPAIGN_TITLE", "CLEAN_CAMPAIGN_ID"]


def mailchimp_header(extra=(), gdpr=False):
    # Merge fields, then the GDPR permissions, then Mailchimp's fixed columns, then
    # the unsubscribed or cleaned file's own.
    return [
        *MAILCHIMP_HEADER[:5],
        *(GDPR_COLUMNS if gdpr else ()),
        *MAILCHIMP_HEADER[5:],
        *extra,
    ]


def member(header, email, first="", last="", **values):
    row = dict.fromkeys(header, "")
    row.update(
        {
            "Email Address": email,
            "First Name": first,
            "Last Name": last,
            "MEMBER_RATING": "2",
            "LAST_CHANGED": "2023-06-01 09:00:00",
            "LEID": "45967475",
            "EUID": "3b0a62b412",
        }
    )
    row.update({name.replace("__", " "): value for name, value in values.items()})
    return [row[name] for name in header]


def mailchimp_file(tmp_path, name, header, rows):
    return write_csv(tmp_path / name, header, rows)


def test_mailchimp_subscribed_grants_with_confirm_time_and_ip(tmp_path, store):
    anna = CustomerFactory(email="anna.nowak@example.pl", first_name="Anna")
    erased = CustomerFactory(email="usunieta@example.pl")
    customer_erase(customer=erased, actor=None)
    header = mailchimp_header(gdpr=True)
    rows = [
        member(
            header,
            "anna.nowak@example.pl",
            "Anna",
            OPTIN_TIME="2019-03-04 10:00:00",
            OPTIN_IP="83.1.2.3",
            CONFIRM_TIME="2019-03-04 10:05:00",
            CONFIRM_IP="83.1.2.4",
            Email="Y",
            TAGS='"Klientka","VIP"',
        ),
        member(
            header,
            "Nowa.Osoba@Example.PL",
            "Ewa",
            "Kowalczyk",
            OPTIN_TIME="2020-01-02 03:04:05",
            OPTIN_IP="2a01:110::1",
            Email="Y",
        ),
        member(header, "usunieta@example.pl", "Usunięta", Email="Y"),
        member(header, "bez.zgody@example.pl", "Bez", "Zgody", Email="N"),
    ]
    path = mailchimp_file(tmp_path, "subscribed_members_export_4f1c.csv", header, rows)

    result = import_consents(path, store)

    assert (result.format, result.variant) == ("mailchimp", "subscribed")
    assert (result.created, result.updated, result.unchanged, result.errors) == (
        2,
        0,
        1,
        [],
    )
    [confirmed] = events(customer=anna)
    assert (confirmed.action, confirmed.source, confirmed.purpose.code) == (
        "grant",
        "import",
        "email_marketing",
    )
    assert confirmed.occurred_at == dt.datetime(2019, 3, 4, 10, 5, tzinfo=dt.UTC)
    assert confirmed.ip_address == "83.1.2.4"
    assert confirmed.import_file_hash == sha256(path)
    assert confirmed.text == text("email_marketing")
    assert confirmed.evidence == {
        "file": "subscribed_members_export_4f1c.csv",
        "line": 2,
        "row": dict(zip(header, rows[0], strict=True)),
    }

    lead = Customer.objects.get(email="Nowa.Osoba@example.pl")
    assert (lead.first_name, lead.last_name, lead.status) == (
        "Ewa",
        "Kowalczyk",
        "lead",
    )
    [opted_in] = events(customer=lead)
    assert opted_in.occurred_at == dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert opted_in.ip_address == "2a01:110::1"

    # The erased person is neither re-created nor given consent back.
    assert not Customer.objects.filter(email__iexact="usunieta@example.pl").exists()
    # Subscribed without the GDPR "Email" permission: a lead, no consent.
    no_permission = Customer.objects.get(email="bez.zgody@example.pl")
    assert not events(customer=no_permission)
    assert result.extra == {
        "consents": 2,
        "consents_unchanged": 0,
        "consents_skipped_suppressed": 1,
        "consents_skipped_erased": 0,
        "consents_skipped_no_purpose": 0,
        "consents_skipped_no_permission": 1,
        "consents_cleaned": 0,
    }

    count = ConsentEvent.objects.count()
    again = import_consents(path, store)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert ConsentEvent.objects.count() == count
    assert again.extra["consents"] == 0


def test_mailchimp_unsubscribed_withdraws_at_unsub_time(tmp_path, store):
    anna = CustomerFactory(email="anna.nowak@example.pl")
    grant_by_form(anna, occurred_at=dt.datetime(2019, 3, 4, 10, 5, tzinfo=dt.UTC))
    header = mailchimp_header(UNSUB_COLUMNS)
    rows = [
        member(
            header,
            "anna.nowak@example.pl",
            "Anna",
            "Nowak",
            OPTIN_TIME="2019-03-04 10:00:00",
            OPTIN_IP="83.1.2.3",
            UNSUB_TIME="2023-06-01 09:00:00",
            UNSUB_CAMPAIGN_TITLE="Wyprzedaż lato",
            UNSUB_REASON="Za dużo wiadomości",
        ),
        member(header, "ktos@example.pl", UNSUB_TIME="2022-01-01 00:00:00"),
    ]
    path = mailchimp_file(
        tmp_path, "unsubscribed_members_export_4f1c.csv", header, rows
    )

    result = import_consents(path, store)

    assert result.variant == "unsubscribed"
    assert (result.created, result.updated, result.errors) == (1, 1, [])
    withdrawn = events(customer=anna, source="import")[0]
    assert withdrawn.action == "withdraw"
    assert withdrawn.occurred_at == dt.datetime(2023, 6, 1, 9, tzinfo=dt.UTC)
    assert withdrawn.text is None
    assert withdrawn.ip_address is None  # OPTIN_IP is the sign-up's, not this
    assert withdrawn.evidence["row"]["UNSUB_REASON"] == "Za dużo wiadomości"
    assert not consent_allows(customer=anna, purpose="email_marketing")
    someone = Customer.objects.get(email="ktos@example.pl")
    [never_given] = events(customer=someone)
    assert never_given.action == "withdraw"
    assert ConsentState.objects.get(customer=someone).granted is False
    assert result.extra["consents"] == 2

    again = import_consents(path, store)
    assert (again.created, again.updated, again.extra["consents"]) == (0, 0, 0)
    assert ConsentEvent.objects.filter(source="import").count() == 2


def test_mailchimp_cleaned_records_nothing_and_creates_nobody(tmp_path, store):
    anna = CustomerFactory(email="anna.nowak@example.pl")
    grant_by_form(anna)
    header = mailchimp_header(CLEAN_COLUMNS)
    rows = [
        member(header, "anna.nowak@example.pl", CLEAN_TIME="2023-07-01 10:00:00"),
        member(header, "nie.istnieje@example.pl", CLEAN_TIME="2023-07-01 10:00:00"),
    ]
    path = mailchimp_file(tmp_path, "cleaned_members_export_4f1c.csv", header, rows)

    result = import_consents(path, store)

    assert result.variant == "cleaned"
    assert (result.created, result.updated, result.unchanged) == (0, 0, 0)
    assert result.extra["consents_cleaned"] == 2
    assert result.extra["consents"] == 0
    assert not events(source="import")
    assert not Customer.objects.filter(email="nie.istnieje@example.pl").exists()
    assert consent_allows(customer=anna, purpose="email_marketing")


def test_suppressed_contact_held_again_may_only_withdraw(tmp_path, store):
    # Erased, then signed up again by the shop under the same email.
    suppression_add(email="wrocila@example.pl")
    again = CustomerFactory(email="wrocila@example.pl", first_name="Stare")
    subscribed = mailchimp_header()
    unsubscribed = mailchimp_header(UNSUB_COLUMNS)

    granted = import_consents(
        mailchimp_file(
            tmp_path,
            "subscribed.csv",
            subscribed,
            [member(subscribed, "wrocila@example.pl", "Nowe")],
        ),
        store,
    )
    withdrawn = import_consents(
        mailchimp_file(
            tmp_path,
            "unsubscribed.csv",
            unsubscribed,
            [member(unsubscribed, "wrocila@example.pl", UNSUB_TIME="2024-01-01")],
        ),
        store,
    )

    assert granted.extra["consents_skipped_suppressed"] == 1
    assert granted.extra["consents"] == 0
    assert withdrawn.extra["consents"] == 1
    assert [e.action for e in events(customer=again)] == ["withdraw"]
    again.refresh_from_db()
    assert again.first_name == "Stare"  # not updated from the file either
    assert (granted.created, granted.updated) == (0, 0)


def test_generic_consents_file(tmp_path, store):
    header = ["e-mail", "imię", "nazwisko", "status zgody", "data zgody", "ip zgody"]
    rows = [
        [
            "marta@example.pl",
            "Marta",
            "Żak",
            "zapisana",
            "02.03.2024 10:00",
            "83.1.2.3",
        ],
        ["olek@example.pl", "Olek", "", "unsubscribed", "", ""],
        ["zly@example.pl", "", "", "może", "", ""],
    ]
    path = write_csv(
        tmp_path / "zgody.csv", header, rows, encoding="cp1250", delimiter=";"
    )

    aborted = import_consents(path, store)

    assert aborted.aborted
    [error] = aborted.errors
    assert (error.line, error.column, error.value, error.code) == (
        4,
        "status zgody",
        "może",
        "invalid_choice",
    )
    assert not Customer.objects.exists()

    result = import_consents(path, store, on_error="skip", format="generic")

    assert (result.format, result.created, len(result.errors)) == ("generic", 2, 1)
    marta = Customer.objects.get(email="marta@example.pl")
    [grant] = events(customer=marta)
    assert grant.occurred_at == dt.datetime(2024, 3, 2, 10, tzinfo=WARSAW)
    assert grant.ip_address == "83.1.2.3"
    [withdrawal] = events(customer__email="olek@example.pl")
    assert withdrawal.action == "withdraw"


def test_generic_consents_file_needs_a_status_column(tmp_path, store):
    path = write_csv(
        tmp_path / "zgody.csv", ["e-mail", "imię"], [["a@example.pl", "A"]]
    )

    with pytest.raises(ValidationError) as error:
        import_consents(path, store, format="generic")

    assert error.value.error_dict["source"][0].code == "missing_columns"
    assert "status" in error.value.messages[0]
    assert not Customer.objects.exists()


def test_consents_dry_run_writes_nothing_but_counts(tmp_path, store):
    CustomerFactory(email="anna.nowak@example.pl")
    header = mailchimp_header()
    rows = [
        member(header, "anna.nowak@example.pl", CONFIRM_TIME="2019-03-04 10:05:00"),
        member(header, "ewa@example.pl", "Ewa", CONFIRM_TIME="2019-03-04 10:05:00"),
    ]
    path = mailchimp_file(tmp_path, "subscribed.csv", header, rows)
    customers = Customer.objects.count()

    dry = import_consents(path, store, dry_run=True)

    assert dry.dry_run
    assert Customer.objects.count() == customers
    assert not ConsentEvent.objects.exists()
    real = import_consents(path, store)
    assert (dry.created, dry.updated, dry.unchanged, dry.extra) == (
        real.created,
        real.updated,
        real.unchanged,
        real.extra,
    )
    assert dry.extra["consents"] == 2


def test_aborted_consents_import_records_nothing(tmp_path, store):
    header = mailchimp_header()
    rows = [
        member(header, "anna.nowak@example.pl", CONFIRM_TIME="2019-03-04 10:05:00"),
        member(header, "to nie email", CONFIRM_TIME="2019-03-04 10:05:00"),
        member(header, "ewa@example.pl", CONFIRM_TIME="kiedyś"),
    ]
    path = mailchimp_file(tmp_path, "subscribed.csv", header, rows)

    result = import_consents(path, store, batch_size=1)

    assert result.aborted
    assert [(e.line, e.column) for e in result.errors] == [
        (3, "Email Address"),
        (4, "CONFIRM_TIME"),
    ]
    assert not Customer.objects.exists()
    assert not ConsentEvent.objects.exists()
    assert result.extra["consents"] == 0


def test_consents_import_reports_progress_per_batch(tmp_path, store):
    header = mailchimp_header()
    rows = [member(header, f"osoba{n}@example.pl") for n in range(5)]
    path = mailchimp_file(tmp_path, "subscribed.csv", header, rows)
    seen = []

    result = import_consents(path, store, batch_size=2, progress=seen.append)

    assert seen == [2, 4, 5]
    assert (result.created, result.extra["consents"]) == (5, 5)


def test_import_command_runs_the_consents_kind(tmp_path, store, capsys):
    header = mailchimp_header()
    path = mailchimp_file(
        tmp_path,
        "subscribed_members_export_4f1c.csv",
        header,
        [member(header, "ewa@example.pl", "Ewa", CONFIRM_TIME="2019-03-04 10:05:00")],
    )

    call_command(
        "import_csv",
        "--kind",
        "consents",
        "--store",
        store.code,
        "--format",
        "mailchimp",
        str(path),
    )

    out = capsys.readouterr().out
    assert "Format: mailchimp (subscribed)" in out
    assert "Created: 1" in out
    [event] = events(customer__email="ewa@example.pl")
    assert event.evidence["file"] == "subscribed_members_export_4f1c.csv"
    assert event.store == store
