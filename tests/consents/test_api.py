"""The consents API: grants and withdrawals with evidence, state, history, sign-ups."""

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from consents.models import AccessLog, ConsentEvent, DoubleOptIn
from consents.services import (
    consent_allows,
    consent_record,
    consent_text_current,
    consent_text_publish,
    suppression_add,
)
from customers.models import ApiKey, Customer
from customers.services import customer_upsert
from tests.factories.customers import StoreFactory

pytestmark = pytest.mark.django_db
NEWSLETTER = "/api/v1/newsletter/"


def url(external_id="C-1"):
    return f"/api/v1/customers/{external_id}/consents/"


@pytest.fixture
def shopper(store, purposes):
    customer, _ = customer_upsert(
        store=store, external_id="C-1", email="anna@example.pl", first_name="Anna"
    )
    return customer


def grant_body(**changes):
    body = {
        "purpose": "email_marketing",
        "action": "grant",
        "text_version": 1,
        "language": "pl",
        "occurred_at": "2026-01-15T12:30:00+01:00",
        "source": "checkout_form",
        "ip": "83.12.44.123",
        "user_agent": "Mozilla/5.0",
        "evidence": {"form": "checkout", "order": "1001"},
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}


# --- POST /customers/{id}/consents/ --------------------------------------------


def test_grant_is_recorded_with_its_evidence(api, store, shopper):
    response = api.post(url(), grant_body(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["purpose"] == "email_marketing"
    assert body["action"] == "grant"
    assert body["text_version"] == 1
    assert body["language"] == "pl"
    assert body["source"] == "checkout_form"
    assert body["store"] == "sklep"
    assert "api_key" not in body
    assert "evidence" not in body
    event = ConsentEvent.objects.get()
    assert event.api_key == ApiKey.objects.get()
    assert event.store == store
    assert event.ip_address == "83.12.44.123"
    assert event.user_agent == "Mozilla/5.0"
    assert event.evidence == {"form": "checkout", "order": "1001"}
    assert event.occurred_at == dt.datetime(2026, 1, 15, 11, 30, tzinfo=dt.UTC)
    assert consent_allows(customer=shopper, purpose="email_marketing")


def test_repeat_is_200_and_adds_no_row(api, shopper):
    first = api.post(url(), grant_body(), format="json")
    again = api.post(url(), grant_body(), format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert ConsentEvent.objects.count() == 1


def test_idempotency_key_replays_the_first_answer(api, shopper):
    headers = {"Idempotency-Key": "consent-1"}
    first = api.post(url(), grant_body(), format="json", headers=headers)
    again = api.post(url(), grant_body(), format="json", headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert ConsentEvent.objects.count() == 1


def test_withdrawal_needs_no_text_and_wins(api, shopper):
    api.post(url(), grant_body(), format="json")
    response = api.post(
        url(),
        grant_body(
            action="withdraw",
            text_version=...,
            language=...,
            occurred_at="2026-01-16T08:00:00+01:00",
            source="account_form",
        ),
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["text_version"] is None
    assert not consent_allows(customer=shopper, purpose="email_marketing")


def test_grant_without_text_version_is_a_field_error(api, shopper):
    for body in (grant_body(text_version=...), grant_body(text_version=None)):
        response = api.post(url(), body, format="json")
        assert response.status_code == 400
        assert response.json()["errors"]["text_version"][0]["code"] == "required"
    assert not ConsentEvent.objects.exists()


def test_bad_input_is_400_with_every_field(api, shopper):
    response = api.post(
        url(),
        grant_body(
            purpose="telepathy",
            action="maybe",
            occurred_at="yesterday",
            source="staff",
            ip="not-an-ip",
            evidence=["not", "an", "object"],
            marketing=True,
        ),
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400
    assert body["code"] == "invalid"
    errors = body["errors"]
    assert set(errors) == {
        "purpose",
        "action",
        "occurred_at",
        "source",
        "ip",
        "evidence",
        "marketing",
    }
    assert errors["marketing"][0]["code"] == "unknown_field"
    assert errors["source"][0]["code"] == "invalid_choice"
    assert not ConsentEvent.objects.exists()


def test_unknown_text_version_and_future_time_are_field_errors(api, shopper):
    response = api.post(url(), grant_body(text_version=99), format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["text_version"][0]["code"] == "unknown_text"
    future = (timezone.now() + dt.timedelta(days=1)).isoformat()
    response = api.post(url(), grant_body(occurred_at=future), format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["occurred_at"][0]["code"] == "out_of_range"
    assert not ConsentEvent.objects.exists()


def test_evidence_with_null_characters_is_refused(api, shopper):
    response = api.post(url(), grant_body(evidence={"a": "x\x00y"}), format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["evidence"][0]["code"] == "null_characters"


def test_suppressed_contact_cannot_be_granted_by_the_shop(api, shopper):
    suppression_add(email="anna@example.pl")
    response = api.post(url(), grant_body(), format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["customer"][0]["code"] == "suppressed"


def test_missing_and_wrong_keys_are_401(shopper):
    assert APIClient().get(url()).status_code == 401
    assert APIClient().post(url(), grant_body(), format="json").status_code == 401
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Api-Key kt_nope_nope")
    assert wrong.get(url()).status_code == 401
    assert wrong.post(NEWSLETTER, {}, format="json").status_code == 401
    assert not ConsentEvent.objects.exists()


def test_read_only_key_cannot_write(make_api_client, store, shopper):
    reader = make_api_client(store, scopes=("read",))
    assert reader.get(url()).status_code == 200
    response = reader.post(url(), grant_body(), format="json")
    assert response.status_code == 403
    assert response.json()["status"] == 403
    response = reader.post(
        NEWSLETTER,
        {"email": "x@example.pl", "ip": None, "user_agent": ""},
        format="json",
    )
    assert response.status_code == 403
    assert not ConsentEvent.objects.exists()
    assert not DoubleOptIn.objects.exists()


def test_other_stores_customers_are_404(api, store, purposes, make_api_client):
    other = StoreFactory(code="inny")
    customer_upsert(store=other, external_id="X", email="x@example.pl")
    assert api.get(url("X")).status_code == 404
    response = api.post(url("X"), grant_body(), format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert not ConsentEvent.objects.exists()
    assert make_api_client(other).get(url("X")).status_code == 200


def test_erased_customers_are_404(api, shopper):
    Customer.objects.filter(pk=shopper.pk).update(erased_at=timezone.now())
    assert api.get(url()).status_code == 404
    assert api.post(url(), grant_body(), format="json").status_code == 404
    assert not ConsentEvent.objects.exists()


# --- GET /customers/{id}/consents/ ---------------------------------------------


def test_state_and_history(api, store, shopper, purposes, make_api_client):
    other = StoreFactory(code="inny")
    other_api = make_api_client(other)
    customer_upsert(store=other, external_id="O-1", email="anna@example.pl")
    api.post(url(), grant_body(), format="json")
    api.post(
        url(), grant_body(purpose="sms_marketing", source="account_form"), format="json"
    )
    # The other store withdraws SMS later, through its own key.
    other_api.post(
        url("O-1"),
        grant_body(
            purpose="sms_marketing",
            action="withdraw",
            text_version=...,
            occurred_at="2026-02-01T10:00:00+01:00",
            source="api",
        ),
        format="json",
    )
    response = api.get(url())
    assert response.status_code == 200
    body = response.json()
    assert body["external_id"] == "C-1"
    consents = {row["purpose"]: row for row in body["consents"]}
    assert set(consents) == {code for code, p in purposes.items() if p.is_active}
    assert consents["email_marketing"]["granted"] is True
    assert consents["email_marketing"]["text_version"] == 1
    assert consents["email_marketing"]["language"] == "pl"
    assert consents["email_marketing"]["changed_at"].startswith("2026-01-15T12:30")
    assert consents["sms_marketing"]["granted"] is False
    assert consents["sms_marketing"]["changed_at"].startswith("2026-02-01T10:00")
    assert consents["profiling"] == {
        "purpose": "profiling",
        "granted": False,
        "changed_at": None,
        "text_version": None,
        "language": None,
    }
    history = body["history"]
    assert [(e["purpose"], e["action"], e["store"]) for e in history] == [
        ("sms_marketing", "withdraw", "inny"),
        ("sms_marketing", "grant", "sklep"),
        ("email_marketing", "grant", "sklep"),
    ]  # the two grants share a time: the later recorded comes first
    assert history[0]["source"] == "api"
    assert all("api_key" not in e and "evidence" not in e for e in history)
    # Reading a customer's consents is an access to their personal data.
    log = AccessLog.objects.get(customer=shopper, api_key__store=store)
    assert log.action == "api_read"


def test_history_is_newest_first_and_queries_stay_flat(
    api, shopper, purposes, django_assert_max_num_queries
):
    text = consent_text_current(purpose=purposes["email_marketing"], language="pl")
    start = timezone.now() - dt.timedelta(days=30)
    for day in range(10):
        consent_record(
            customer=shopper,
            purpose="email_marketing",
            action="grant" if day % 2 == 0 else "withdraw",
            source="newsletter_form",
            text=text,
            occurred_at=start + dt.timedelta(days=day),
        )
    with django_assert_max_num_queries(8):
        response = api.get(url())
    history = response.json()["history"]
    assert len(history) == 10
    times = [e["occurred_at"] for e in history]
    assert times == sorted(times, reverse=True)
    assert history[0]["action"] == "withdraw"


def test_english_text_version(api, shopper, purposes):
    consent_text_publish(
        purpose=purposes["email_marketing"],
        language="en",
        text="I want the newsletter, version two.",
    )
    response = api.post(url(), grant_body(text_version=2, language="en"), format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["text_version"], response.json()["language"]) == (2, "en")


# --- POST /newsletter/ -----------------------------------------------------------


def newsletter_body(**changes):
    body = {
        "email": "Ola@Example.PL",
        "first_name": "Ola",
        "language": "pl",
        "ip": "83.12.44.123",
        "user_agent": "Mozilla/5.0",
        "evidence": {"form": "footer"},
    }
    body.update(changes)
    return body


def test_newsletter_sign_up_starts_double_opt_in(
    api, store, purposes, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(NEWSLETTER, newsletter_body(), format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "pending"
    assert body["purpose"] == "email_marketing"
    signup = DoubleOptIn.objects.get(pk=body["id"])
    assert signup.customer.email == "Ola@example.pl"  # domain lower-cased
    assert signup.customer.first_name == "Ola"
    assert signup.store == store
    assert signup.api_key == ApiKey.objects.get()
    assert signup.request_ip == "83.12.44.123"
    assert signup.evidence == {"form": "footer"}
    assert signup.confirmed_at is None
    # Nothing is granted until the person confirms.
    assert not ConsentEvent.objects.exists()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["Ola@example.pl"]
    assert "/c/confirm/" in mail.outbox[0].body


def test_newsletter_with_external_id_links_the_customer(
    api, store, purposes, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            NEWSLETTER, newsletter_body(external_id="C-9"), format="json"
        )
    assert response.status_code == 202
    assert api.get(url("C-9")).status_code == 200


def test_newsletter_already_granted_is_200_and_sends_nothing(
    api, shopper, django_capture_on_commit_callbacks
):
    api.post(url(), grant_body(), format="json")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            NEWSLETTER, newsletter_body(email="anna@example.pl"), format="json"
        )
    assert response.status_code == 200
    assert response.json() == {
        "id": None,
        "status": "already_confirmed",
        "purpose": "email_marketing",
        "requested_at": None,
    }
    assert not DoubleOptIn.objects.exists()
    assert mail.outbox == []


def test_newsletter_bad_input(api, purposes):
    response = api.post(
        NEWSLETTER,
        {"email": "nope", "ip": "x", "purpose": "telepathy", "marketing": True},
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"ip", "purpose", "marketing"}
    response = api.post(NEWSLETTER, newsletter_body(email="nope"), format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["email"][0]["code"] == "invalid_email"
    assert not Customer.objects.exists()
    assert not DoubleOptIn.objects.exists()


def test_suppressed_contact_may_sign_up(
    api, purposes, django_capture_on_commit_callbacks
):
    suppression_add(email="ola@example.pl")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(NEWSLETTER, newsletter_body(), format="json")
    assert response.status_code == 202
    assert len(mail.outbox) == 1


def test_newsletter_idempotency_key(api, purposes, django_capture_on_commit_callbacks):
    headers = {"Idempotency-Key": "signup-1"}
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(NEWSLETTER, newsletter_body(), format="json", headers=headers)
        again = api.post(NEWSLETTER, newsletter_body(), format="json", headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert DoubleOptIn.objects.count() == 1
    assert len(mail.outbox) == 1


def test_newsletter_ip_and_user_agent_are_optional(api, purposes):
    response = api.post(NEWSLETTER, {"email": "bez-ip@example.pl"}, format="json")
    assert response.status_code == 202, response.content
    signup = DoubleOptIn.objects.get()
    assert signup.request_ip is None
    assert signup.request_user_agent == ""
