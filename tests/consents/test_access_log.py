"""The access log: staff page views and API reads are logged, cheaply and for good."""

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from consents.access_log import access_log_record, personal_data_accessed_receiver
from consents.models import AccessLog
from customers.models import ApiKey
from customers.services import customer_upsert
from customers.signals import personal_data_accessed
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/customers/"


@pytest.fixture
def support(client, make_staff):
    user = make_staff("Support")
    client.force_login(user)
    return user


def store_customers(store, count, prefix="A"):
    return [
        customer_upsert(
            store=store, external_id=f"{prefix}{n}", email=f"{prefix}{n}@example.pl"
        )[0]
        for n in range(count)
    ]


def accesslog_inserts(queries):
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('INSERT INTO "consents_accesslog"')
    ]


# ---------- Staff pages ----------


def test_customer_page_view_logs_one_row(client, support, customer):
    response = client.get(
        reverse("customers:detail", args=[customer.pk]), REMOTE_ADDR="83.12.44.123"
    )
    assert response.status_code == 200
    entry = AccessLog.objects.get()
    assert entry.customer == customer
    assert entry.action == AccessLog.Action.VIEW
    assert entry.user == support
    assert entry.api_key is None
    assert entry.ip_address == "83.12.44.123"


def test_each_view_is_logged_and_a_missing_customer_is_not(client, support, customer):
    url = reverse("customers:detail", args=[customer.pk])
    client.get(url)
    client.get(url)
    assert client.get(reverse("customers:detail", args=[999999])).status_code == 404
    assert AccessLog.objects.filter(customer=customer, action="view").count() == 2
    assert AccessLog.objects.count() == 2


def test_a_refused_page_logs_nothing(client, make_staff, customer):
    client.force_login(make_staff())  # no role: 403
    response = client.get(reverse("customers:detail", args=[customer.pk]))
    assert response.status_code == 403
    assert not AccessLog.objects.exists()


# ---------- API ----------


def test_api_retrieve_logs_api_read_with_the_key(api, store):
    (customer,) = store_customers(store, 1)
    response = api.get(f"{URL}A0/", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    entry = AccessLog.objects.get()
    assert entry.customer == customer
    assert entry.action == AccessLog.Action.API_READ
    assert entry.api_key == ApiKey.objects.get()
    assert entry.user is None
    assert entry.ip_address == "10.1.2.3"


def test_api_404_logs_nothing(api, store):
    assert api.get(f"{URL}nobody/").status_code == 404
    assert not AccessLog.objects.exists()


def test_api_list_logs_the_returned_page_in_one_insert(api, store):
    customers = store_customers(store, 5)
    with CaptureQueriesContext(connection) as queries:
        response = api.get(URL, {"page_size": 3})
    assert response.status_code == 200
    returned = {row["id"] for row in response.json()["results"]}
    assert len(returned) == 3
    assert set(AccessLog.objects.values_list("customer_id", flat=True)) == returned
    assert set(AccessLog.objects.values_list("action", flat=True)) == {"api_read"}
    assert len(accesslog_inserts(queries)) == 1
    # the next page logs the rest
    api.get(response.json()["next"])
    assert set(AccessLog.objects.values_list("customer_id", flat=True)) == {
        c.pk for c in customers
    }


def test_api_list_logging_costs_one_query_whatever_the_page_size(api, store):
    store_customers(store, 12)

    def list_queries(page_size):
        with CaptureQueriesContext(connection) as queries:
            assert api.get(URL, {"page_size": page_size}).status_code == 200
        return len(queries.captured_queries)

    list_queries(1)  # warms up: the key's last use is stored only now and then
    with_log_small = list_queries(2)
    with_log_big = list_queries(12)
    personal_data_accessed.disconnect(dispatch_uid="consents.access_log")
    try:
        without_log = list_queries(12)
    finally:
        personal_data_accessed.connect(
            personal_data_accessed_receiver, dispatch_uid="consents.access_log"
        )
    assert with_log_small == with_log_big
    assert with_log_big - without_log == 1
    assert AccessLog.objects.count() == 1 + 2 + 12


def test_empty_api_list_writes_nothing(api, store):
    with CaptureQueriesContext(connection) as queries:
        assert api.get(URL).json()["results"] == []
    assert not accesslog_inserts(queries)


# ---------- The service and the table ----------


def test_record_dedupes_and_accepts_customers_or_ids(customer):
    other = CustomerFactory()
    count = access_log_record(
        customers=[customer, customer.pk, other.pk], action="export", purpose="x" * 300
    )
    assert count == 2
    assert AccessLog.objects.count() == 2
    assert {len(p) for p in AccessLog.objects.values_list("purpose", flat=True)} == {
        200
    }
    assert access_log_record(customers=customer, action="view") == 1
    assert access_log_record(customers=[], action="view") == 0


def test_record_refuses_an_unknown_action_and_ignores_a_bad_ip(customer):
    with pytest.raises(ValidationError) as error:
        access_log_record(customers=customer, action="peek")
    assert error.value.error_dict["action"][0].code == "invalid_choice"
    access_log_record(customers=customer, action="view", ip_address="testserver")
    assert AccessLog.objects.get().ip_address is None


def test_raw_update_and_delete_fail(customer):
    access_log_record(customers=customer, action="view", ip_address="83.1.2.3")
    entry = AccessLog.objects.get()
    for statement in (
        "UPDATE consents_accesslog SET ip_address = '10.0.0.1' WHERE id = %s",
        "UPDATE consents_accesslog SET action = 'export' WHERE id = %s",
        "DELETE FROM consents_accesslog WHERE id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(statement, [entry.pk])
    entry.refresh_from_db()
    assert entry.ip_address == "83.1.2.3"
    assert entry.action == "view"


def test_order_api_reads_and_admin_views_are_logged(
    store, customer, make_api_client, admin_client
):
    from django.urls import reverse

    from consents.models import AccessLog
    from tests.factories.orders import OrderFactory

    order = OrderFactory(store=store, customer=customer)
    api = make_api_client(store, scopes=["read"])
    assert api.get(f"/api/v1/orders/{order.external_id}/").status_code == 200
    assert api.get("/api/v1/orders/").status_code == 200
    assert (
        AccessLog.objects.filter(
            customer=customer, action="api_read", purpose="orders"
        ).count()
        == 2
    )
    page = admin_client.get(
        reverse("admin:customers_customer_change", args=[customer.pk])
    )
    assert page.status_code == 200
    assert AccessLog.objects.filter(
        customer=customer, action="view", purpose="admin"
    ).exists()
