"""Double opt-in: the emailed link, single use, expiry, the public page, purging."""

import datetime as dt
import re
import time
from unittest import mock

import pytest
from django.core import mail, signing
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from consents.double_opt_in import (
    RESEND_AFTER,
    double_opt_in_confirm,
    double_opt_in_purge,
    double_opt_in_start,
    double_opt_in_token,
)
from consents.models import ConsentEvent, ConsentState, DoubleOptIn
from consents.services import consent_allows, consent_text_publish, suppression_add
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db
LINK = re.compile(r"http://testserver/c/confirm/([^/\s\"]+)/")


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.PUBLIC_URL = "http://testserver"


def start(customer, store=None, **kwargs):
    kwargs.setdefault("purpose", "email_marketing")
    kwargs.setdefault("language", None)
    return double_opt_in_start(
        customer=customer,
        store=store,
        api_key=None,
        ip_address="83.12.44.123",
        user_agent="Shop form UA",
        evidence={"form": "footer"},
        **kwargs,
    )


@pytest.fixture
def signup(customer, store, purposes, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return start(customer, store)


def link_token(message) -> str:
    tokens = set(LINK.findall(message.body))
    html = message.alternatives[0][0]
    assert set(LINK.findall(html)) == tokens
    assert len(tokens) == 1
    return tokens.pop()


def expired_token(signup, days_ago: float) -> str:
    """A token signed ``days_ago``: TimestampSigner's clock, moved back."""
    signed_at = int(time.time() - days_ago * 86400)
    with mock.patch.object(
        signing.TimestampSigner,
        "timestamp",
        return_value=signing.b62_encode(signed_at),
    ):
        return double_opt_in_token(signup)


def page(token: str) -> str:
    return reverse("consents:double-opt-in-confirm", args=[token])


# --- Starting and the email ------------------------------------------------------


def test_start_sends_the_link_after_commit(
    customer, store, purposes, settings, django_capture_on_commit_callbacks
):
    settings.DEFAULT_FROM_EMAIL = "sklep@example.pl"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        signup = start(customer, store)
    assert mail.outbox == []  # not before the sign-up is committed
    assert signup.text.purpose == purposes["email_marketing"]
    assert signup.request_ip == "83.12.44.123"
    assert not ConsentEvent.objects.exists()
    for callback in callbacks:
        callback()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].from_email == "sklep@example.pl"
    assert store.name in mail.outbox[0].subject


def test_email_has_one_signed_single_link(signup, customer):
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [customer.email]
    assert message.alternatives[0][1] == "text/html"
    token = link_token(message)
    assert signing.TimestampSigner(salt="consents.double_opt_in.confirm").unsign(
        token
    ) == str(signup.pk)
    assert signup.text.text in message.body
    assert signup.text.language == "pl"


def test_english_customer_gets_an_english_email(
    store, purposes, django_capture_on_commit_callbacks
):
    consent_text_publish(
        purpose=purposes["email_marketing"],
        language="en",
        text="Send me the newsletter.",
    )
    customer = CustomerFactory(language="en")
    with django_capture_on_commit_callbacks(execute=True):
        signup = start(customer, store)
    assert signup.text.language == "en"
    message = mail.outbox[0]
    assert message.subject.startswith("Confirm your subscription")
    assert "Send me the newsletter." in message.body


def test_repeat_within_minutes_reuses_the_pending_sign_up(
    signup, customer, store, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        again = start(customer, store)
    assert again == signup
    assert len(mail.outbox) == 1
    DoubleOptIn.objects.filter(pk=signup.pk).update(
        requested_at=timezone.now() - RESEND_AFTER - dt.timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        later = start(customer, store)
    assert later != signup
    assert len(mail.outbox) == 2


def test_start_needs_an_email_and_a_live_customer(purposes, store):
    with pytest.raises(ValidationError) as error:
        start(CustomerFactory(email=None), store)
    assert error.value.error_dict["email"][0].code == "required"
    with pytest.raises(ValidationError) as error:
        start(CustomerFactory(erased_at=timezone.now()), store)
    assert error.value.error_dict["customer"][0].code == "erased"
    assert not DoubleOptIn.objects.exists()


# --- Confirming through the service ---------------------------------------------


def test_confirm_records_the_grant_once_with_the_confirming_request(signup, customer):
    token = link_token(mail.outbox[0])
    confirmed = double_opt_in_confirm(
        token=token, ip_address="91.1.2.3", user_agent="Phone mail app"
    )
    assert confirmed.confirmed_at is not None
    event = ConsentEvent.objects.get()
    assert confirmed.event == event
    assert event.action == "grant"
    assert event.source == "double_opt_in"
    assert event.text == signup.text
    assert event.store == signup.store
    assert event.ip_address == "91.1.2.3"
    assert event.user_agent == "Phone mail app"
    assert event.occurred_at == confirmed.confirmed_at
    assert event.evidence["double_opt_in_id"] == signup.pk
    assert event.evidence["request_ip"] == "83.12.44.123"
    assert event.evidence["requested_at"] == signup.requested_at.isoformat()
    assert event.evidence["request_evidence"] == {"form": "footer"}
    assert consent_allows(customer=customer, purpose="email_marketing")

    with pytest.raises(ValidationError) as error:
        double_opt_in_confirm(token=token, ip_address="91.1.2.3", user_agent="x")
    assert error.value.error_dict["token"][0].code == "used"
    assert ConsentEvent.objects.count() == 1


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),
        lambda token: "9" + token,
        lambda token: "not-a-token",
        lambda token: "",
    ],
)
def test_tampered_tokens_are_invalid(signup, tamper):
    token = tamper(link_token(mail.outbox[0]))
    with pytest.raises(ValidationError) as error:
        double_opt_in_confirm(token=token, ip_address=None, user_agent="")
    assert error.value.error_dict["token"][0].code == "invalid"
    assert not ConsentEvent.objects.exists()


def test_a_token_of_another_salt_is_invalid(signup):
    forged = signing.TimestampSigner().sign(str(signup.pk))  # SECRET_KEY, no salt
    with pytest.raises(ValidationError) as error:
        double_opt_in_confirm(token=forged, ip_address=None, user_agent="")
    assert error.value.error_dict["token"][0].code == "invalid"


def test_a_token_of_a_deleted_sign_up_is_invalid(signup):
    token = double_opt_in_token(signup)
    DoubleOptIn.objects.all().delete()
    with pytest.raises(ValidationError) as error:
        double_opt_in_confirm(token=token, ip_address=None, user_agent="")
    assert error.value.error_dict["token"][0].code == "invalid"


def test_expired_token_is_refused(signup, settings):
    settings.DOUBLE_OPT_IN_LINK_DAYS = 7
    fresh_enough = expired_token(signup, days_ago=6.9)
    stale = expired_token(signup, days_ago=7.1)
    with pytest.raises(ValidationError) as error:
        double_opt_in_confirm(token=stale, ip_address=None, user_agent="")
    assert error.value.error_dict["token"][0].code == "expired"
    assert not ConsentEvent.objects.exists()
    double_opt_in_confirm(token=fresh_enough, ip_address=None, user_agent="")
    assert ConsentEvent.objects.count() == 1


def test_suppressed_contact_consents_again_by_confirming(
    customer, store, purposes, django_capture_on_commit_callbacks
):
    suppression_add(email=customer.email)
    with django_capture_on_commit_callbacks(execute=True):
        start(customer, store)
    double_opt_in_confirm(
        token=link_token(mail.outbox[0]), ip_address="91.1.2.3", user_agent="UA"
    )
    assert consent_allows(customer=customer, purpose="email_marketing")


# --- The public page ---------------------------------------------------------------


def test_get_shows_a_button_and_changes_nothing(signup):
    token = link_token(mail.outbox[0])
    for _ in range(3):  # a mail scanner, a link preview, the person
        response = Client().get(page(token))
        assert response.status_code == 200
        assert b'method="post"' in response.content
        assert signup.text.text.encode() in response.content
    assert not ConsentEvent.objects.exists()
    assert not ConsentState.objects.exists()
    signup.refresh_from_db()
    assert signup.confirmed_at is None


def test_post_confirms_once(signup):
    token = link_token(mail.outbox[0])
    # enforce_csrf_checks: the page must work without a CSRF cookie.
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        page(token), REMOTE_ADDR="91.1.2.3", HTTP_USER_AGENT="Phone mail app"
    )
    assert response.status_code == 200
    assert "done.html" in [t.name.rsplit("/", 1)[-1] for t in response.templates]
    assert response.context["already"] is False
    event = ConsentEvent.objects.get()
    assert (event.ip_address, event.user_agent) == ("91.1.2.3", "Phone mail app")

    again = client.post(page(token), REMOTE_ADDR="91.1.2.3")
    assert again.status_code == 200
    assert again.context["already"] is True
    assert ConsentEvent.objects.count() == 1
    # Opening the used link again says so too.
    assert Client().get(page(token)).context["already"] is True


def test_page_refuses_tampered_and_expired_links(signup, settings):
    token = link_token(mail.outbox[0])
    tampered = token[:-2] + ("xx" if not token.endswith("xx") else "yy")
    for method in ("get", "post"):
        response = getattr(Client(), method)(page(tampered))
        assert response.status_code == 400
        assert response.context["code"] == "invalid"
        assert "refused.html" in response.templates[0].name
    settings.DOUBLE_OPT_IN_LINK_DAYS = 7
    stale = expired_token(signup, days_ago=8)
    for method in ("get", "post"):
        response = getattr(Client(), method)(page(stale))
        assert response.status_code == 400
        assert response.context["code"] == "expired"
    assert not ConsentEvent.objects.exists()


def test_page_speaks_the_sign_ups_language(
    store, purposes, django_capture_on_commit_callbacks
):
    consent_text_publish(
        purpose=purposes["email_marketing"], language="en", text="Newsletter, please."
    )
    with django_capture_on_commit_callbacks(execute=True):
        start(CustomerFactory(language="en"), store)
    response = Client().get(page(link_token(mail.outbox[0])))
    assert response.headers["Content-Language"] == "en"
    assert b"Confirm your subscription" in response.content


# --- Purging -----------------------------------------------------------------------


def test_purge_deletes_only_old_unconfirmed_sign_ups(purposes, store, settings):
    settings.RETENTION = {**settings.RETENTION, "unconfirmed_signup_days": 30}
    now = timezone.now()
    old_pending = start(CustomerFactory(), store)
    recent_pending = start(CustomerFactory(), store)
    old_confirmed = start(CustomerFactory(), store)
    double_opt_in_confirm(
        token=double_opt_in_token(old_confirmed), ip_address=None, user_agent=""
    )
    DoubleOptIn.objects.filter(pk__in=[old_pending.pk, old_confirmed.pk]).update(
        requested_at=now - dt.timedelta(days=31)
    )
    DoubleOptIn.objects.filter(pk=recent_pending.pk).update(
        requested_at=now - dt.timedelta(days=29)
    )
    assert double_opt_in_purge(dry_run=True) == 1
    assert DoubleOptIn.objects.count() == 3
    assert double_opt_in_purge() == 1
    assert set(DoubleOptIn.objects.values_list("pk", flat=True)) == {
        recent_pending.pk,
        old_confirmed.pk,
    }
    assert double_opt_in_purge(older_than=dt.timedelta(days=1)) == 1
    assert list(DoubleOptIn.objects.values_list("pk", flat=True)) == [old_confirmed.pk]
    assert double_opt_in_purge() == 0
