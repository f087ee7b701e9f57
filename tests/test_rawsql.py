"""config.rawsql: the precompiled statements' helpers."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from config import rawsql
from customers.models import Customer, Store
from tests.factories.customers import StoreFactory


@pytest.mark.django_db
def test_lock_or_insert_inserts_then_locks_the_same_row():
    store = StoreFactory()
    new = Store(code="drugi", name="Drugi", currency="PLN")
    found, created = rawsql.lock_or_insert(new, key=("code",))
    assert created is True
    assert found is new
    assert new.pk == Store.objects.get(code="drugi").pk
    again, created = rawsql.lock_or_insert(
        Store(code="drugi", name="Inna nazwa", currency="EUR"), key=("code",)
    )
    assert created is False
    assert (again.pk, again.name, again.currency) == (new.pk, "Drugi", "PLN")
    assert Store.objects.count() == 2
    assert store.pk != new.pk


@pytest.mark.django_db
def test_statistics_go_stale_as_a_table_fills_and_analyze_refreshes_them():
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_customer")
    assert not rawsql.statistics_stale(Customer)
    # Earlier tests leave the table with pages of their own (rolled-back rows stay
    # in the file until a vacuum): fill it until it is more than twice what
    # ANALYZE saw, however large that was.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relpages FROM pg_class WHERE oid = 'customers_customer'::regclass"
        )
        (pages,) = cursor.fetchone()
    # A batch of these customers fills some 70 pages.
    for batch in range(40 + pages // 30):
        Customer.objects.bulk_create(
            Customer(email=f"k{batch}-{n}@example.pl", last_name="Nowak" * 20)
            for n in range(2000)
        )
        if rawsql.statistics_stale(Customer):
            break
    assert rawsql.statistics_stale(Customer)
    assert rawsql.analyze([Customer]) is True
    assert not rawsql.statistics_stale(Customer)


def _identity_of_missing_customer() -> None:
    with rawsql.cursor() as cursor:
        cursor.execute(
            "INSERT INTO customers_customeridentity"
            " (store_id, external_id, customer_id, created_at)"
            " VALUES (%s, 'x', -1, now())",
            [StoreFactory().pk],
        )


@pytest.mark.django_db(transaction=True)
def test_immediate_constraints_check_each_statement_then_defer_again():
    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic():
            with rawsql.immediate_constraints():
                _identity_of_missing_customer()  # checked as the statement ends
        with rawsql.immediate_constraints():
            pass
        # Deferred again, as Django has them: the insert passes, and the check
        # comes when forced (as COMMIT would force it).
        savepoint = transaction.savepoint()
        _identity_of_missing_customer()
        with pytest.raises(IntegrityError), rawsql.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        transaction.savepoint_rollback(savepoint)


@pytest.mark.django_db
def test_copy_line_round_trips_through_copy():
    warsaw = dt.timezone(dt.timedelta(hours=1))
    rows = [
        (
            1,
            "tab\there, new\nline, cr\r, back\\slash, \\N as text",
            None,
            True,
            Decimal("1234.50"),
            dt.date(2024, 2, 29),
            dt.datetime(2024, 3, 1, 12, 30, 5, 123456, tzinfo=warsaw),
            ["vip", 'say "hi"', "a,b", "back\\slash", "{brace}", "", None],
        ),
        (2, "", "Żółkiewska", False, Decimal("-0.01"), None, None, []),
        (3, "NULL", None, None, None, None, None, None),
    ]
    with rawsql.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE copy_line_check (n int, a text, b text, c boolean,"
            " d numeric, e date, f timestamptz, g text[]) ON COMMIT DROP"
        )
        with cursor.copy("COPY copy_line_check FROM STDIN") as copy:
            copy.write("".join(rawsql.copy_line(row) for row in rows))
        cursor.execute("SELECT * FROM copy_line_check ORDER BY n")
        assert [tuple(row) for row in cursor.fetchall()] == rows


def test_copy_text_refuses_a_type_it_does_not_know():
    with pytest.raises(TypeError, match="float"):
        rawsql.copy_text(1.5)
