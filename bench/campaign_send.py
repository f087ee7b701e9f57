"""campaign_send: a 100,000-recipient campaign to a local SMTP sink, end to end.

The data: 100,000 customers with an email address and a granted email-marketing
consent (three in ten also allow tracking: their links are signed, an open pixel
is added), all members of a static segment. An SMTP sink (``bench/_smtp_sink.py``,
aiosmtpd in a process of its own) accepts and counts.

Measured:

- the campaign, end to end: from "send now" (the audience chosen: one Delivery per
  member, the suppression list checked) until it is marked sent, by SENDERS
  worker processes running the real sender (each message claimed with FOR UPDATE
  SKIP LOCKED, consent and frequency cap read again, rendered, sent over SMTP, its
  outcome committed);
- the reference: a bare smtplib loop sending the same messages, rendered
  beforehand, over one connection to a fresh sink.

The sinks' counts are checked: every recipient received exactly one message.
Goal: at least half the reference's rate, and at least 1,000 messages a second.
"""

from __future__ import annotations

import multiprocessing
import os
import smtplib
import subprocess
import sys
import time
from pathlib import Path

from bench import _harness, _sql

NAME = "campaign_send"
RECIPIENTS = int(os.environ.get("BENCH_RECIPIENTS", 100_000))
SENDERS = int(os.environ.get("BENCH_SENDERS", 4))
GOAL_RATIO = 0.5
GOAL_RATE = 1000.0
SINK = Path(__file__).resolve().parent / "_smtp_sink.py"

HTML = """
<h1>Cześć {{ first_name }}!</h1>
<p>Jesienna wyprzedaż trwa: <strong>-20%</strong> na karmy i akcesoria do
niedzieli.</p>
<p><a href="https://sklep.example.pl/wyprzedaz">Zobacz wyprzedaż</a> albo
<a href="https://sklep.example.pl/nowosci">nowości tygodnia</a>.</p>
<p>Pozdrawiamy,<br>{{ shop_name }}</p>
<p><small><a href="{{ unsubscribe_url }}">Wypisz się</a> ·
<a href="{{ preferences_url }}">ustawienia zgód</a></small></p>
"""


class Sink:
    """The counting sink in its own process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, str(SINK)], stdout=subprocess.PIPE, text=True
        )
        self.port = int(self.process.stdout.readline())

    def stop(self) -> tuple[int, int]:
        self.process.terminate()
        out, _ = self.process.communicate(timeout=30)
        messages, recipients = out.split()
        return int(messages), int(recipients)


def _generate() -> int:
    """Customers, consents and the segment; returns the segment's id."""
    from django.db import connection, transaction
    from django.utils import timezone

    from consents.models import ConsentEvent, ConsentPurpose
    from consents.services import consent_text_current
    from customers.models import Customer
    from segments.models import Segment, SegmentMembership

    email = ConsentPurpose.objects.get(code="email_marketing")
    tracking = ConsentPurpose.objects.get(code="tracking")
    segment = Segment.objects.create(name="Newsletter", kind=Segment.Kind.STATIC)
    with transaction.atomic(), connection.cursor() as cursor:
        _sql.insert(
            cursor,
            Customer,
            {
                "first_name": "(ARRAY['Anna','Piotr','Zofia','Jan'])[mod(n, 4) + 1]",
                "last_name": "'Kowalski'",
                "email": "'k' || n || '@example.pl'",
                "status": "'lead'",
                "language": "'pl'",
                "created_at": "now()",
                "updated_at": "now()",
            },
            "generate_series(1, %s) AS n",
            [RECIPIENTS],
        )
        for purpose, share in ((email, 1), (tracking, 0.3)):
            text = consent_text_current(purpose=purpose, language="pl")
            _sql.insert(
                cursor,
                ConsentEvent,
                {
                    "customer_id": "c.id",
                    "purpose_id": str(purpose.pk),
                    "action": "'grant'",
                    "text_id": str(text.pk),
                    "occurred_at": "now() - interval '30 days'",
                    "source": "'newsletter_form'",
                },
                f"customers_customer c WHERE {_sql.uniform('c.id', 7)} < {share}",
            )
        _sql.insert(
            cursor,
            SegmentMembership,
            {
                "segment_id": str(segment.pk),
                "customer_id": "c.id",
                "entered_at": "now()",
            },
            "customers_customer c",
        )
        cursor.execute("ANALYZE")
    Segment.objects.filter(pk=segment.pk).update(
        size=RECIPIENTS, rebuilt_at=timezone.now()
    )
    return segment.pk


def _send(campaign_id: int) -> None:
    """One worker process: send until nothing waits."""
    from campaigns.models import Campaign
    from campaigns.sending import Sender

    campaign = Campaign.objects.select_related("template", "purpose").get(
        pk=campaign_id
    )
    Sender(campaign=campaign).send(limit=10**9, seconds=3600)


def _configure_email(port: int) -> None:
    from django.conf import settings

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.CAMPAIGN_FREQUENCY_CAP = 1000


def _campaign(segment_id: int) -> tuple[float, float, object]:
    """Send the campaign; (seconds end to end, seconds choosing the audience)."""
    from django.db import connections

    from campaigns.models import Campaign
    from campaigns.services import campaign_create, campaign_prepare, template_save
    from segments.models import Segment

    template = template_save(
        actor=None,
        name="Wyprzedaż",
        channel="email",
        subject="{{ first_name }}, jesienna wyprzedaż -20%",
        html=HTML,
    )
    campaign = campaign_create(
        actor=None,
        name="Wyprzedaż",
        template=template,
        segment=Segment.objects.get(pk=segment_id),
    )
    started = time.perf_counter()
    # What campaign_start and the prepare task do, without a broker in between.
    from campaigns.services import campaign_transition

    campaign_transition(campaign=campaign, status=Campaign.Status.SENDING)
    campaign_prepare(campaign=campaign)
    prepared = time.perf_counter() - started
    connections.close_all()  # the workers are forks: no shared connection
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_send, args=(campaign.pk,)) for _ in range(SENDERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    campaign.refresh_from_db()
    return seconds, prepared, campaign


def _rendered(campaign) -> list[tuple[str, str, bytes]]:
    """The campaign's messages rendered as the sender renders them (not timed)."""
    from django.conf import settings

    from campaigns import rendering
    from campaigns.sending import email_message, message_values
    from campaigns.tracking import click_url, open_url
    from consents.links import preference_url, unsubscribe_url
    from customers.models import Customer

    prepared = rendering.prepare_email(
        campaign.template.subject, campaign.template.html
    )
    tracked = set(
        campaign.deliveries.filter(
            customer__consent_states__purpose__code="tracking",
            customer__consent_states__granted=True,
        ).values_list("pk", flat=True)
    )
    messages = []
    rows = campaign.deliveries.values_list(
        "pk", "customer_id", "customer__email", "customer__first_name"
    )
    for pk, customer_id, address, first_name in rows.iterator(chunk_size=5000):
        customer = Customer(pk=customer_id, first_name=first_name)
        values = message_values(
            customer=customer,
            unsubscribe=unsubscribe_url(customer, campaign.purpose, reference=str(pk)),
            preferences=preference_url(customer),
        )
        context = rendering.MessageContext(values=values)
        if pk in tracked:
            rendered = prepared.render(
                context,
                track_link=lambda url, pk=pk: click_url(pk, url),
                open_pixel_url=open_url(pk),
            )
        else:
            rendered = prepared.render(context)
        message = email_message(
            rendered=rendered,
            to=address,
            message_id=f"<kartoteka.{pk}@example.pl>",
            unsubscribe=values["unsubscribe_url"],
        )
        messages.append((address, message.message().as_bytes(linesep="\r\n")))
    sender = settings.DEFAULT_FROM_EMAIL
    return [(sender, address, body) for address, body in messages]


def _reference(messages: list, port: int) -> float:
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for sender, address, body in messages:
            smtp.sendmail(sender, [address], body)
    return time.perf_counter() - started


def run() -> dict:
    segment_id = _generate()
    print(f"  {RECIPIENTS:,} consenting customers in a static segment", flush=True)

    sink = Sink()
    _configure_email(sink.port)
    seconds, prepared, campaign = _campaign(segment_id)
    received, distinct = sink.stop()
    rate = RECIPIENTS / seconds
    print(
        f"  campaign: {seconds:.1f} s end to end ({prepared:.1f} s choosing the"
        f" audience), {rate:,.0f} messages/s with {SENDERS} sender processes;"
        f" status {campaign.status}; the sink received {received:,} for"
        f" {distinct:,} addresses",
        flush=True,
    )
    if received != RECIPIENTS or distinct != RECIPIENTS:
        raise RuntimeError("The campaign did not reach everyone exactly once.")

    messages = _rendered(campaign)
    sink = Sink()
    reference_s = _reference(messages, sink.port)
    received, distinct = sink.stop()
    reference_rate = len(messages) / reference_s
    print(
        f"  reference: smtplib over one connection, {reference_s:.1f} s,"
        f" {reference_rate:,.0f} messages/s (the sink received {received:,})",
        flush=True,
    )
    ratio = rate / reference_rate
    meets = ratio >= GOAL_RATIO and rate >= GOAL_RATE
    return _harness.write_result(
        name=NAME,
        value=rate,
        unit="messages/s",
        reference=reference_rate,
        conditions=_harness.conditions(
            recipients=RECIPIENTS,
            senders=SENDERS,
            end_to_end_s=round(seconds, 2),
            audience_s=round(prepared, 2),
            reference_s=round(reference_s, 2),
        ),
        summary=(
            f"{'meets' if meets else 'MISSES'} the goal (at least"
            f" {GOAL_RATIO:.0%} of the reference and {GOAL_RATE:,.0f} messages/s):"
            f" {ratio:.2f} of the reference"
        ),
    )
