from __future__ import annotations

import contextlib
import datetime as dt
import uuid

from celery import shared_task
from django.utils import timezone, translation

from customers.imports import import_job_check, import_job_run
from customers.models import ImportJob, WebhookDelivery
from customers.quality import quality_scan
from customers.services import api_records_prune
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


@shared_task
def duplicates_scan_task() -> dict:
    """Nightly and on request: the duplicate scan and every data quality check.

    Returns the duplicate pairs per reason and the count of each check.
    """
    scan = quality_scan()
    return {"duplicates": scan.duplicates, "counts": scan.counts}


@shared_task
def api_records_prune_task() -> dict:
    """Nightly: old idempotency records and finished webhook deliveries go."""
    return api_records_prune()


# Imports are not retried by Celery: a run is one transaction, and a redelivered task
# (acks_late, a worker that died) is recognised by the service itself. ``language``
# is the uploader's, for the row errors and messages the job stores.
@shared_task
def import_job_check_task(job_id: int, language: str | None = None) -> None:
    """Check an uploaded import file: the dry run whose counts the wizard shows."""
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is not None:
        with _language(language):
            import_job_check(job=job)


@shared_task
def import_job_run_task(job_id: int, language: str | None = None) -> None:
    """Import a checked and confirmed file."""
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is not None:
        with _language(language):
            import_job_run(job=job)


def _language(language: str | None) -> contextlib.AbstractContextManager:
    return translation.override(language) if language else contextlib.nullcontext()
