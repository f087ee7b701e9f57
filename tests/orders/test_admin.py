import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from customers import roles
from customers.paginators import EstimatedCountPaginator
from orders.models import Order
from tests.factories.customers import CustomerFactory, StoreFactory
from tests.factories.orders import (
    CategoryFactory,
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
)

CHANGELIST = reverse("admin:orders_order_changelist")


def order_url(order):
    return reverse("admin:orders_order_change", args=[order.pk])


@pytest.fixture
def orders(db):
    store = StoreFactory(code="sklep")
    return [
        OrderFactory(store=store, payment_method="blik", currency="PLN")
        for _ in range(10)
    ]


@pytest.fixture
def anna_order(db):
    customer = CustomerFactory(first_name="Anna", email="anna.nowak@example.pl")
    order = OrderFactory(
        customer=customer, number="ZAM/2024/0777", external_id="ext-777"
    )
    OrderLineFactory.create_batch(3, order=order)
    return order


def test_changelist_loads_with_bounded_queries(
    admin_client, orders, anna_order, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):
        response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    cl = response.context["cl"]
    assert len(cl.result_list) == 11
    html = response.content.decode()
    assert "112,99 PLN" in html  # Localised for Polish staff.
    assert (
        reverse("admin:customers_customer_change", args=[anna_order.customer_id])
        in html
    )


def test_changelist_query_count_does_not_grow_with_rows(admin_client, orders):
    with CaptureQueriesContext(connection) as few:
        admin_client.get(CHANGELIST)
    OrderFactory.create_batch(20)
    with CaptureQueriesContext(connection) as many:
        admin_client.get(CHANGELIST)
    assert len(many.captured_queries) == len(few.captured_queries)


@pytest.mark.parametrize(
    "query",
    [
        "ZAM/2024/0777",
        "zam/2024/0777",
        " ext-777 ",
        "anna.nowak@example.pl",
        "ANNA.NOWAK@example.pl",
    ],
)
def test_search(admin_client, orders, anna_order, query):
    response = admin_client.get(CHANGELIST, {"q": query})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [anna_order]


def test_search_by_number_uses_upper(admin_client, anna_order):
    with CaptureQueriesContext(connection) as captured:
        admin_client.get(CHANGELIST, {"q": "zam/2024/0777"})
    assert any('UPPER("orders_order"."number"' in q["sql"] for q in captured)


def test_unfiltered_changelist_never_counts_the_whole_table(
    admin_client, orders, monkeypatch
):
    with CaptureQueriesContext(connection) as captured:
        admin_client.get(CHANGELIST)
    counts = [q["sql"] for q in captured if "COUNT(" in q["sql"].upper()]
    assert counts
    assert all("LIMIT" in sql.upper() for sql in counts)

    monkeypatch.setattr(EstimatedCountPaginator, "count_limit", 2)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Order._meta.db_table}")
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(CHANGELIST)
    assert not [q for q in captured if "COUNT(" in q["sql"].upper()]
    assert response.context["cl"].result_count == 10


@pytest.mark.parametrize(
    "params",
    [
        {"status__exact": "paid"},
        {"currency": "PLN"},
        {"payment_method": "blik"},
        {"placed_at__gte": "2020-01-01 00:00:00+01:00"},
    ],
)
def test_filters(admin_client, orders, anna_order, params):
    response = admin_client.get(CHANGELIST, params)
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 10


def test_store_and_payment_filters_narrow_the_list(admin_client, orders, anna_order):
    store = orders[0].store
    response = admin_client.get(CHANGELIST, {"store__id__exact": store.pk})
    assert set(response.context["cl"].result_list) == set(orders)
    response = admin_client.get(CHANGELIST, {"payment_method": "blik"})
    assert set(response.context["cl"].result_list) == set(orders)
    # The filter offers the values in use.
    assert "?payment_method=blik" in response.content.decode()


def test_customer_filter_link(admin_client, orders, anna_order):
    response = admin_client.get(
        CHANGELIST, {"customer__id__exact": anna_order.customer_id}
    )
    assert list(response.context["cl"].result_list) == [anna_order]


def test_order_page_is_read_only_even_for_superuser(admin_client, anna_order):
    response = admin_client.get(order_url(anna_order))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="status"' not in html
    assert 'name="total"' not in html
    assert 'name="lines-0-quantity"' not in html
    assert anna_order.lines.first().name in html
    response = admin_client.post(order_url(anna_order), {"status": "cancelled"})
    assert response.status_code == 403
    anna_order.refresh_from_db()
    assert anna_order.status == Order.Status.PAID
    assert admin_client.get(reverse("admin:orders_order_add")).status_code == 403


def test_order_page_queries_do_not_grow_with_lines(admin_client, anna_order):
    admin_client.get(order_url(anna_order))  # warms the content type cache
    with CaptureQueriesContext(connection) as few:
        admin_client.get(order_url(anna_order))
    OrderLineFactory.create_batch(10, order=anna_order)
    with CaptureQueriesContext(connection) as many:
        admin_client.get(order_url(anna_order))
    assert len(many.captured_queries) == len(few.captured_queries)


def test_manager_can_delete_order_support_cannot(client, make_staff, anna_order):
    client.force_login(make_staff(roles.SUPPORT))
    delete_url = reverse("admin:orders_order_delete", args=[anna_order.pk])
    assert client.get(order_url(anna_order)).status_code == 200
    assert client.get(delete_url).status_code == 403
    client.force_login(make_staff(roles.MANAGER))
    assert client.get(delete_url).status_code == 200


# --- Orders on the customer page --------------------------------------------------


def test_customer_page_lists_orders_with_links(admin_client, anna_order):
    OrderFactory.create_batch(3, customer=anna_order.customer)
    url = reverse("admin:customers_customer_change", args=[anna_order.customer_id])
    response = admin_client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "ZAM/2024/0777" in html
    assert order_url(anna_order) in html
    assert 'name="orders-0-status"' not in html


def test_customer_page_shows_only_latest_orders(admin_client, anna_order):
    customer = anna_order.customer
    OrderFactory.create_batch(25, customer=customer)
    url = reverse("admin:customers_customer_change", args=[customer.pk])
    response = admin_client.get(url)
    formset = next(
        f.formset
        for f in response.context["inline_admin_formsets"]
        if f.opts.model is Order
    )
    shown = [form.instance for form in formset.forms]
    assert len(shown) == 20
    assert shown == list(customer.orders.order_by("-placed_at")[:20])


def test_support_sees_orders_on_customer_page(client, make_staff, anna_order):
    client.force_login(make_staff(roles.SUPPORT))
    url = reverse("admin:customers_customer_change", args=[anna_order.customer_id])
    response = client.get(url)
    assert "ZAM/2024/0777" in response.content.decode()


# --- Products and categories ------------------------------------------------------


def test_product_and_category_changelists(admin_client, django_assert_max_num_queries):
    ProductFactory.create_batch(10, category=CategoryFactory())
    with django_assert_max_num_queries(10):
        response = admin_client.get(reverse("admin:orders_product_changelist"))
    assert response.status_code == 200
    assert "49,99 PLN" in response.content.decode()
    with django_assert_max_num_queries(10):
        response = admin_client.get(reverse("admin:orders_category_changelist"))
    assert response.status_code == 200


def test_product_search_by_sku(admin_client):
    product = ProductFactory(sku="ABC-123")
    ProductFactory.create_batch(3)
    response = admin_client.get(
        reverse("admin:orders_product_changelist"), {"q": "ABC-123"}
    )
    assert list(response.context["cl"].result_list) == [product]


def test_product_form_uses_autocomplete_for_store_and_category(admin_client):
    product = ProductFactory()
    response = admin_client.get(
        reverse("admin:orders_product_change", args=[product.pk])
    )
    html = response.content.decode()
    assert 'data-field-name="store"' in html
    assert 'data-field-name="category"' in html


def test_product_form_edits_the_links_as_absolute_http_addresses(admin_client):
    product = ProductFactory()
    url = reverse("admin:orders_product_change", args=[product.pk])
    form = admin_client.get(url).context["adminform"].form
    assert {"url", "image_url"} <= set(form.fields)
    data = {
        **{
            name: value
            for name, value in form.initial.items()
            if name in form.fields and value is not None
        },
        "url": "sklep.pl/p/1",
        "image_url": "ftp://sklep.pl/1.jpg",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"image_url"}
    data["image_url"] = ""
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    product.refresh_from_db()
    # Typed without a scheme: taken as https.
    assert (product.url, product.image_url) == ("https://sklep.pl/p/1", "")


def test_support_cannot_add_product(client, make_staff):
    client.force_login(make_staff(roles.SUPPORT))
    assert client.get(reverse("admin:orders_product_changelist")).status_code == 200
    assert client.get(reverse("admin:orders_product_add")).status_code == 403


def test_data_protection_officer_cannot_view_products(client, make_staff):
    client.force_login(make_staff(roles.DATA_PROTECTION_OFFICER))
    assert client.get(reverse("admin:orders_product_changelist")).status_code == 403
    assert client.get(reverse("admin:orders_category_changelist")).status_code == 403
    assert client.get(CHANGELIST).status_code == 200
