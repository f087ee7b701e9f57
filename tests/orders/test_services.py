import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Customer
from orders.models import Cart, Category, Order, OrderLine, Product
from orders.services import (
    cart_upsert,
    category_upsert_bulk,
    order_set_status,
    order_upsert,
    product_upsert_bulk,
)
from tests.factories.customers import CustomerFactory, StoreFactory
from tests.factories.orders import CategoryFactory, ProductFactory

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


def writes(ctx) -> list[str]:
    return [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].split(None, 1)[0] in {"INSERT", "UPDATE", "DELETE"}
    ]


@pytest.mark.django_db
class TestOrderCart:
    def test_order_converts_its_cart_once(self, store):
        cart, _ = cart_upsert(
            store=store,
            external_id="K1",
            items=[{"name": "Karma", "quantity": 1, "unit_price": "9"}],
            updated_at=PLACED - dt.timedelta(minutes=5),
            anonymous_id="v-1",
        )
        order, _ = order_upsert(**order_data(store, cart_external_id="K1"))
        cart.refresh_from_db()
        assert cart.converted_order == order
        assert cart.converted_at == PLACED
        assert cart.customer == order.customer  # the anonymous cart learns its buyer
        with CaptureQueriesContext(connection) as ctx:
            order_upsert(**order_data(store, cart_external_id="K1"))
        assert writes(ctx) == []
        assert Cart.objects.open().count() == 0

    def test_unreported_cart_is_recorded_converted_and_late_update_ignored(self, store):
        order, _ = order_upsert(**order_data(store, cart_external_id="K9"))
        cart = Cart.objects.get(external_id="K9")
        assert cart.converted_order == order
        assert cart.value == order.subtotal
        assert [item["sku"] for item in cart.items] == ["KARMA-1", "", "X-3"]
        late, created = cart_upsert(
            store=store,
            external_id="K9",
            items=[],
            updated_at=PLACED - dt.timedelta(hours=1),
            anonymous_id="v-9",
        )
        assert not created
        assert late.items == cart.items
        assert late.converted_order == order

    def test_order_naming_another_cart_moves_the_link(self, store):
        order_upsert(**order_data(store, cart_external_id="K1"))
        order, _ = order_upsert(**order_data(store, cart_external_id="K2"))
        first = Cart.objects.get(external_id="K1")
        assert first.converted_order is None
        assert first.converted_at is not None  # still bought: no reminder for it
        assert Cart.objects.get(external_id="K2").converted_order == order
        # Left out, the order keeps its cart.
        order_upsert(**order_data(store))
        assert Cart.objects.get(external_id="K2").converted_order == order

    def test_bad_cart_id(self, store):
        with pytest.raises(ValidationError) as error:
            order_upsert(**order_data(store, cart_external_id=" "))
        assert "cart_id" in error.value.error_dict


@pytest.mark.django_db
class TestCartUpsert:
    def test_newest_state_wins_and_repeats_write_nothing(self, store):
        ProductFactory(store=store, sku="KARMA-1", name="Karma")
        data = {
            "store": store,
            "external_id": "K1",
            "items": [{"sku": "KARMA-1", "quantity": "2", "unit_price": "9,50"}],
            "updated_at": PLACED,
            "customer_data": {"external_id": "C-1", "email": "c1@example.pl"},
        }
        cart, created = cart_upsert(**data)
        assert created
        assert cart.value == Decimal("19.00")
        assert cart.items[0]["name"] == "Karma"
        assert cart.items[0]["product_id"] is not None
        with CaptureQueriesContext(connection) as ctx:
            again, created = cart_upsert(**data)
        assert not created
        assert writes(ctx) == []
        newer, _ = cart_upsert(
            **{**data, "updated_at": PLACED + dt.timedelta(minutes=1), "value": "5"}
        )
        assert newer.value == Decimal("5.00")
        with CaptureQueriesContext(connection) as ctx:
            older, _ = cart_upsert(
                **{**data, "items": [], "customer_data": None, "anonymous_id": "v"}
            )
        assert writes(ctx) == []
        assert older.value == Decimal("5.00")
        assert Customer.objects.count() == 1

    def test_anonymous_cart_keeps_a_known_customer(self, store):
        customer = CustomerFactory()
        cart_upsert(
            store=store,
            external_id="K1",
            items=[],
            updated_at=PLACED,
            customer=customer,
        )
        cart, _ = cart_upsert(
            store=store,
            external_id="K1",
            items=[],
            updated_at=PLACED + dt.timedelta(minutes=1),
            anonymous_id="v-1",
        )
        assert cart.customer == customer
        assert cart.anonymous_id == "v-1"

    def test_bad_input_writes_nothing(self, store):
        with pytest.raises(ValidationError) as error:
            cart_upsert(
                store=store,
                external_id="K1",
                items=[{"quantity": "many", "unit_price": 1, "colour": "red"}] * 2,
                updated_at="soon",
                currency="złoty",
            )
        assert set(error.value.error_dict) == {
            "updated_at",
            "currency",
            "customer",
            "items.0.name",
            "items.0.quantity",
            "items.0.colour",
            "items.1.name",
            "items.1.quantity",
            "items.1.colour",
        }
        with pytest.raises(ValidationError) as error:
            cart_upsert(
                store=store,
                external_id="K1",
                items=[{"name": "A", "quantity": 1, "unit_price": 1}] * 201,
                updated_at=PLACED,
                anonymous_id="v",
            )
        assert error.value.error_dict["items"][0].code == "too_many"
        with pytest.raises(ValidationError) as error:
            cart_upsert(
                store=store,
                external_id="K1",
                items=[],
                updated_at=PLACED,
                customer_data={"email": "nope"},
            )
        assert "customer.email" in error.value.error_dict
        with pytest.raises(ValidationError) as error:
            cart_upsert(
                store=store,
                external_id="K1",
                items=[],
                updated_at=dt.datetime(2999, 1, 1, tzinfo=dt.UTC),
                anonymous_id="v",
            )
        assert error.value.error_dict["updated_at"][0].code == "in_future"
        assert Cart.objects.count() == 0


def product(n, **overrides):
    return {
        "external_id": f"P{n}",
        "sku": f"S{n}",
        "name": f"Produkt {n}",
        "price": "10",
        **overrides,
    }


@pytest.mark.django_db
class TestProductUpsertBulk:
    def test_counts_are_truthful_and_repeats_write_nothing(self, store):
        items = [product(n) for n in range(5)]
        assert product_upsert_bulk(store=store, items=items) == {
            "created": 5,
            "updated": 0,
            "unchanged": 0,
        }
        before = dict(Product.objects.values_list("external_id", "updated_at"))
        assert product_upsert_bulk(store=store, items=items)["unchanged"] == 5
        assert dict(Product.objects.values_list("external_id", "updated_at")) == before
        items[2]["price"] = 11
        items.append(product(5))
        assert product_upsert_bulk(store=store, items=items) == {
            "created": 1,
            "updated": 1,
            "unchanged": 4,
        }

    def test_fields_left_out_keep_stored_values_and_null_clears(self, store):
        category = CategoryFactory(store=store, external_id="K")
        product_upsert_bulk(
            store=store,
            items=[
                product(
                    1,
                    brand="Acme",
                    category="K",
                    currency="eur",
                    replenishment_days=30,
                    is_sensitive=True,
                    is_active=False,
                )
            ],
        )
        product_upsert_bulk(store=store, items=[product(1, name="Nowa")])
        stored = Product.objects.get()
        assert (stored.name, stored.brand, stored.category, stored.currency) == (
            "Nowa",
            "Acme",
            category,
            "EUR",
        )
        assert stored.replenishment_days == 30
        assert stored.is_sensitive
        assert not stored.is_active
        product_upsert_bulk(
            store=store, items=[product(1, category=None, replenishment_days=None)]
        )
        stored.refresh_from_db()
        assert stored.category is None
        assert stored.replenishment_days is None

    def test_store_scoping_and_sku_of_another_product(self, store):
        other = StoreFactory(code="inny")
        product_upsert_bulk(store=other, items=[product(1)])
        product_upsert_bulk(store=store, items=[product(1), product(2)])
        assert Product.objects.filter(store=store).count() == 2
        with pytest.raises(ValidationError) as error:
            product_upsert_bulk(store=store, items=[product(3, sku="S1")])
        assert error.value.error_dict["items.0.sku"][0].code == "sku_taken"
        # An SKU moving to another product in the same batch is refused, not a 500.
        with pytest.raises(ValidationError):
            product_upsert_bulk(
                store=store, items=[product(1, sku="S2"), product(2, sku="S1")]
            )

    def test_more_than_1000_items(self, store):
        with pytest.raises(ValidationError) as error:
            product_upsert_bulk(store=store, items=[product(n) for n in range(1001)])
        assert error.value.error_dict["items"][0].code == "too_many"

    def test_links_are_absolute_http_addresses_kept_when_left_out(self, store):
        page, image = "https://sklep.pl/p/1", "http://cdn.sklep.pl/1.jpg?w=600"
        product_upsert_bulk(
            store=store, items=[product(1, url=f"  {page} ", image_url=image)]
        )
        stored = Product.objects.get()
        assert (stored.url, stored.image_url) == (page, image)
        assert product_upsert_bulk(store=store, items=[product(1)])["unchanged"] == 1
        stored.refresh_from_db()
        assert (stored.url, stored.image_url) == (page, image)
        assert (
            product_upsert_bulk(
                store=store, items=[product(1, url=None, image_url="")]
            )["updated"]
            == 1
        )
        stored.refresh_from_db()
        assert (stored.url, stored.image_url) == ("", "")
        # A new product without links gets empty ones, not NULL.
        product_upsert_bulk(store=store, items=[product(2)])
        assert Product.objects.get(external_id="P2").url == ""

    @pytest.mark.parametrize(
        ("value", "code"),
        [
            ("/p/1", "invalid"),
            ("sklep.pl/p/1", "invalid"),
            ("ftp://sklep.pl/p/1", "invalid"),
            ("javascript:alert(1)", "invalid"),
            ("https://sklep.pl/a b", "invalid"),
            (1, "invalid"),
            ("https://sklep.pl/" + "a" * 1990, "too_long"),
        ],
    )
    def test_a_bad_link_is_an_item_error(self, store, value, code):
        with pytest.raises(ValidationError) as error:
            product_upsert_bulk(
                store=store, items=[product(1), product(2, image_url=value)]
            )
        assert set(error.value.error_dict) == {"items.1.image_url"}
        assert error.value.error_dict["items.1.image_url"][0].code == code
        assert not Product.objects.exists()


@pytest.mark.django_db
class TestCategoryUpsertBulk:
    def test_tree_in_one_batch_any_order(self, store):
        items = [
            {"external_id": "c", "name": "C", "parent": "b"},
            {"external_id": "b", "name": "B", "parent": "a"},
            {"external_id": "a", "name": "A"},
        ]
        assert category_upsert_bulk(store=store, items=items)["created"] == 3
        assert Category.objects.get(external_id="c").path == "A › B › C"
        assert category_upsert_bulk(store=store, items=items)["unchanged"] == 3
        # Only the parent changed: counted as updated.
        items[0]["parent"] = "a"
        assert category_upsert_bulk(store=store, items=items) == {
            "created": 0,
            "updated": 1,
            "unchanged": 2,
        }

    def test_loops_through_stored_categories_are_refused(self, store):
        category_upsert_bulk(
            store=store,
            items=[
                {"external_id": "a", "name": "A"},
                {"external_id": "b", "name": "B", "parent": "a"},
                {"external_id": "c", "name": "C", "parent": "b"},
            ],
        )
        with pytest.raises(ValidationError) as error:
            category_upsert_bulk(
                store=store, items=[{"external_id": "a", "name": "A", "parent": "c"}]
            )
        assert error.value.error_dict["items.0.parent"][0].code == "cycle"
        assert Category.objects.get(external_id="a").parent is None

    def test_sensitive_flag_left_out_is_kept(self, store):
        category_upsert_bulk(
            store=store,
            items=[{"external_id": "z", "name": "Zdrowie", "is_sensitive": True}],
        )
        category_upsert_bulk(store=store, items=[{"external_id": "z", "name": "Z"}])
        assert Category.objects.get().is_sensitive
