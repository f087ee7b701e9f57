"""A customer's metrics and segments over the REST API, read with the store's key."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from consents.erasure import customer_object
from consents.models import AccessLog
from customers.models import ApiKey
from segments.metrics import metrics_recompute
from segments.models import RfmSegment
from segments.rfm import rfm_grid_ensure
from segments.services import (
    segment_create,
    segment_members_add,
    segment_rebuild,
    segment_update,
)
from tests.factories.customers import (
    CustomerFactory,
    CustomerIdentityFactory,
    StoreFactory,
)
from tests.factories.orders import (
    CategoryFactory,
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
)

pytestmark = pytest.mark.django_db

REPEAT_BUYERS = {
    "op": "and",
    "rules": [{"field": "orders_count", "operator": "gte", "value": 2}],
}


def metrics_url(external_id):
    return f"/api/v1/customers/{external_id}/metrics/"


def segments_url(external_id):
    return f"/api/v1/customers/{external_id}/segments/"


def days_ago(days):
    return timezone.now() - timedelta(days=days)


@pytest.fixture
def outlet(db):
    return StoreFactory(code="outlet", name="Outlet")


@pytest.fixture
def anna(store, outlet):
    """C-1 in the main store: two orders there (one in a category) and one in
    the outlet, whose category she bought most (two lines)."""
    rfm_grid_ensure()
    customer = CustomerFactory(first_name="Anna", email="anna@example.pl")
    CustomerIdentityFactory(customer=customer, store=store, external_id="C-1")
    kitchen = CategoryFactory(store=store, external_id="kuchnia", name="Kuchnia")
    mug = ProductFactory(store=store, category=kitchen, brand="Bolesławiec")
    first = OrderFactory(
        customer=customer, store=store, placed_at=days_ago(40), total=Decimal("100")
    )
    OrderLineFactory(order=first, product=mug)
    OrderFactory(
        customer=customer, store=store, placed_at=days_ago(20), total=Decimal("50")
    )
    shoes = CategoryFactory(store=outlet, external_id="buty", name="Buty")
    boot = ProductFactory(store=outlet, category=shoes, brand="")
    third = OrderFactory(
        customer=customer, store=outlet, placed_at=days_ago(10), total=Decimal("30")
    )
    OrderLineFactory(order=third, product=boot)
    OrderLineFactory(order=third, product=boot)
    metrics_recompute()
    return customer


# --- GET /customers/{external_id}/metrics/ -------------------------------------------


def test_metrics_over_all_stores_and_in_the_keys_store(api, anna):
    response = api.get(metrics_url("C-1"))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["external_id"] == "C-1"
    overall, here = body["overall"], body["store"]
    assert overall["orders_count"] == 3
    assert overall["revenue"] == "180.00"
    assert overall["average_order_value"] == "60.00"
    assert overall["clv"] == "180.00"
    assert overall["currency"] == here["currency"] == "PLN"
    assert overall["days_since_last_order"] == 10
    assert overall["average_days_between_orders"] == "15.0"
    assert overall["first_order_at"] is not None
    assert overall["predicted_next_order_on"] is not None
    assert here["orders_count"] == 2
    assert here["revenue"] == "150.00"
    assert here["days_since_last_order"] == 20
    # The outlet's category is on the most lines; its id is not this store's.
    assert overall["favourite_category"] == {"external_id": None, "name": "Buty"}
    assert overall["favourite_brand"] == "Bolesławiec"
    # Worked out over all stores only (as the schema says).
    assert here["favourite_category"] is None
    assert here["predicted_next_order_on"] is None
    rfm = overall["rfm"]
    assert set(rfm) == {"r", "f", "m", "segment", "segment_name"}
    assert all(1 <= rfm[score] <= 5 for score in "rfm")
    assert rfm["segment"] in RfmSegment.Code.values
    assert here["rfm"] is not None


def test_the_rfm_segment_has_the_name_the_staff_gave_it(api, anna):
    code = anna.metrics.get(store__isnull=True).rfm_segment
    RfmSegment.objects.filter(code=code).update(name="Nasi najlepsi")
    rfm = api.get(metrics_url("C-1")).json()["overall"]["rfm"]
    assert (rfm["segment"], rfm["segment_name"]) == (code, "Nasi najlepsi")


def test_a_customer_with_no_orders_gets_zeros_and_nulls(api, store):
    customer = CustomerFactory()
    CustomerIdentityFactory(customer=customer, store=store, external_id="LEAD-1")
    OrderFactory(customer=customer, store=store, status="cancelled")
    metrics_recompute()
    response = api.get(metrics_url("LEAD-1"))
    assert response.status_code == 200
    empty = {
        "orders_count": 0,
        "revenue": "0.00",
        "currency": "PLN",
        "average_order_value": "0.00",
        "first_order_at": None,
        "last_order_at": None,
        "days_since_last_order": None,
        "average_days_between_orders": None,
        "favourite_category": None,
        "favourite_brand": None,
        "predicted_next_order_on": None,
        "clv": "0.00",
        "rfm": None,
    }
    assert response.json() == {
        "external_id": "LEAD-1",
        "overall": empty,
        "store": empty,
    }


def test_the_store_figures_are_zeros_where_she_never_ordered(make_api_client, anna):
    third = StoreFactory(code="third")
    CustomerIdentityFactory(customer=anna, store=third, external_id="T-9")
    body = make_api_client(third).get(metrics_url("T-9")).json()
    assert body["overall"]["orders_count"] == 3
    assert body["store"]["orders_count"] == 0
    assert body["store"]["revenue"] == "0.00"
    assert body["store"]["rfm"] is None


def test_a_favourite_category_of_the_keys_store_has_its_id(
    make_api_client, outlet, anna
):
    CustomerIdentityFactory(customer=anna, store=outlet, external_id="OUT-9")
    body = make_api_client(outlet).get(metrics_url("OUT-9")).json()
    assert body["store"]["orders_count"] == 1
    assert body["overall"]["favourite_category"] == {
        "external_id": "buty",
        "name": "Buty",
    }


def test_a_customer_who_objected_to_profiling_has_figures_but_no_scores(
    api, anna, purposes
):
    customer_object(customer=anna, to="profiling", actor=None)
    metrics_recompute()
    overall = api.get(metrics_url("C-1")).json()["overall"]
    assert overall["orders_count"] == 3
    assert overall["rfm"] is None
    assert overall["favourite_category"] is None
    assert overall["favourite_brand"] is None
    assert overall["predicted_next_order_on"] is None


def test_unknown_customers_are_404(api, anna):
    response = api.get(metrics_url("NOPE"))
    assert response.status_code == 404
    assert response.json()["status"] == 404
    assert api.get(segments_url("NOPE")).status_code == 404


def test_another_stores_customer_is_not_visible(make_api_client, outlet, anna):
    # C-1 is the main store's id: the outlet's key does not know it.
    outlet_api = make_api_client(outlet)
    assert outlet_api.get(metrics_url("C-1")).status_code == 404
    assert outlet_api.get(segments_url("C-1")).status_code == 404
    # The same id in the outlet is another customer, the one the outlet sees.
    other = CustomerFactory()
    CustomerIdentityFactory(customer=other, store=outlet, external_id="C-1")
    body = outlet_api.get(metrics_url("C-1")).json()
    assert body["overall"]["orders_count"] == 0
    assert not AccessLog.objects.filter(customer=anna).exists()


def test_reading_metrics_is_logged(api, anna):
    api.get(metrics_url("C-1"))
    entry = AccessLog.objects.get()
    assert (entry.customer, entry.action, entry.purpose) == (
        anna,
        "api_read",
        "metrics",
    )
    assert entry.api_key == ApiKey.objects.get()
    assert entry.user is None


def test_a_key_without_the_read_scope_is_refused(make_api_client, store, anna):
    writer = make_api_client(store, scopes=("write",))
    assert writer.get(metrics_url("C-1")).status_code == 403
    assert writer.get(segments_url("C-1")).status_code == 403
    reader = make_api_client(store, scopes=("read",))
    assert reader.get(metrics_url("C-1")).status_code == 200
    assert reader.get(segments_url("C-1")).status_code == 200


def test_metrics_take_a_fixed_number_of_queries(
    api, anna, django_assert_max_num_queries
):
    api.get(metrics_url("C-1"))  # the key's first use is recorded once
    with django_assert_max_num_queries(6):
        assert api.get(metrics_url("C-1")).status_code == 200


# --- GET /customers/{external_id}/segments/ ------------------------------------------


@pytest.fixture
def memberships(anna):
    repeat = segment_create(name="Powracający", rules=REPEAT_BUYERS)
    segment_rebuild(segment=repeat)
    vip = segment_create(name="Lista VIP", kind="static")
    segment_members_add(segment=vip, customers=[anna])
    switched_off = segment_create(name="Wyłączony", kind="static")
    segment_members_add(segment=switched_off, customers=[anna])
    segment_update(segment=switched_off, is_active=False)
    segment_create(name="Inny", kind="static")  # not hers
    return repeat, vip


def test_the_segments_a_customer_is_in(api, anna, memberships):
    repeat, vip = memberships
    response = api.get(segments_url("C-1"))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["external_id"] == "C-1"
    segments = body["segments"]
    assert [s["name"] for s in segments] == ["Lista VIP", "Powracający"]
    assert segments[0]["id"] == vip.pk
    assert segments[0]["kind"] == "static"
    assert segments[1] == {
        "id": repeat.pk,
        "name": "Powracający",
        "kind": "dynamic",
        "member_since": segments[1]["member_since"],
    }
    entered = repeat.memberships.get(customer=anna).entered_at
    assert segments[1]["member_since"] == timezone.localtime(entered).isoformat()


def test_a_customer_in_no_segment_gets_an_empty_list(api, anna):
    response = api.get(segments_url("C-1"))
    assert response.status_code == 200
    assert response.json() == {"external_id": "C-1", "segments": []}


def test_reading_segments_is_logged(api, anna, memberships):
    api.get(segments_url("C-1"))
    entry = AccessLog.objects.get()
    assert (entry.customer, entry.action, entry.purpose) == (
        anna,
        "api_read",
        "segments",
    )
    assert entry.api_key == ApiKey.objects.get()


def test_segments_take_a_fixed_number_of_queries(
    api, anna, memberships, django_assert_max_num_queries
):
    api.get(segments_url("C-1"))
    for index in range(5):
        segment = segment_create(name=f"Lista {index}", kind="static")
        segment_members_add(segment=segment, customers=[anna])
    with django_assert_max_num_queries(5):
        response = api.get(segments_url("C-1"))
    assert len(response.json()["segments"]) == 7
