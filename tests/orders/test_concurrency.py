"""Order upserts racing each other: one order, the later write wins, no error."""

import datetime as dt
import threading

import pytest
from django.db import connection, transaction

from customers.models import Customer
from orders.models import Order
from orders.services import order_upsert
from tests.factories.customers import CustomerFactory, StoreFactory

PLACED = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
LINES = [{"sku": "A-1", "name": "Kubek", "quantity": 1, "unit_price": "10.00"}]


@pytest.mark.django_db(transaction=True)
def test_an_order_inserted_by_a_concurrent_upsert_is_updated_not_duplicated():
    store = StoreFactory()
    customer = CustomerFactory(status=Customer.Status.BUYER)
    inserted, release, failures = threading.Event(), threading.Event(), []

    def first_upsert() -> None:
        try:
            with transaction.atomic():
                order_upsert(
                    store=store,
                    external_id="R-1",
                    placed_at=PLACED,
                    customer=customer,
                    lines=LINES,
                )
                inserted.set()
                release.wait(10)  # holds the new row uncommitted
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)
            inserted.set()
        finally:
            connection.close()

    thread = threading.Thread(target=first_upsert)
    thread.start()
    assert inserted.wait(10)
    # The second upsert does not see the uncommitted order, so it tries to insert
    # one and waits on the unique index until the first commits.
    threading.Timer(0.5, release.set).start()
    order, created = order_upsert(
        store=store,
        external_id="R-1",
        placed_at=PLACED,
        customer=customer,
        status=Order.Status.PAID,
        lines=LINES,
    )
    thread.join(10)

    assert failures == []
    assert created is False
    assert Order.objects.filter(store=store, external_id="R-1").count() == 1
    stored = Order.objects.get(store=store, external_id="R-1")
    assert stored.pk == order.pk
    assert stored.status == Order.Status.PAID
    assert stored.lines.count() == 1


@pytest.mark.django_db(transaction=True)
def test_simultaneous_upserts_of_one_new_order_with_a_new_customer_make_one_of_each():
    store = StoreFactory()
    barrier, failures = threading.Barrier(4), []

    def upsert() -> None:
        try:
            barrier.wait(10)
            order_upsert(
                store=store,
                external_id="R-2",
                placed_at=PLACED,
                customer_data={"external_id": "C-2", "email": "Nowa@Example.pl"},
                lines=LINES,
            )
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=upsert) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert failures == []
    assert Order.objects.filter(store=store, external_id="R-2").count() == 1
    assert Customer.objects.filter(email__iexact="nowa@example.pl").count() == 1
    assert Order.objects.get(external_id="R-2").lines.count() == 1
