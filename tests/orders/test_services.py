import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Customer
from orders.models import Order, OrderLine
from orders.services import order_set_status, order_upsert
from tests.factories.customers import CustomerFactory
from tests.factories.orders import ProductFactory

PLACED = dt.datetime(2026, 3, 1, 10, 30, tzinfo=dt.UTC)


def order_data(store, **overrides):
    data = {
        "store": store,
        "external_id": "1001",
        "number": "ZAM/1001",
        "placed_at": PLACED,
        "status": "paid",
        "shipping_total": "12,99",
        "customer_data": {
            "external_id": "C-7",
            "email": "Zofia@Example.pl",
            "phone": "601 234 567",
        },
        "lines": [
            {"sku": "KARMA-1", "name": "Karma 12 kg", "quantity": 2, "unit_price": "9"},
            {"sku": "", "name": "Smycz", "quantity": "1", "unit_price": "25"},
            {"sku": "X-3", "name": "Miska", "quantity": 3, "unit_price": "10.00"},
        ],
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
class TestOrderUpsert:
    def test_creates_order_lines_and_buyer(self, store):
        product = ProductFactory(store=store, sku="KARMA-1", name="Karma dla psa 12 kg")
        order, created = order_upsert(**order_data(store))
        assert created
        lines = list(order.lines.order_by("position"))
        assert [line.total for line in lines] == [
            Decimal("18.00"),
            Decimal("25.00"),
            Decimal("30.00"),
        ]
        assert lines[0].product == product
        assert lines[0].name == "Karma 12 kg"
        assert lines[0].category == product.category
        assert order.subtotal == Decimal("73.00")
        assert order.total == Decimal("85.99")
        assert order.currency == "PLN"
        assert order.customer.status == Customer.Status.BUYER
        assert order.customer.email == "Zofia@example.pl"

    def test_retried_webhook_leaves_one_order_and_writes_nothing(self, store):
        data = order_data(store)
        first, _ = order_upsert(**data)
        line_ids = list(first.lines.values_list("id", flat=True))
        for _ in range(4):
            with CaptureQueriesContext(connection) as ctx:
                order, created = order_upsert(**data)
            assert not created
            assert order.pk == first.pk
            assert not [
                q
                for q in ctx.captured_queries
                if q["sql"].split(None, 1)[0] in {"INSERT", "UPDATE", "DELETE"}
            ]
        assert Order.objects.count() == 1
        assert list(
            OrderLine.objects.values_list("id", flat=True).order_by("id")
        ) == sorted(line_ids)
        assert Customer.objects.count() == 1

    def test_changed_lines_replace_old_ones(self, store):
        order_upsert(**order_data(store))
        order, created = order_upsert(
            **order_data(
                store, lines=[{"name": "Kuweta", "quantity": 1, "unit_price": 60}]
            )
        )
        assert not created
        assert list(order.lines.values_list("name", flat=True)) == ["Kuweta"]
        assert order.subtotal == Decimal("60.00")

    def test_status_times_left_out_are_kept(self, store):
        paid = PLACED + dt.timedelta(hours=1)
        order_upsert(**order_data(store, paid_at=paid))
        order, _ = order_upsert(**order_data(store, status="shipped"))
        assert order.paid_at == paid
        assert order.status == "shipped"

    def test_bad_input_reports_fields_and_writes_nothing(self, store):
        data = order_data(
            store,
            placed_at="yesterday",
            currency="złoty",
            lines=[{"name": "A", "quantity": 0, "unit_price": "-1"}],
            customer_data={"email": "bad"},
        )
        with pytest.raises(ValidationError) as error:
            order_upsert(**data)
        assert {
            "placed_at",
            "currency",
            "lines.0.quantity",
            "lines.0.unit_price",
        } <= set(error.value.error_dict)
        assert Order.objects.count() == 0
        assert Customer.objects.count() == 0

    def test_customer_errors_are_prefixed(self, store):
        with pytest.raises(ValidationError) as error:
            order_upsert(**order_data(store, customer_data={"email": "nope"}))
        assert "customer.email" in error.value.error_dict
        assert Order.objects.count() == 0

    def test_existing_customer_may_be_given(self, store):
        customer = CustomerFactory()
        order, _ = order_upsert(
            **order_data(store, customer_data=None, customer=customer)
        )
        assert order.customer == customer

    def test_other_currency(self, store):
        order, _ = order_upsert(**order_data(store, currency="eur"))
        assert order.currency == "EUR"


@pytest.mark.django_db
class TestOrderSetStatus:
    def test_allowed_transition_stamps_time(self, store):
        order, _ = order_upsert(**order_data(store))
        assert order_set_status(order=order, status="shipped")
        order.refresh_from_db()
        assert order.status == "shipped"
        assert order.shipped_at is not None
        assert not order_set_status(order=order, status="shipped")

    def test_forbidden_transition(self, store):
        order, _ = order_upsert(**order_data(store, status="cancelled"))
        with pytest.raises(ValidationError) as error:
            order_set_status(order=order, status="paid")
        assert error.value.error_dict["status"][0].code == "invalid_transition"
