import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from customers.api.serializers import EventInputSerializer
from customers.models import Customer, Event, Visitor
from customers.services import (
    EVENT_FIELDS,
    customer_upsert,
    event_ingest,
    visitor_identify,
)
from orders.models import Cart
from tests.factories.customers import StoreFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/events/"


def _event(n: int, **fields) -> dict:
    return {
        "kind": "page_view",
        "occurred_at": f"2026-03-01T12:{n % 60:02d}:00+01:00",
        "anonymous_id": "v-1",
        "external_id": f"ev-{n}",
        **fields,
    }


def _post(api, events, **extra):
    return api.post(URL, {"events": events}, format="json", **extra)


def test_batch_is_stored_with_truncated_ips_and_last_seen(api, store):
    customer, _ = customer_upsert(store=store, external_id="C-1", email="a@example.pl")
    response = _post(
        api,
        [
            _event(
                1,
                customer="C-1",
                kind="product_view",
                product_sku="KUB-01",
                url="https://sklep.example.pl/p/kubek",
                utm_source="newsletter",
                device="mobile",
                os="Android",
                browser="Chrome",
                ip="83.12.44.123",
            ),
            _event(
                2,
                customer="C-1",
                kind="search",
                keyword="kubek zielony",
                device="desktop",
                os="Windows",
                browser="Firefox",
                ip="2001:db8:85a3:8d3:1319:8a2e:370:7348",
            ),
            _event(3, anonymous_id="v-2", ip="::ffff:10.1.2.3"),
        ],
    )
    assert response.status_code == 202, response.json()
    assert response.json() == {"accepted": 3, "duplicates": 0}
    events = {event.external_id: event for event in Event.objects.all()}
    assert events["ev-1"].ip_network == "83.12.44.0"
    assert events["ev-2"].ip_network == "2001:db8:85a3::"
    assert events["ev-3"].ip_network == "10.1.2.0"
    assert events["ev-1"].customer == customer
    assert events["ev-1"].product_sku == "KUB-01"
    assert events["ev-2"].keyword == "kubek zielony"
    assert events["ev-3"].customer is None
    assert events["ev-1"].store == store
    customer.refresh_from_db()
    assert customer.last_seen_at == dt.datetime.fromisoformat(
        "2026-03-01T12:02:00+01:00"
    )
    assert (customer.last_device, customer.last_os, customer.last_browser) == (
        "desktop",
        "Windows",
        "Firefox",
    )
    visitor = Visitor.objects.get(anonymous_id="v-1")
    assert visitor.customer == customer
    assert visitor.first_seen_at < visitor.last_seen_at
    # An older event later changes neither the time nor the device.
    response = _post(api, [_event(0, customer="C-1", device="tablet")])
    assert response.status_code == 202
    customer.refresh_from_db()
    assert customer.last_device == "desktop"


def test_retried_batch_stores_nothing_twice(api, store):
    batch = [_event(n) for n in range(5)] + [_event(9, external_id="")]
    assert _post(api, batch).json() == {"accepted": 6, "duplicates": 0}
    again = _post(api, batch)
    assert again.status_code == 202
    # Events without an external id cannot be recognised, so they are stored again.
    assert again.json() == {"accepted": 1, "duplicates": 5}
    assert Event.objects.count() == 7
    assert _post(api, [_event(20), _event(20)]).json() == {
        "accepted": 1,
        "duplicates": 1,
    }


def test_more_than_1000_events_is_413_before_validation(api):
    response = _post(api, [{"kind": "nope"}] * 1001)
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert Event.objects.count() == 0
    assert _post(api, [_event(n) for n in range(1000)]).status_code == 202


def test_bad_item_is_400_with_dotted_keys_and_writes_nothing(api, store):
    customer_upsert(store=store, external_id="C-1", email="a@example.pl")
    response = _post(
        api,
        [
            _event(0, customer="C-1"),
            _event(1, kind="purchase"),
            _event(2, occurred_at="yesterday", ip="300.1.1.1"),
            _event(3, customer="C-404"),
            _event(4, anonymous_id=None),
            _event(5, url="x" * 2001, device=7),
        ],
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["events.1.kind"][0]["code"] == "invalid_choice"
    assert errors["events.2.occurred_at"][0]["code"] == "invalid_datetime"
    assert errors["events.2.ip"][0]["code"] == "invalid_ip"
    assert errors["events.4.customer"][0]["code"] == "required"
    assert errors["events.5.url"][0]["code"] == "too_long"
    assert errors["events.5.device"][0]["code"] == "invalid"
    assert "events.0.kind" not in errors
    response = _post(api, [_event(0), "not an object"])
    assert response.json()["errors"]["events.1"][0]["code"] == "invalid"
    # The customer ids are looked up once every item is well-formed.
    response = _post(api, [_event(0, customer="C-1"), _event(3, customer="C-404")])
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "events.1.customer": [
            {
                "code": "unknown_customer",
                "message": response.json()["errors"]["events.1.customer"][0]["message"],
            }
        ]
    }
    assert Event.objects.count() == 0
    assert Visitor.objects.count() == 0
    assert Customer.objects.get().last_seen_at is None


def test_unknown_fields_are_400(api):
    response = _post(api, [_event(0, colour="green")])
    assert response.status_code == 400
    assert response.json()["errors"]["events.0.colour"][0]["code"] == "unknown_field"
    response = api.post(URL, {"events": [_event(0)], "extra": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["extra"][0]["code"] == "unknown_field"
    response = api.post(URL, {"events": "many"}, format="json")
    assert response.status_code == 400
    assert "events" in response.json()["errors"]
    assert Event.objects.count() == 0


def test_far_future_event_is_refused(api):
    future = (timezone.now() + dt.timedelta(days=2)).isoformat()
    response = _post(api, [_event(0, occurred_at=future)])
    assert response.status_code == 400
    assert response.json()["errors"]["events.0.occurred_at"][0]["code"] == (
        "out_of_range"
    )


def test_read_only_key_is_403_and_missing_key_401(make_api_client, store):
    reader = make_api_client(store, scopes=("read",))
    response = _post(reader, [_event(0)])
    assert response.status_code == 403
    assert response.json()["status"] == 403
    assert _post(APIClient(), [_event(0)]).status_code == 401
    assert Event.objects.count() == 0


def test_another_stores_customer_id_is_unknown(api, store):
    other = StoreFactory(code="inny")
    customer_upsert(store=other, external_id="X-1", email="x@example.pl")
    response = _post(api, [_event(0, customer="X-1")])
    assert response.status_code == 400
    assert response.json()["errors"]["events.0.customer"][0]["code"] == (
        "unknown_customer"
    )
    assert Event.objects.count() == 0


def test_identifying_attaches_earlier_and_later_anonymous_events(api, store):
    customer, _ = customer_upsert(store=store, external_id="C-1", email="a@example.pl")
    other_store = StoreFactory(code="inny")
    # The same anonymous id in another store is another visitor.
    event_ingest(store=other_store, events=[_event(100, external_id="o-1")])
    cart = Cart.objects.create(
        store=store,
        external_id="cart-1",
        anonymous_id="v-1",
        updated_at=timezone.now(),
    )
    assert _post(api, [_event(1), _event(2)]).json()["accepted"] == 2
    assert Event.objects.filter(customer__isnull=True).count() == 3
    # Logging in: one event carries both ids.
    response = _post(api, [_event(3, customer="C-1"), _event(4)])
    assert response.json() == {"accepted": 2, "duplicates": 0}
    mine = Event.objects.filter(store=store)
    assert set(mine.values_list("customer_id", flat=True)) == {customer.pk}
    assert Event.objects.get(store=other_store).customer is None
    cart.refresh_from_db()
    assert cart.customer == customer
    visitor = Visitor.objects.get(store=store, anonymous_id="v-1")
    assert visitor.customer == customer
    assert visitor.identified_at is not None
    # Later anonymous events of the known visitor join the customer on arrival.
    assert _post(api, [_event(5)]).json()["accepted"] == 1
    assert Event.objects.get(external_id="ev-5").customer == customer
    customer.refresh_from_db()
    assert customer.last_seen_at == dt.datetime.fromisoformat(
        "2026-03-01T12:05:00+01:00"
    )


def test_visitor_identify_service(store):
    customer, _ = customer_upsert(store=store, external_id="C-1", email="a@example.pl")
    event_ingest(store=store, events=[_event(1, anonymous_id="v-9")])
    visitor = visitor_identify(store=store, anonymous_id="v-9", customer=customer)
    assert visitor.customer == customer
    assert Event.objects.get().customer == customer
    # A visitor never seen before is recorded too.
    visitor = visitor_identify(store=store, anonymous_id="v-new", customer=customer)
    assert visitor.first_seen_at == visitor.last_seen_at


def test_documented_event_fields_are_the_accepted_ones():
    assert set(EventInputSerializer().fields) == EVENT_FIELDS


def test_schema_generates_without_warnings():
    call_command("spectacular", validate=True, fail_on_warn=True, stdout=io.StringIO())
