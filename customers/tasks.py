from __future__ import annotations

import datetime as dt
import uuid

from celery import shared_task
from django.utils import timezone

from customers.models import WebhookDelivery
from customers.webhooks import webhook_deliver, webhook_retry_due


@shared_task
def webhook_deliver_task(delivery_id: str) -> bool:
    """Send one webhook delivery; retries are scheduled in the row, not by Celery."""
    delivery = WebhookDelivery.objects.filter(pk=delivery_id).first()
    if delivery is None:
        return False
    return webhook_deliver(delivery=delivery)


@shared_task
def webhook_retry_due_task(
    until: str | None = None, after: tuple[str, str] | None = None
) -> None:
    """Every minute: queue the deliveries whose next attempt is due, batch by batch.

    ``until`` is fixed for the whole chain of batches so that it ends.
    """
    until_at = dt.datetime.fromisoformat(until) if until else timezone.now()
    cursor = None
    if after:
        cursor = (dt.datetime.fromisoformat(after[0]), uuid.UUID(after[1]))
    following = webhook_retry_due(until=until_at, after=cursor)
    if following is not None:
        webhook_retry_due_task.delay(
            until=until_at.isoformat(),
            after=(following[0].isoformat(), str(following[1])),
        )
