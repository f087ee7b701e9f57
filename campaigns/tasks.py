"""Celery tasks of the campaigns app: thin wrappers around the services.

Sending tasks run with acks_late and reject_on_worker_lost (settings), so a batch
whose worker dies is delivered again; every batch re-reads what is waiting, so a
repeated one sends nothing twice (``campaigns.sending``).
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from campaigns.flows import flows_run
from campaigns.models import Campaign, Delivery, Flow
from campaigns.sending import Sender
from campaigns.services import campaign_prepare, campaigns_start_due

# Sending that cannot reach the mail server or gateway tries again this much later.
RETRY_SECONDS = 60


@shared_task
def campaign_prepare_task(campaign_id: int) -> int:
    """Choose the audience of a campaign that started, then send to it."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return 0
    waiting = campaign_prepare(campaign=campaign)
    campaign_send_task.delay(campaign_id)
    return waiting


@shared_task
def campaign_send_task(campaign_id: int) -> dict:
    """One batch of a sending campaign; queues the next while any recipient waits."""
    campaign = (
        Campaign.objects.select_related("template", "purpose")
        .filter(pk=campaign_id, status=Campaign.Status.SENDING)
        .first()
    )
    if campaign is None or campaign.prepared_at is None:
        return {}
    result = Sender(campaign=campaign).send(limit=settings.CAMPAIGN_BATCH_SIZE)
    if result.stopped in ("limit", "time"):
        campaign_send_task.delay(campaign_id)
    elif result.stopped == "quiet_hours":
        campaign_send_task.apply_async((campaign_id,), eta=result.resume_at)
    elif result.stopped == "error":
        campaign_send_task.apply_async((campaign_id,), countdown=RETRY_SECONDS)
    return {"sent": result.sent, "failed": result.failed, "stopped": result.stopped}


def campaign_send_after_commit(campaign: Campaign) -> None:
    """Queue a batch of ``campaign`` once the caller's transaction commits."""
    campaign_send_task.delay_on_commit(campaign.pk)


@shared_task
def campaigns_start_due_task() -> int:
    """Every minute: start the scheduled campaigns whose moment has come."""
    return len(campaigns_start_due())


@shared_task
def campaigns_watch_task() -> int:
    """Every minute: a sending campaign with no progress lately gets a new batch.

    Its worker died (and the broker has not redelivered the batch yet), or its
    batches were lost with a broker; the claim makes an extra batch harmless.
    """
    stalled = timezone.now() - dt.timedelta(seconds=settings.CAMPAIGN_STALLED_SECONDS)
    restarted = 0
    for campaign in Campaign.objects.filter(
        status=Campaign.Status.SENDING, heartbeat_at__lt=stalled
    ):
        if campaign.prepared_at is None:
            campaign_prepare_task.delay(campaign.pk)
        elif Delivery.objects.filter(
            campaign=campaign,
            # "sending" rows of a dead sender: the new batch takes them back.
            status__in=(Delivery.Status.PENDING, Delivery.Status.SENDING),
        ).exists():
            campaign_send_task.delay(campaign.pk)
        else:
            # Everyone was sent to but the last batch died before saying so.
            Sender(campaign=campaign).finish()
            continue
        restarted += 1
    return restarted


@shared_task
def flows_run_task() -> dict[str, int]:
    """Every five minutes: each flow that is on acts on the triggers now due."""
    return flows_run()


@shared_task
def flow_send_task(flow_id: int) -> dict:
    """One batch of a flow's waiting messages; the next one while a backlog remains.

    Unlike a campaign's, a batch stopped by the SMS quiet hours or an unreachable
    server queues nothing: flows_run queues a batch every five minutes while any
    message waits, and a retry of its own on top would pile up one more chain of
    batches on every run for as long as the server is down.
    """
    flow = (
        Flow.objects.select_related("template", "purpose")
        .filter(pk=flow_id, is_active=True, template__isnull=False)
        .first()
    )
    if flow is None:
        return {}
    result = Sender(flow=flow).send(limit=settings.CAMPAIGN_BATCH_SIZE)
    if result.stopped in ("limit", "time"):
        flow_send_task.delay(flow_id)
    return {"sent": result.sent, "failed": result.failed, "stopped": result.stopped}
