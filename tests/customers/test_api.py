import pytest
from rest_framework.test import APIClient

from customers.models import ApiKey, Customer, IdempotencyRecord
from customers.services import api_key_revoke, customer_upsert
from tests.factories.customers import StoreFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/customers/"


def test_put_creates_then_updates_one_customer(api, store):
    body = {"email": "Ola@Example.PL", "phone": "601 234 567", "first_name": "Ola"}
    first = api.put(f"{URL}C-1/", body, format="json")
    assert first.status_code == 201, first.json()
    assert first.json()["external_id"] == "C-1"
    assert first.json()["email"] == "Ola@example.pl"
    assert first.json()["phone"] == "+48601234567"
    again = api.put(f"{URL}C-1/", {**body, "phone": "0048601234567"}, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Customer.objects.count() == 1


def test_bad_input_is_400_with_field_errors_and_writes_nothing(api):
    response = api.put(
        f"{URL}C-2/",
        {"email": "nope", "phone": "12", "birth_date": "1990-02-30", "shoe_size": 44},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400
    assert body["code"] == "invalid"
    assert set(body["errors"]) >= {"shoe_size", "birth_date"}
    assert body["errors"]["shoe_size"][0]["code"] == "unknown_field"
    response = api.put(f"{URL}C-2/", {"email": "nope", "phone": "12"}, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["email"][0]["code"] == "invalid_email"
    assert errors["phone"][0]["code"] == "invalid_phone"
    assert Customer.objects.count() == 0


def test_missing_wrong_and_revoked_keys_are_401(api, store):
    assert APIClient().get(URL).status_code == 401
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Api-Key kt_nope_nope")
    response = wrong.get(URL)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert APIClient().get(URL, {"api_key": api.raw_key}).status_code == 401
    api_key_revoke(api_key=ApiKey.objects.get())
    assert api.get(URL).status_code == 401


def test_read_only_key_cannot_write(make_api_client, store):
    reader = make_api_client(store, scopes=("read",))
    assert reader.get(URL).status_code == 200
    response = reader.put(f"{URL}C-3/", {"email": "a@example.pl"}, format="json")
    assert response.status_code == 403
    assert response.json()["status"] == 403
    assert Customer.objects.count() == 0


def test_other_stores_customers_are_404(api, store, make_api_client):
    other = StoreFactory(code="inny")
    customer_upsert(store=other, external_id="X", email="x@example.pl")
    assert api.get(f"{URL}X/").status_code == 404
    assert api.patch(f"{URL}X/", {"first_name": "Y"}, format="json").status_code == 404
    assert api.get(URL).json()["results"] == []
    other_api = make_api_client(other)
    assert other_api.get(f"{URL}X/").json()["email"] == "x@example.pl"


def test_list_filters_and_cursor(api, store):
    for n in range(5):
        customer_upsert(
            store=store,
            external_id=f"L{n}",
            email=f"l{n}@example.pl",
            tags=["VIP"] if n else [],
        )
    page = api.get(URL, {"page_size": 2}).json()
    assert len(page["results"]) == 2
    assert page["next"]
    assert api.get(page["next"]).json()["results"][0]["external_id"] == "L2"
    assert [
        c["external_id"]
        for c in api.get(URL, {"email": "L3@EXAMPLE.pl"}).json()["results"]
    ] == ["L3"]
    assert len(api.get(URL, {"tag": "vip"}).json()["results"]) == 4
    assert [
        c["external_id"] for c in api.get(URL, {"external_id": "L1"}).json()["results"]
    ] == ["L1"]


def test_patch_changes_some_fields(api, store):
    customer_upsert(
        store=store, external_id="P", email="p@example.pl", first_name="Piotr"
    )
    response = api.patch(f"{URL}P/", {"last_name": "Nowak"}, format="json")
    assert response.status_code == 200
    assert response.json()["first_name"] == "Piotr"
    assert response.json()["last_name"] == "Nowak"


def test_post_upserts_by_email_with_idempotency_key(api):
    body = {"email": "idem@example.pl", "first_name": "Iga"}
    first = api.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201
    replay = api.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"
    conflict = api.post(
        URL, {**body, "first_name": "Inna"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "conflict"
    assert Customer.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 1


def test_throttled_key_gets_429_with_retry_after(api):
    from django.core.cache import cache

    from customers.api.authentication import ApiKeyRateThrottle

    original = ApiKeyRateThrottle.THROTTLE_RATES
    ApiKeyRateThrottle.THROTTLE_RATES = {"api_key": "2/min"}
    try:
        cache.clear()
        statuses = [api.get(URL).status_code for _ in range(3)]
        response = api.get(URL)
    finally:
        ApiKeyRateThrottle.THROTTLE_RATES = original
    assert statuses[:2] == [200, 200]
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert response.json()["status"] == 429


def test_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
