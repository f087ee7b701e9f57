"""Exactly once: a worker killed in the middle of a campaign, and started again."""

import datetime as dt
import signal

import pytest
from django.utils import timezone

from campaigns.models import Campaign, Delivery
from campaigns.services import campaign_create, campaign_start
from campaigns.tasks import campaigns_watch_task
from consents.services import consent_grant, consent_text_current
from segments.models import Segment, SegmentMembership
from tests.factories.campaigns import EmailTemplateFactory
from tests.factories.customers import CustomerFactory
from tests.integration.conftest import wait_for
from tests.smtp import SmtpSink

pytestmark = pytest.mark.integration

RECIPIENTS = 30


def test_killed_worker_neither_skips_nor_repeats_anyone(start_worker, purposes):
    customers = CustomerFactory.create_batch(RECIPIENTS)
    text = consent_text_current(purpose=purposes["email_marketing"], language="pl")
    for customer in customers:
        consent_grant(
            customer=customer,
            purpose="email_marketing",
            text=text,
            source="newsletter_form",
            occurred_at=timezone.now() - dt.timedelta(days=1),
        )
    segment = Segment.objects.create(name="Wszyscy", kind=Segment.Kind.STATIC)
    SegmentMembership.objects.bulk_create(
        SegmentMembership(segment=segment, customer=c, entered_at=timezone.now())
        for c in customers
    )
    campaign = campaign_create(
        actor=None, name="Odporna", template=EmailTemplateFactory(), segment=segment
    )

    with SmtpSink(delay=0.02) as sink:
        env = {
            "KARTOTEKA_TEST_EMAIL_URL": f"smtp://127.0.0.1:{sink.port}",
            "CAMPAIGN_BATCH_SIZE": "4",  # several batches, chained through the broker
            "CAMPAIGN_STALLED_SECONDS": "1",
        }
        worker = start_worker(**env)
        campaign_start(campaign=campaign)

        # Hold the eleventh message at the server, and kill the worker sending it.
        assert sink.wait_for(10, timeout=60), "the worker sent nothing"
        sink.gate.clear()
        assert wait_for(sink.holding.is_set, timeout=30), "no message in hand"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        assert wait_for(lambda: not sink.holding.is_set(), timeout=10)
        sink.gate.set()
        killed_at = len(sink.messages)
        assert killed_at < RECIPIENTS

        start_worker(**env)
        campaigns_watch_task.delay()  # the beat's every-minute check

        def finished():
            campaign.refresh_from_db()
            return campaign.status == Campaign.Status.SENT

        assert wait_for(finished, timeout=90), campaign.status
        received = sink.received_by()

    assert received == {c.email: 1 for c in customers}
    assert Delivery.objects.filter(campaign=campaign, status="sent").count() == (
        RECIPIENTS
    )
