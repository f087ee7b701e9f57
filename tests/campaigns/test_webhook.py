"""The mail provider's bounce and complaint webhook: signed, all or nothing."""

import datetime as dt
import hashlib
import hmac
import json

import pytest
from django.test import override_settings
from django.utils import timezone

from campaigns.models import Delivery, DeliveryEvent
from campaigns.tracking import email_events_record
from consents.models import ConsentEvent, ConsentPurpose, ConsentState, Suppression
from consents.services import (
    consent_grant,
    consent_text_current,
    is_suppressed,
    suppression_add,
    suppression_hash,
)
from segments.models import Segment
from tests.factories.campaigns import (
    CampaignFactory,
    DeliveryFactory,
    SmsTemplateFactory,
)
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db

SECRET = "whsec-test-5f1c2a"
URL = "/t/webhooks/email-events/"


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.EMAIL_WEBHOOK_SECRET = SECRET


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(client, payload, *, signature=None, raw=None):
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {}
    if signature is not False:
        headers["HTTP_X_KARTOTEKA_SIGNATURE"] = signature or sign(body)
    return client.post(URL, body, content_type="application/json", **headers)


def grant(customer, purpose="email_marketing"):
    text = consent_text_current(
        purpose=ConsentPurpose.objects.get(code=purpose), language=customer.language
    )
    consent_grant(
        customer=customer, purpose=purpose, text=text, source="newsletter_form"
    )


def granted(customer, purpose="email_marketing"):
    return ConsentState.objects.get(customer=customer, purpose__code=purpose).granted


@pytest.fixture
def segment(db):
    return Segment.objects.create(name="Wszyscy", kind=Segment.Kind.STATIC)


@pytest.fixture
def anna(purposes):
    customer = CustomerFactory(email="Anna.Nowak@example.pl")
    grant(customer)
    grant(customer, "sms_marketing")
    return customer


@pytest.fixture
def sent(anna, segment):
    """A message Anna received."""
    return DeliveryFactory(
        campaign=CampaignFactory(segment=segment),
        customer=anna,
        status=Delivery.Status.SENT,
        sent_at=timezone.now() - dt.timedelta(hours=1),
        message_id="<kartoteka.77@sklep.pl>",
    )


@pytest.fixture
def waiting(anna, segment):
    """Anna's messages not sent yet: an email and an SMS."""
    return {
        "email": DeliveryFactory(
            campaign=CampaignFactory(segment=segment), customer=anna
        ),
        "sms": DeliveryFactory(
            campaign=CampaignFactory(segment=segment, template=SmsTemplateFactory()),
            customer=anna,
            channel="sms",
        ),
    }


def bounce(email="anna.nowak@EXAMPLE.pl", **changes):
    return {
        "type": "bounce",
        "email": email,
        "bounce_type": "hard",
        "message_id": "kartoteka.77@sklep.pl",
        **changes,
    }


def complaint(email="anna.nowak@example.pl", **changes):
    return {
        "type": "complaint",
        "email": email,
        "message_id": "<kartoteka.77@sklep.pl>",
        **changes,
    }


# --- Signature and switch ---------------------------------------------------------


def test_unset_secret_turns_the_webhook_off(client, sent):
    with override_settings(EMAIL_WEBHOOK_SECRET=""):
        response = post(client, {"events": [bounce()]}, signature=sign(b"", ""))
    assert response.status_code == 404
    assert not is_suppressed(email=sent.customer.email)


@pytest.mark.parametrize(
    "signature",
    [
        False,  # no header
        "sha256=",
        "sha256=zz",
        "md5=" + "0" * 32,
        "sha256=" + "0" * 64,
        "sha256=ąę" + "0" * 62,  # not ASCII
        "signed by another secret",
    ],
)
def test_a_bad_signature_is_forbidden(client, sent, signature):
    body = json.dumps({"events": [bounce()]}).encode()
    if signature == "signed by another secret":
        signature = sign(body, "not-the-secret")
    response = post(client, None, raw=body, signature=signature)
    assert response.status_code == 403
    assert not is_suppressed(email=sent.customer.email)
    assert not DeliveryEvent.objects.exists()


def test_the_signature_covers_the_body(client, sent):
    body = json.dumps({"events": [bounce(bounce_type="soft")]}).encode()
    other = json.dumps({"events": [bounce()]}).encode()
    response = post(client, None, raw=other, signature=sign(body))
    assert response.status_code == 403
    assert not is_suppressed(email=sent.customer.email)


def test_only_post(client):
    assert client.get(URL).status_code == 405


# --- Validation -------------------------------------------------------------------


def test_invalid_events_are_listed_and_nothing_is_written(client, sent, waiting):
    response = post(
        client,
        {
            "events": [
                bounce(),
                complaint(),
                {"type": "delivered", "email": "nie-email"},
                {k: v for k, v in bounce().items() if k != "bounce_type"},
                bounce(at="2999-01-01T00:00:00Z"),
            ]
        },
    )
    assert response.status_code == 400
    # Keyed by the events' positions, the valid ones left out.
    errors = response.json()["events"]
    assert set(errors) == {"2", "3", "4"}
    assert set(errors["2"]) == {"type", "email"}
    assert set(errors["3"]) == {"bounce_type"}
    assert set(errors["4"]) == {"at"}
    assert not Suppression.objects.exists()
    assert not DeliveryEvent.objects.exists()
    assert granted(sent.customer)
    assert Delivery.objects.filter(status="pending").count() == 2


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[]", b'{"events": {}}', b"{}", b"\xff\xfe"]
)
def test_a_malformed_body_is_refused(client, raw):
    response = post(client, None, raw=raw)
    assert response.status_code == 400


def test_at_most_1000_events(client, sent):
    response = post(client, {"events": [bounce(bounce_type="soft")] * 1001})
    assert response.status_code == 400
    assert "events" in response.json()
    assert not DeliveryEvent.objects.exists()
    ok = post(client, {"events": [bounce(bounce_type="soft")] * 1000})
    assert ok.status_code == 200
    assert ok.json()["received"] == 1000
    # One bounce event per message, however often it is reported.
    assert DeliveryEvent.objects.filter(delivery=sent, kind="bounce").count() == 1


# --- Effects ----------------------------------------------------------------------


def test_a_hard_bounce_suppresses_the_address_and_skips_waiting_emails(
    client, sent, waiting
):
    at = timezone.now() - dt.timedelta(minutes=3)
    response = post(client, {"events": [bounce(at=at.isoformat())]})
    assert response.status_code == 200
    assert response.json() == {
        "received": 1,
        "bounces": 1,
        "complaints": 0,
        "delivery_events": 1,
        "unmatched": 0,
        "deliveries_skipped": 1,
        "consents_withdrawn": 0,
    }
    assert is_suppressed(email="Anna.Nowak@example.pl")
    assert Suppression.objects.get().reason == "bounce"
    (event,) = DeliveryEvent.objects.all()
    assert (event.delivery, event.kind, event.at) == (sent, "bounce", at)
    waiting["email"].refresh_from_db()
    assert waiting["email"].status == Delivery.Status.SKIPPED
    assert waiting["email"].reason == Delivery.Reason.SUPPRESSED
    # An email bounce says nothing about the phone, nor about the consent.
    waiting["sms"].refresh_from_db()
    assert waiting["sms"].status == Delivery.Status.PENDING
    sent.refresh_from_db()
    assert sent.status == Delivery.Status.SENT
    assert granted(sent.customer)


def test_a_soft_bounce_is_only_recorded(client, sent, waiting):
    response = post(client, {"events": [bounce(bounce_type="soft")]})
    assert response.status_code == 200
    assert response.json()["delivery_events"] == 1
    assert response.json()["deliveries_skipped"] == 0
    assert DeliveryEvent.objects.get().kind == "bounce"
    assert not is_suppressed(email=sent.customer.email)
    assert Delivery.objects.filter(status="pending").count() == 2


def test_a_complaint_suppresses_skips_and_withdraws_the_email_consent(
    client, sent, waiting
):
    response = post(client, {"events": [complaint()]})
    assert response.status_code == 200
    assert response.json()["complaints"] == 1
    assert response.json()["consents_withdrawn"] == 1
    assert is_suppressed(email=sent.customer.email)
    assert Suppression.objects.get().reason == "complaint"
    assert DeliveryEvent.objects.get().kind == "complaint"
    assert not granted(sent.customer)
    assert granted(sent.customer, "sms_marketing")
    withdrawal = ConsentEvent.objects.filter(customer=sent.customer).latest("id")
    assert withdrawal.action == "withdraw"
    assert withdrawal.purpose.code == "email_marketing"
    assert withdrawal.evidence == {
        "complaint": True,
        "message_id": "<kartoteka.77@sklep.pl>",
    }
    waiting["email"].refresh_from_db()
    assert waiting["email"].reason == Delivery.Reason.SUPPRESSED


def test_repeats_change_nothing_more(client, sent, waiting):
    payload = {"events": [complaint(), bounce(), bounce(bounce_type="soft")]}
    first = post(client, payload)
    assert first.status_code == 200
    state = (
        Suppression.objects.count(),
        DeliveryEvent.objects.count(),
        ConsentEvent.objects.count(),
    )
    again = post(client, payload)
    assert again.status_code == 200
    assert again.json()["delivery_events"] == 0
    assert again.json()["deliveries_skipped"] == 0
    assert again.json()["consents_withdrawn"] == 0
    assert (
        Suppression.objects.count(),
        DeliveryEvent.objects.count(),
        ConsentEvent.objects.count(),
    ) == state
    assert state == (1, 2, 3)  # one address; a complaint and a bounce; 2 grants + 1


def test_an_unknown_message_id_still_suppresses_the_address(client, sent, waiting):
    response = post(client, {"events": [bounce(message_id="<someone-else@elsewhere>")]})
    assert response.json()["unmatched"] == 1
    assert response.json()["delivery_events"] == 0
    assert not DeliveryEvent.objects.exists()
    assert is_suppressed(email=sent.customer.email)
    assert Delivery.objects.filter(status="pending").count() == 1


def test_an_address_of_no_customer_is_suppressed(client, purposes):
    response = post(client, {"events": [complaint("obcy@example.com", message_id="")]})
    assert response.status_code == 200
    assert response.json()["consents_withdrawn"] == 0
    assert is_suppressed(email="obcy@example.com")


def test_erasure_outranks_an_earlier_bounce(purposes):
    email_events_record(events=[bounce("ktos@example.pl")])
    suppression_add(email="ktos@example.pl")
    assert (
        Suppression.objects.get(
            value_hash=suppression_hash("email", "ktos@example.pl")
        ).reason
        == "erasure"
    )
    suppression_add(email="ktos@example.pl", reason="complaint")
    assert Suppression.objects.get().reason == "erasure"


def test_a_complaint_withdraws_a_purpose_switched_off_since(client, sent, purposes):
    ConsentPurpose.objects.filter(code="email_marketing").update(is_active=False)
    response = post(client, {"events": [complaint()]})
    assert response.status_code == 200
    assert response.json()["consents_withdrawn"] == 1
    assert not granted(sent.customer)
