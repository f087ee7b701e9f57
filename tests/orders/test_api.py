import datetime as dt

import pytest
from rest_framework.test import APIClient

from customers.services import customer_upsert
from orders.api.serializers import CategoryInputSerializer, ProductInputSerializer
from orders.models import Cart, Category, Order, OrderLine, Product
from orders.services import CATEGORY_FIELDS, PRODUCT_FIELDS, order_upsert
from tests.factories.customers import StoreFactory
from tests.factories.orders import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db
ORDERS = "/api/v1/orders/"
CARTS = "/api/v1/carts/"
PRODUCTS = "/api/v1/products/"
CATEGORIES = "/api/v1/categories/"


def order_body(**overrides):
    body = {
        "number": "ZAM/1001",
        "placed_at": "2026-03-01T12:30:00+01:00",
        "status": "paid",
        "shipping_total": 12.99,
        "billing_address": {"city": "Kraków", "postcode": "30-001"},
        "customer": {"external_id": "C-1", "email": "Anna@Example.PL"},
        "lines": [
            {"sku": "KUB-01", "name": "Kubek", "quantity": 2, "unit_price": "39.90"},
            {"name": "Herbata", "quantity": "1.5", "unit_price": 24.5},
        ],
    }
    body.update(overrides)
    return body


def cart_body(**overrides):
    body = {
        "updated_at": "2026-03-01T12:00:00+01:00",
        "anonymous_id": "v-1",
        "items": [{"sku": "KUB-01", "name": "Kubek", "quantity": 2, "unit_price": 10}],
    }
    body.update(overrides)
    return body


# --- Orders ------------------------------------------------------------------------


def test_put_creates_the_order_and_five_repeats_change_nothing(api, store):
    first = api.put(f"{ORDERS}1001/", order_body(), format="json")
    assert first.status_code == 201, first.json()
    body = first.json()
    assert body["external_id"] == "1001"
    assert body["customer_external_id"] == "C-1"
    assert body["customer"] == Order.objects.get().customer_id
    assert body["subtotal"] == "116.55"
    assert body["total"] == "129.54"
    assert [line["total"] for line in body["lines"]] == ["79.80", "36.75"]
    line_ids = [line["id"] for line in body["lines"]]
    for _ in range(4):
        again = api.put(f"{ORDERS}1001/", order_body(), format="json")
        assert again.status_code == 200
        assert again.json() == body
    assert Order.objects.count() == 1
    assert sorted(OrderLine.objects.values_list("id", flat=True)) == sorted(line_ids)


def test_put_replaces_lines_when_they_change(api):
    api.put(f"{ORDERS}1001/", order_body(), format="json")
    response = api.put(
        f"{ORDERS}1001/",
        order_body(lines=[{"name": "Kubek", "quantity": 1, "unit_price": "5"}]),
        format="json",
    )
    assert response.status_code == 200
    assert [line["name"] for line in response.json()["lines"]] == ["Kubek"]
    assert OrderLine.objects.count() == 1


def test_put_bad_input_reports_dotted_fields_and_writes_nothing(api):
    response = api.put(
        f"{ORDERS}1001/",
        order_body(
            status="lost",
            colour="red",
            lines=[
                {"name": "Kubek", "quantity": 1, "unit_price": "5"},
                {"name": "Miska", "quantity": 0, "unit_price": "-1", "size": "L"},
            ],
            customer={"email": "Anna@Example.PL", "shoe_size": 40},
        ),
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["colour"][0]["code"] == "unknown_field"
    assert errors["status"][0]["code"] == "invalid_choice"
    assert errors["lines.1.quantity"][0]["code"] == "min_value"
    assert errors["lines.1.unit_price"][0]["code"] == "min_value"
    assert errors["lines.1.size"][0]["code"] == "unknown_field"
    assert errors["customer.shoe_size"][0]["code"] == "unknown_field"
    # Errors found by the services come back under the same dotted paths.
    response = api.put(
        f"{ORDERS}1001/", order_body(customer={"email": "nope"}), format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"]["customer.email"][0]["code"] == "invalid_email"
    response = api.put(
        f"{ORDERS}1001/",
        order_body(customer={"email": "a@example.pl"}, placed_at=None),
        format="json",
    )
    assert set(response.json()["errors"]) == {"placed_at"}
    response = api.put(f"{ORDERS}1001/", order_body(total=""), format="json")
    assert response.json()["errors"]["total"][0]["code"] == "invalid"
    assert Order.objects.count() == 0


def test_put_refuses_more_than_500_lines(api):
    lines = [{"name": "Gwóźdź", "quantity": 1, "unit_price": "0.10"}] * 501
    response = api.put(f"{ORDERS}1001/", order_body(lines=lines), format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["lines"][0]["code"] == "max_length"


def test_status_moves_along_the_table_and_repeats_are_no_ops(api):
    api.put(f"{ORDERS}1001/", order_body(), format="json")
    url = f"{ORDERS}1001/status/"
    shipped = api.post(
        url, {"status": "shipped", "at": "2026-03-02T09:00:00Z"}, format="json"
    )
    assert shipped.status_code == 200
    assert shipped.json()["status"] == "shipped"
    assert shipped.json()["shipped_at"] == "2026-03-02T10:00:00+01:00"
    again = api.post(url, {"status": "shipped"}, format="json")
    assert again.status_code == 200
    assert again.json() == shipped.json()
    forbidden = api.post(url, {"status": "new"}, format="json")
    assert forbidden.status_code == 400
    assert forbidden.json()["errors"]["status"][0]["code"] == "invalid_transition"
    unknown = api.post(url, {"status": "delivered", "by": "DHL"}, format="json")
    assert unknown.json()["errors"]["by"][0]["code"] == "unknown_field"
    assert api.post(f"{ORDERS}nope/status/", {"status": "paid"}).status_code == 404
    assert Order.objects.get().status == "shipped"


def test_status_post_honours_idempotency_key(api):
    api.put(f"{ORDERS}1001/", order_body(status="new"), format="json")
    url = f"{ORDERS}1001/status/"
    first = api.post(url, {"status": "paid"}, format="json", HTTP_IDEMPOTENCY_KEY="s1")
    replay = api.post(url, {"status": "paid"}, format="json", HTTP_IDEMPOTENCY_KEY="s1")
    assert replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"


def test_list_filters_and_cursor(api, store):
    for n, (status, day) in enumerate(
        [("paid", 1), ("new", 2), ("paid", 3), ("cancelled", 4)]
    ):
        order_upsert(
            store=store,
            external_id=f"O{n}",
            placed_at=dt.datetime(2026, 3, day, 12, tzinfo=dt.UTC),
            status=status,
            customer_data={"external_id": f"C{n % 2}", "email": f"c{n % 2}@ex.pl"},
            lines=[{"name": "Kubek", "quantity": 1, "unit_price": "5"}],
        )

    def ids(**params):
        response = api.get(ORDERS, params)
        assert response.status_code == 200, response.json()
        return [order["external_id"] for order in response.json()["results"]]

    assert ids() == ["O0", "O1", "O2", "O3"]
    assert ids(customer="C1") == ["O1", "O3"]
    assert ids(status="paid") == ["O0", "O2"]
    assert ids(placed_after="2026-03-02T00:00:00Z", placed_before="2026-03-04") == [
        "O1",
        "O2",
    ]
    assert ids(customer="C9") == []
    page = api.get(ORDERS, {"page_size": 3}).json()
    assert [o["external_id"] for o in api.get(page["next"]).json()["results"]] == ["O3"]
    Order.objects.filter(external_id="O0").update(
        updated_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    )
    assert ids(updated_since="2029-01-01T00:00:00Z") == ["O0"]
    for params in ({"status": "lost"}, {"customer": ""}, {"placed_after": "soon"}):
        assert api.get(ORDERS, params).status_code == 400
    # Offsets PostgreSQL refuses and times at the calendar's ends are no 500s.
    assert ids(updated_since="0658-06-11T01:36:09-19:53") == ["O1", "O2", "O3", "O0"]
    assert ids(placed_after="0001-01-01T00:00:00+05:00") == ["O1", "O2", "O3", "O0"]
    assert ids(placed_before="9999-12-31T23:59:59-05:00") == ["O1", "O2", "O3", "O0"]


def test_list_queries_do_not_grow_with_orders(
    api, store, django_assert_max_num_queries
):
    for n in range(12):
        order_upsert(
            store=store,
            external_id=f"O{n}",
            placed_at="2026-03-01T12:00:00Z",
            customer_data={"external_id": f"C{n}", "email": f"c{n}@ex.pl"},
            lines=[
                {"name": "Kubek", "quantity": 1, "unit_price": "5"},
                {"name": "Miska", "quantity": 2, "unit_price": "7"},
            ],
            cart_external_id=f"K{n}",
        )
    # savepoint, key, key's last use, orders, lines, identities, release
    with django_assert_max_num_queries(7):
        response = api.get(ORDERS)
    assert len(response.json()["results"]) == 12
    assert response.json()["results"][0]["cart_id"] == "K0"
    assert len(response.json()["results"][0]["lines"]) == 2
    with django_assert_max_num_queries(7):
        assert api.get(f"{ORDERS}O3/").json()["customer_external_id"] == "C3"


def test_order_with_cart_id_converts_the_cart(api, store):
    api.put(f"{CARTS}K-1/", cart_body(), format="json")
    response = api.put(f"{ORDERS}1001/", order_body(cart_id="K-1"), format="json")
    assert response.json()["cart_id"] == "K-1"
    cart = api.get(f"{CARTS}K-1/").json()
    assert cart["converted_order"] == "1001"
    assert cart["converted_at"] == "2026-03-01T12:30:00+01:00"
    assert cart["customer_external_id"] == "C-1"
    modified_at = cart["modified_at"]
    api.put(f"{ORDERS}1001/", order_body(cart_id="K-1"), format="json")
    assert api.get(f"{CARTS}K-1/").json()["modified_at"] == modified_at
    # A cart the shop never reported is recorded as converted.
    api.put(f"{ORDERS}1002/", order_body(cart_id="K-2"), format="json")
    assert Cart.objects.get(external_id="K-2").converted_order.external_id == "1002"
    assert Cart.objects.open().count() == 0


# --- Auth and store scoping, every endpoint -----------------------------------------

READS = [ORDERS, f"{ORDERS}1001/", f"{CARTS}K-1/", PRODUCTS, f"{PRODUCTS}P-1/"]
READS += [CATEGORIES, f"{CATEGORIES}CAT-1/"]
WRITES = [
    ("put", f"{ORDERS}1001/", order_body()),
    ("post", f"{ORDERS}1001/status/", {"status": "shipped"}),
    ("put", f"{CARTS}K-1/", cart_body()),
    ("post", f"{PRODUCTS}bulk/", {"items": []}),
    ("post", f"{CATEGORIES}bulk/", {"items": []}),
]


@pytest.mark.parametrize("url", READS + [url for _m, url, _b in WRITES])
def test_missing_or_wrong_key_is_401(db, url):
    assert APIClient().get(url).status_code == 401
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Api-Key kt_nope_nope")
    response = wrong.post(url, {}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


@pytest.mark.parametrize(("method", "url", "body"), WRITES)
def test_read_only_key_cannot_write(make_api_client, store, method, url, body):
    reader = make_api_client(store, scopes=("read",))
    response = getattr(reader, method)(url, body, format="json")
    assert response.status_code == 403
    assert response.json()["status"] == 403
    assert Order.objects.count() == Cart.objects.count() == 0


def test_another_stores_rows_are_404_and_unlisted(api, store, make_api_client):
    other = StoreFactory(code="inny")
    other_api = make_api_client(other)
    assert other_api.put(f"{ORDERS}1001/", order_body(), format="json").status_code
    other_api.put(f"{CARTS}K-1/", cart_body(), format="json")
    category = CategoryFactory(store=other, external_id="CAT-1")
    ProductFactory(store=other, external_id="P-1", category=category)
    for url in (f"{ORDERS}1001/", f"{CARTS}K-1/", f"{PRODUCTS}P-1/", READS[-1]):
        assert api.get(url).status_code == 404, url
        assert other_api.get(url).status_code == 200, url
    for url in (ORDERS, PRODUCTS, CATEGORIES):
        assert api.get(url).json()["results"] == []
    response = api.post(f"{ORDERS}1001/status/", {"status": "shipped"}, format="json")
    assert response.status_code == 404
    # The same external id in this store is another order.
    assert api.put(f"{ORDERS}1001/", order_body(), format="json").status_code == 201
    assert Order.objects.count() == 2


# --- Products and categories ------------------------------------------------------


def product(n, **overrides):
    item = {
        "external_id": f"P-{n}",
        "sku": f"SKU-{n}",
        "name": f"Produkt {n}",
        "price": "10.00",
    }
    item.update(overrides)
    return item


def test_item_serializers_document_the_service_fields():
    assert set(ProductInputSerializer().fields) == set(PRODUCT_FIELDS)
    assert set(CategoryInputSerializer().fields) == set(CATEGORY_FIELDS)


def test_product_bulk_upserts_and_repeats_change_nothing(api, store):
    CategoryFactory(store=store, external_id="kuchnia")
    items = [product(n, category="kuchnia") for n in range(3)]
    items[1].update(price=19.9, replenishment_days=30, is_sensitive=True)
    url = f"{PRODUCTS}bulk/"
    response = api.post(url, {"items": items}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"created": 3, "updated": 0, "unchanged": 0}
    assert api.post(url, {"items": items}, format="json").json() == {
        "created": 0,
        "updated": 0,
        "unchanged": 3,
    }
    changed = [product(1, name="Nowa nazwa"), product(3)]
    assert api.post(url, {"items": changed}, format="json").json() == {
        "created": 1,
        "updated": 1,
        "unchanged": 0,
    }
    listed = api.get(PRODUCTS, {"sku": "SKU-1"}).json()["results"]
    assert len(listed) == 1
    # Fields left out keep what is stored.
    assert listed[0]["name"] == "Nowa nazwa"
    assert listed[0]["category"] == "kuchnia"
    assert listed[0]["price"] == "10.00"
    assert listed[0]["is_sensitive"] is True
    assert listed[0]["replenishment_days"] == 30
    assert Product.objects.filter(store=store).count() == 4
    assert api.get(f"{PRODUCTS}P-3/").json()["currency"] == "PLN"


def test_product_bulk_takes_the_links_and_the_answers_show_them(api, store):
    items = [
        product(1, url="https://sklep.pl/p/1", image_url="https://cdn.sklep.pl/1.jpg"),
        product(2),
    ]
    response = api.post(f"{PRODUCTS}bulk/", {"items": items}, format="json")
    assert response.status_code == 200, response.json()
    shown = api.get(f"{PRODUCTS}P-1/").json()
    assert (shown["url"], shown["image_url"]) == (
        "https://sklep.pl/p/1",
        "https://cdn.sklep.pl/1.jpg",
    )
    assert api.get(f"{PRODUCTS}P-2/").json()["url"] == ""
    bad = [product(1, url="ftp://sklep.pl/p/1", image_url="/1.jpg")]
    response = api.post(f"{PRODUCTS}bulk/", {"items": bad}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"items.0.url", "items.0.image_url"}
    assert api.get(f"{PRODUCTS}P-1/").json()["url"] == "https://sklep.pl/p/1"


def test_product_bulk_refuses_the_whole_batch_with_item_errors(api, store):
    ProductFactory(store=store, external_id="OLD", sku="TAKEN")
    items = [
        product(0),
        product(1, sku="TAKEN"),
        product(2, price="-1", colour="red"),
        product(3, category="nope", replenishment_days=0),
        product(0, sku="SKU-4"),
        product(5, sku="SKU-0"),
        "not an object",
        {"external_id": "P-7", "sku": 7, "name": ""},
    ]
    response = api.post(f"{PRODUCTS}bulk/", {"items": items}, format="json")
    assert response.status_code == 400
    errors = {key: value[0]["code"] for key, value in response.json()["errors"].items()}
    assert errors == {
        "items.1.sku": "sku_taken",
        "items.2.price": "invalid",
        "items.2.colour": "unknown_field",
        "items.3.category": "unknown_category",
        "items.3.replenishment_days": "invalid",
        "items.4.external_id": "duplicate",
        "items.5.sku": "duplicate",
        "items.6": "invalid",
        "items.7.sku": "invalid",
        "items.7.name": "blank",
        "items.7.price": "required",
    }
    assert Product.objects.filter(store=store).count() == 1


@pytest.mark.parametrize("url", [f"{PRODUCTS}bulk/", f"{CATEGORIES}bulk/"])
def test_bulk_of_1001_items_is_413_before_validation(api, url):
    response = api.post(url, {"items": [{"x": 1}] * 1001}, format="json")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


@pytest.mark.parametrize("url", [f"{PRODUCTS}bulk/", f"{CATEGORIES}bulk/"])
def test_bulk_envelope_is_strict(api, url):
    response = api.post(url, {"items": [], "dry_run": True}, format="json")
    assert response.json()["errors"]["dry_run"][0]["code"] == "unknown_field"
    response = api.post(url, {"items": "all"}, format="json")
    assert response.status_code == 400
    assert "items" in response.json()["errors"]


def test_category_bulk_resolves_parents_in_and_outside_the_batch(api, store):
    CategoryFactory(store=store, external_id="root", name="Wszystko")
    items = [
        {"external_id": "kubki", "name": "Kubki", "parent": "kuchnia"},
        {"external_id": "kuchnia", "name": "Kuchnia", "parent": "root"},
        {"external_id": "zdrowie", "name": "Zdrowie", "is_sensitive": True},
    ]
    url = f"{CATEGORIES}bulk/"
    assert api.post(url, {"items": items}, format="json").json() == {
        "created": 3,
        "updated": 0,
        "unchanged": 0,
    }
    assert api.post(url, {"items": items}, format="json").json()["unchanged"] == 3
    kubki = Category.objects.get(store=store, external_id="kubki")
    assert kubki.path == "Wszystko › Kuchnia › Kubki"
    moved = [{"external_id": "kubki", "name": "Kubki", "parent": None}]
    assert api.post(url, {"items": moved}, format="json").json()["updated"] == 1
    listed = api.get(CATEGORIES).json()["results"]
    assert [(c["external_id"], c["parent"]) for c in listed] == [
        ("root", None),
        ("kubki", None),
        ("kuchnia", "root"),
        ("zdrowie", None),
    ]
    assert api.get(CATEGORIES, {"external_id": "zdrowie"}).json()["results"][0][
        "is_sensitive"
    ]


def test_category_bulk_refuses_loops_and_unknown_parents(api, store):
    CategoryFactory(store=store, external_id="a")
    CategoryFactory(store=store, external_id="b", parent=Category.objects.get())
    items = [
        {"external_id": "a", "name": "A", "parent": "b"},
        {"external_id": "c", "name": "C", "parent": "c"},
        {"external_id": "d", "name": "D", "parent": "nope"},
        {"external_id": "e", "name": "E", "shoe": 1},
    ]
    response = api.post(f"{CATEGORIES}bulk/", {"items": items}, format="json")
    assert response.status_code == 400
    errors = {key: value[0]["code"] for key, value in response.json()["errors"].items()}
    assert errors == {"items.3.shoe": "unknown_field"}  # fields first, then the tree
    response = api.post(f"{CATEGORIES}bulk/", {"items": items[:3]}, format="json")
    errors = {key: value[0]["code"] for key, value in response.json()["errors"].items()}
    assert errors == {
        "items.0.parent": "cycle",
        "items.1.parent": "cycle",
        "items.2.parent": "unknown_category",
    }
    assert Category.objects.filter(store=store).count() == 2


# --- Carts ---------------------------------------------------------------------------


def test_cart_put_creates_repeats_and_ignores_older_updates(api, store):
    first = api.put(f"{CARTS}K-1/", cart_body(), format="json")
    assert first.status_code == 201, first.json()
    body = first.json()
    assert body["value"] == "20.00"
    assert body["items"] == [
        {
            "sku": "KUB-01",
            "name": "Kubek",
            "quantity": "2.000",
            "unit_price": "10.00",
            "product_id": None,
        }
    ]
    assert body["customer"] is None
    again = api.put(f"{CARTS}K-1/", cart_body(), format="json")
    assert again.status_code == 200
    assert again.json() == body
    newer = cart_body(
        updated_at="2026-03-01T13:00:00+01:00",
        items=[],
        customer={"external_id": "C-1", "email": "c1@example.pl"},
    )
    response = api.put(f"{CARTS}K-1/", newer, format="json")
    assert response.json()["value"] == "0.00"
    assert response.json()["customer_external_id"] == "C-1"
    older = api.put(f"{CARTS}K-1/", cart_body(), format="json")
    assert older.status_code == 200
    assert older.json() == response.json()
    assert api.get(f"{CARTS}K-1/").json() == response.json()
    assert Cart.objects.count() == 1


def test_cart_bad_input(api):
    body = cart_body(
        anonymous_id="",
        items=[{"name": "Kubek", "quantity": -1, "unit_price": "x", "colour": 1}],
        total=5,
    )
    response = api.put(f"{CARTS}K-1/", body, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {
        "items.0.quantity",
        "items.0.unit_price",
        "items.0.colour",
        "total",
    }
    response = api.put(f"{CARTS}K-1/", cart_body(anonymous_id=""), format="json")
    assert response.json()["errors"]["customer"][0]["code"] == "required"
    items = [{"name": "Kubek", "quantity": 1, "unit_price": 1}] * 201
    response = api.put(f"{CARTS}K-1/", cart_body(items=items), format="json")
    assert response.json()["errors"]["items"][0]["code"] == "max_length"
    assert Cart.objects.count() == 0


def test_cart_customer_by_email(api, store):
    customer, _created = customer_upsert(store=store, email="ola@example.pl")
    body = cart_body(anonymous_id="", customer={"email": "OLA@example.pl"})
    response = api.put(f"{CARTS}K-1/", body, format="json")
    assert response.status_code == 201
    assert response.json()["customer"] == customer.pk
