"""Campaigns end to end: audience, a real SMTP server, one-click unsubscribe."""

import datetime as dt
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from campaigns.models import Campaign, Delivery
from campaigns.sending import Sender, sms_resume_at
from campaigns.services import (
    campaign_cancel,
    campaign_create,
    campaign_pause,
    campaign_resume,
    campaign_start,
)
from campaigns.tasks import campaign_prepare_task, campaign_send_task
from consents.models import ConsentState
from consents.services import (
    consent_grant,
    consent_text_current,
    consent_withdraw,
    suppression_add,
)
from segments.models import Segment, SegmentMembership
from tests.factories.campaigns import EmailTemplateFactory
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db


def grant(customer, purposes, code="email_marketing"):
    consent_grant(
        customer=customer,
        purpose=code,
        text=consent_text_current(purpose=purposes[code], language="pl"),
        source="newsletter_form",
        occurred_at=timezone.now() - dt.timedelta(days=3),
    )


def static_segment(customers):
    segment = Segment.objects.create(name="Lista", kind=Segment.Kind.STATIC)
    SegmentMembership.objects.bulk_create(
        SegmentMembership(segment=segment, customer=c, entered_at=timezone.now())
        for c in customers
    )
    return segment


def run(campaign, campaigns_tasks_sent):
    """What the worker does after campaign_start: prepare, then batches."""
    campaign_prepare_task(campaign.pk)
    for _ in range(10):
        campaign_send_task(campaign.pk)
        campaign.refresh_from_db()
        if campaign.status != Campaign.Status.SENDING:
            break
    return campaign


@pytest.fixture
def audience(purposes):
    consenting = [CustomerFactory(first_name=f"Anna{i}") for i in range(3)]
    for customer in consenting:
        grant(customer, purposes)
    no_consent = CustomerFactory(first_name="Bez")
    withdrawn = CustomerFactory(first_name="Była")
    grant(withdrawn, purposes)
    consent_withdraw(
        customer=withdrawn, purpose="email_marketing", source="preference_centre"
    )
    objector = CustomerFactory(
        first_name="Sprzeciw", marketing_objection_at=timezone.now()
    )
    grant(objector, purposes)
    suppressed = CustomerFactory(first_name="Zablokowany")
    grant(suppressed, purposes)
    suppression_add(email=suppressed.email, reason="bounce")
    no_email = CustomerFactory(first_name="Bezadresu", email=None)
    grant(no_email, purposes)
    everyone = [*consenting, no_consent, withdrawn, objector, suppressed, no_email]
    return {
        "consenting": consenting,
        "segment": static_segment(everyone),
        "no_consent": no_consent,
        "withdrawn": withdrawn,
        "objector": objector,
        "suppressed": suppressed,
        "no_email": no_email,
    }


def test_campaign_reaches_consenting_members_once_and_unsubscribe_sticks(
    audience, smtp_sink, client, campaigns_tasks_sent, purposes
):
    template = EmailTemplateFactory()
    campaign = campaign_create(
        actor=None, name="Jesień", template=template, segment=audience["segment"]
    )
    campaign_start(campaign=campaign)
    campaign = run(campaign, campaigns_tasks_sent)

    assert campaign.status == Campaign.Status.SENT
    assert campaign.audience_size == 8
    expected = {c.email for c in audience["consenting"]}
    assert smtp_sink.received_by() == dict.fromkeys(expected, 1)
    reasons = dict(
        Delivery.objects.filter(campaign=campaign).values_list("customer_id", "reason")
    )
    assert reasons[audience["no_consent"].pk] == Delivery.Reason.NO_CONSENT
    assert reasons[audience["withdrawn"].pk] == Delivery.Reason.NO_CONSENT
    assert reasons[audience["objector"].pk] == Delivery.Reason.OBJECTED
    assert reasons[audience["suppressed"].pk] == Delivery.Reason.SUPPRESSED
    assert reasons[audience["no_email"].pk] == Delivery.Reason.NO_ADDRESS

    anna = audience["consenting"][0]
    (message,) = [m for m in smtp_sink.messages if m["To"] == anna.email]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(message["List-Unsubscribe"]).strip().strip("<>")
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert url in html  # the visible link is the same address
    assert anna.first_name in message["Subject"]
    assert anna.first_name in text
    assert message["Message-ID"].startswith("<kartoteka.")

    # The mail provider's one-click POST, without cookies.
    response = client.post(
        urlsplit(url).path, {"List-Unsubscribe": "One-Click"}, secure=False
    )
    assert response.status_code == 200
    state = ConsentState.objects.get(customer=anna, purpose__code="email_marketing")
    assert state.granted is False

    second = campaign_create(
        actor=None, name="Zima", template=template, segment=audience["segment"]
    )
    campaign_start(campaign=second)
    smtp_sink.messages.clear()
    smtp_sink.envelopes.clear()
    run(second, campaigns_tasks_sent)
    received = smtp_sink.received_by()
    assert anna.email not in received
    assert set(received) == expected - {anna.email}


def test_consent_withdrawn_after_the_audience_was_chosen_is_honoured(
    audience, smtp_sink, campaigns_tasks_sent
):
    campaign = campaign_create(
        actor=None,
        name="Szybka",
        template=EmailTemplateFactory(),
        segment=audience["segment"],
    )
    campaign_start(campaign=campaign)
    campaign_prepare_task(campaign.pk)
    late = audience["consenting"][1]
    consent_withdraw(
        customer=late, purpose="email_marketing", source="preference_centre"
    )
    run(campaign, campaigns_tasks_sent)
    assert late.email not in smtp_sink.received_by()
    assert (
        Delivery.objects.get(campaign=campaign, customer=late).reason
        == Delivery.Reason.NO_CONSENT
    )


def test_pause_resume_and_cancel(audience, smtp_sink, campaigns_tasks_sent, settings):
    campaign = campaign_create(
        actor=None,
        name="Etapami",
        template=EmailTemplateFactory(),
        segment=audience["segment"],
    )
    campaign_start(campaign=campaign)
    campaign_prepare_task(campaign.pk)
    sender = Sender(campaign=Campaign.objects.get(pk=campaign.pk))
    assert sender.send(limit=1).sent == 1
    campaign_pause(campaign=campaign, actor=None)
    campaign_send_task(campaign.pk)  # a batch queued before the pause: does nothing
    assert len(smtp_sink.messages) == 1
    campaign_resume(campaign=campaign, actor=None)
    assert campaigns_tasks_sent[-1][0] == "campaigns.tasks.campaign_send_task"
    Sender(campaign=Campaign.objects.get(pk=campaign.pk)).send(limit=1)
    campaign_cancel(campaign=campaign, actor=None)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.CANCELLED
    assert len(smtp_sink.messages) == 2
    assert (
        Delivery.objects.filter(
            campaign=campaign, reason=Delivery.Reason.CANCELLED
        ).count()
        == 1
    )
    assert list(
        campaign.events.filter(kind="status").values_list("old_status", "new_status")
    ) == [
        ("draft", "sending"),
        ("sending", "paused"),
        ("paused", "sending"),
        ("sending", "cancelled"),
    ]


def test_frequency_cap_skips_customers_messaged_often(
    audience, smtp_sink, campaigns_tasks_sent, settings
):
    settings.CAMPAIGN_FREQUENCY_CAP = 1
    template = EmailTemplateFactory()
    first = campaign_create(
        actor=None, name="1", template=template, segment=audience["segment"]
    )
    campaign_start(campaign=first)
    run(first, campaigns_tasks_sent)
    second = campaign_create(
        actor=None, name="2", template=template, segment=audience["segment"]
    )
    campaign_start(campaign=second)
    run(second, campaigns_tasks_sent)
    assert len(smtp_sink.messages) == 3
    assert (
        Delivery.objects.filter(
            campaign=second, reason=Delivery.Reason.FREQUENCY_CAP
        ).count()
        == 3
    )


def test_mail_server_down_leaves_recipients_waiting(
    audience, campaigns_tasks_sent, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens
    campaign = campaign_create(
        actor=None,
        name="Awaria",
        template=EmailTemplateFactory(),
        segment=audience["segment"],
    )
    campaign_start(campaign=campaign)
    campaign_prepare_task(campaign.pk)
    result = campaign_send_task(campaign.pk)
    assert result["stopped"] == "error"
    assert Delivery.objects.filter(campaign=campaign, status="pending").count() == 3
    assert campaigns_tasks_sent[-1][0] == "campaigns.tasks.campaign_send_task"


@pytest.mark.parametrize(
    ("local", "resume"),
    [
        ("2026-12-03 12:00", None),
        ("2026-12-03 06:30", "2026-12-03 09:00"),
        ("2026-12-03 21:15", "2026-12-04 09:00"),
    ],
)
def test_sms_quiet_hours(local, resume, settings):
    settings.SMS_SEND_HOURS = (9, 20)
    moment = timezone.make_aware(dt.datetime.fromisoformat(local))
    expected = resume and timezone.make_aware(dt.datetime.fromisoformat(resume))
    assert sms_resume_at(moment) == expected


def test_other_email_backends_get_the_same_message(audience, campaigns_tasks_sent):
    # The tests' locmem backend: the fallback through EmailMultiAlternatives.
    from django.core import mail

    campaign = campaign_create(
        actor=None,
        name="Lokalnie",
        template=EmailTemplateFactory(),
        segment=audience["segment"],
    )
    campaign_start(campaign=campaign)
    run(campaign, campaigns_tasks_sent)
    assert sorted(m.to[0] for m in mail.outbox) == sorted(
        c.email for c in audience["consenting"]
    )
    message = mail.outbox[0]
    assert message.extra_headers["List-Unsubscribe-Post"] == (
        "List-Unsubscribe=One-Click"
    )
    assert message.alternatives[0][1] == "text/html"


def test_mime_bytes_parse_back_to_the_message():
    import email
    import email.policy

    from campaigns.mime import from_header, mime_bytes

    long_line = "Zażółć gęślą jaźń. " * 40
    data = mime_bytes(
        subject="Cześć Zofia, -20% na karmy: tylko do niedzieli! " * 3,
        text=f"Dzień dobry\n.\n{long_line}",
        html=f"<p>Dzień dobry</p><p>{long_line}</p>",
        sender=from_header("Sklep Żółwik <sklep@example.pl>"),
        to="zofia@example.pl",
        message_id="<kartoteka.1@example.pl>",
        unsubscribe="https://crm.example.pl/c/unsubscribe/abc/",
    )
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["Subject"] == "Cześć Zofia, -20% na karmy: tylko do niedzieli! " * 3
    assert message["From"].addresses[0].display_name == "Sklep Żółwik"
    assert message["List-Unsubscribe"] == "<https://crm.example.pl/c/unsubscribe/abc/>"
    text = message.get_body(("plain",)).get_content()
    assert text.replace("\r\n", "\n") == f"Dzień dobry\n.\n{long_line}"
    assert long_line in message.get_body(("html",)).get_content()


def test_rows_of_a_dead_sender_go_back_and_a_live_senders_stay(
    audience, smtp_sink, campaigns_tasks_sent
):
    import psycopg
    from django.db import connection

    from campaigns.sending import SENDER_LOCK

    campaign = campaign_create(
        actor=None,
        name="Po awarii",
        template=EmailTemplateFactory(),
        segment=audience["segment"],
    )
    campaign_start(campaign=campaign)
    campaign_prepare_task(campaign.pk)
    dead, alive = audience["consenting"][0], audience["consenting"][1]
    Delivery.objects.filter(campaign=campaign, customer=dead).update(
        status="sending", claimed_by=111
    )
    Delivery.objects.filter(campaign=campaign, customer=alive).update(
        status="sending", claimed_by=222
    )
    # Sender 222 lives: its session (another connection) holds its number.
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [SENDER_LOCK, 222])
        Sender(campaign=Campaign.objects.get(pk=campaign.pk)).send(limit=100)
    received = smtp_sink.received_by()
    assert dead.email in received  # taken back and sent
    assert alive.email not in received  # still the live sender's
    assert Delivery.objects.get(campaign=campaign, customer=alive).status == "sending"
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING  # not done while 222 works


def test_sms_campaign_reaches_consenting_phones(
    purposes, settings, campaigns_tasks_sent
):
    from campaigns import sms
    from tests.factories.campaigns import SmsTemplateFactory

    settings.SMS_BACKEND = "campaigns.sms.LocmemBackend"
    settings.SMS_SEND_HOURS = (0, 24)
    sms.outbox.clear()
    with_phone = CustomerFactory(first_name="Żaneta", phone="+48601000001")
    no_phone = CustomerFactory(first_name="Bez", phone="")
    for customer in (with_phone, no_phone):
        grant(customer, purposes, "sms_marketing")
    campaign = campaign_create(
        actor=None,
        name="SMS",
        template=SmsTemplateFactory(),
        segment=static_segment([with_phone, no_phone]),
    )
    assert campaign.purpose.code == "sms_marketing"
    campaign_start(campaign=campaign)
    campaign = run(campaign, campaigns_tasks_sent)
    assert campaign.status == Campaign.Status.SENT
    (message,) = sms.outbox
    assert message.to == "+48601000001"
    assert message.text.startswith("Hej Żaneta")
    assert message.reference.endswith(str(Delivery.objects.get(customer=with_phone).pk))
    assert Delivery.objects.get(customer=no_phone).reason == Delivery.Reason.NO_ADDRESS
