"""Nightly pruning of what the API keeps only for a while."""

import datetime as dt

import pytest
from django.utils import timezone

from customers.models import IdempotencyRecord, WebhookDelivery, WebhookEndpoint
from customers.services import api_key_create, api_records_prune
from tests.factories.customers import StoreFactory

Status = WebhookDelivery.Status


def aged(obj, **age):
    type(obj).objects.filter(pk=obj.pk).update(
        created_at=timezone.now() - dt.timedelta(**age)
    )
    return obj


@pytest.mark.django_db
def test_old_idempotency_records_and_finished_deliveries_are_deleted(settings):
    settings.IDEMPOTENCY_KEY_HOURS = 24
    settings.WEBHOOK_DELIVERY_RETENTION_DAYS = 30
    store = StoreFactory()
    api_key, _raw = api_key_create(store=store, name="shop", scopes=["write"])
    old_key = aged(
        IdempotencyRecord.objects.create(
            api_key=api_key, key="old", method="POST", path="/x", request_hash="h"
        ),
        hours=25,
    )
    fresh_key = aged(
        IdempotencyRecord.objects.create(
            api_key=api_key, key="fresh", method="POST", path="/x", request_hash="h"
        ),
        hours=23,
    )
    endpoint = WebhookEndpoint.objects.create(
        store=store, url="https://shop.example.pl/hooks", secret="s", events=[]
    )

    def delivery(status, days):
        return aged(
            WebhookDelivery.objects.create(
                endpoint=endpoint, event="customer.updated", payload={}, status=status
            ),
            days=days,
        )

    old_done = delivery(Status.SUCCEEDED, 31)
    old_failed = delivery(Status.FAILED, 31)
    old_pending = delivery(Status.PENDING, 31)
    recent_done = delivery(Status.SUCCEEDED, 29)

    assert api_records_prune(batch=1) == {
        "idempotency_records": 1,
        "webhook_deliveries": 2,
    }

    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [
        fresh_key.pk
    ]
    assert not IdempotencyRecord.objects.filter(pk=old_key.pk).exists()
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {
        old_pending.pk,
        recent_done.pk,
    }
    assert not WebhookDelivery.objects.filter(
        pk__in=[old_done.pk, old_failed.pk]
    ).exists()
    assert api_records_prune() == {"idempotency_records": 0, "webhook_deliveries": 0}


def test_the_prune_task_is_scheduled_nightly(db, settings):
    from customers.tasks import api_records_prune_task

    entry = settings.CELERY_BEAT_SCHEDULE["api-records-prune"]
    assert entry["task"] == api_records_prune_task.name
    assert entry["schedule"].hour == {3}
    assert api_records_prune_task() == {
        "idempotency_records": 0,
        "webhook_deliveries": 0,
    }
