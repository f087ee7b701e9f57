"""Segment membership: rebuilds, who entered and left, lists, and the queue."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from consents.erasure import customer_object, customer_restrict
from orders.services import order_set_status, order_upsert
from segments.metrics import metrics_recompute, metrics_recompute_queued
from segments.models import (
    CustomerMetrics,
    MetricsQueue,
    Segment,
    SegmentChange,
    SegmentRebuild,
)
from segments.services import (
    segment_create,
    segment_members_add,
    segment_members_paste,
    segment_members_remove,
    segment_preview,
    segment_rebuild,
    segment_update,
    segments_rebuild_due,
)
from tests.factories.customers import CustomerFactory, StoreFactory
from tests.factories.orders import OrderFactory

REPEAT_BUYERS = {
    "op": "and",
    "rules": [{"field": "orders_count", "operator": "gte", "value": 2}],
}


@pytest.fixture
def buyers(db):
    store = StoreFactory()
    people = []
    for count in (1, 2, 3, 4):
        customer = CustomerFactory()
        for days in range(count):
            OrderFactory(
                customer=customer,
                store=store,
                placed_at=timezone.now() - timedelta(days=10 + days * 20),
            )
        people.append(customer)
    metrics_recompute()
    return store, people


def test_preview_counts_what_the_rules_select(buyers):
    assert segment_preview(REPEAT_BUYERS) == 3
    assert segment_preview({}) >= 4  # no rules: everyone who may be profiled


def test_a_rebuild_records_who_entered_and_who_left(buyers):
    _store, people = buyers
    segment = segment_create(name="Repeat buyers", rules=REPEAT_BUYERS)
    first = segment_rebuild(segment=segment)
    assert (first.size, first.entered, first.left) == (3, 3, 0)
    assert set(segment.memberships.values_list("customer_id", flat=True)) == {
        p.pk for p in people[1:]
    }
    segment_update(
        segment=segment,
        rules={
            "op": "and",
            "rules": [{"field": "orders_count", "operator": "gte", "value": 3}],
        },
    )
    second = segment_rebuild(segment=segment, trigger=SegmentRebuild.Trigger.EDIT)
    assert (second.size, second.entered, second.left) == (2, 0, 1)
    left = SegmentChange.objects.get(rebuild=second)
    assert (left.customer_id, left.kind) == (people[1].pk, "left")
    segment.refresh_from_db()
    assert segment.size == 2
    assert segment.rebuilt_at == second.finished_at
    # Nothing changed: nothing recorded but the size.
    third = segment_rebuild(segment=segment)
    assert (third.size, third.entered, third.left) == (2, 0, 0)
    assert list(segment.rebuilds.values_list("size", flat=True)) == [2, 2, 3]


def test_an_objection_to_profiling_leaves_every_dynamic_segment(buyers):
    _store, people = buyers
    everyone = segment_create(name="Everyone", rules={})
    repeat = segment_create(name="Repeat", rules=REPEAT_BUYERS)
    for segment in (everyone, repeat):
        segment_rebuild(segment=segment)
    objector = people[3]
    assert objector.segment_memberships.count() == 2
    customer_object(customer=objector, to="profiling", actor=None)
    for segment in (everyone, repeat):
        rebuild = segment_rebuild(segment=segment)
        assert rebuild.left == 1
    assert not objector.segment_memberships.exists()


def test_restricted_and_erased_customers_are_never_members(buyers):
    _store, people = buyers
    customer_restrict(customer=people[2], actor=None)
    segment = segment_create(name="Repeat", rules=REPEAT_BUYERS)
    segment_rebuild(segment=segment)
    assert not segment.memberships.filter(customer=people[2]).exists()


def test_bad_rules_are_refused_and_nothing_is_saved(db):
    with pytest.raises(ValidationError) as caught:
        segment_create(
            name="Bad",
            rules={"op": "and", "rules": [{"field": "password", "operator": "eq"}]},
        )
    assert "password" in str(caught.value)
    assert not Segment.objects.exists()


def test_static_lists(buyers):
    _store, people = buyers
    segment = segment_create(name="VIP", kind=Segment.Kind.STATIC)
    assert segment_members_add(segment=segment, customers=people[:2]) == 2
    assert segment_members_add(segment=segment, customers=people[:3]) == 1
    segment.refresh_from_db()
    assert segment.size == 3
    result = segment_members_paste(
        segment=segment,
        text=f"{people[3].email.upper()}; nobody@example.pl\n{people[0].phone}",
    )
    assert result == {"added": 1, "already": 1, "unknown": ["nobody@example.pl"]}
    assert segment_members_remove(segment=segment, customers=[people[0]]) == 1
    entered = SegmentChange.objects.filter(segment=segment, kind="entered").count()
    assert entered == 4
    assert SegmentChange.objects.filter(segment=segment, kind="left").count() == 1
    # A list's members come from the list, not from rules.
    with pytest.raises(ValidationError):
        segment_members_add(
            segment=segment_create(name="Rules", rules={}), customers=people
        )


def test_scheduled_rebuilds_run_when_due(buyers):
    hourly = segment_create(
        name="Hourly", rules=REPEAT_BUYERS, schedule=Segment.Schedule.HOURLY
    )
    manual = segment_create(
        name="Manual", rules=REPEAT_BUYERS, schedule=Segment.Schedule.MANUAL
    )
    assert [r.segment_id for r in segments_rebuild_due()] == [hourly.pk]
    assert segments_rebuild_due() == []  # just rebuilt
    later = timezone.now() + timedelta(hours=1)
    assert [r.segment_id for r in segments_rebuild_due(now=later)] == [hourly.pk]
    assert not manual.rebuilds.exists()


def test_an_order_queues_its_customer_for_the_incremental_recompute(buyers):
    store, people = buyers
    newcomer = CustomerFactory()
    order, _created = order_upsert(
        store=store,
        external_id="A-1",
        placed_at=timezone.now(),
        customer=newcomer,
        status="paid",
        total="50.00",
    )
    assert MetricsQueue.objects.filter(customer=newcomer).exists()
    assert metrics_recompute_queued() == 1
    metrics = CustomerMetrics.objects.get(customer=newcomer, store__isnull=True)
    assert metrics.orders_count == 1
    # Sending the same order again changes nothing and queues nobody.
    order_upsert(
        store=store,
        external_id="A-1",
        placed_at=order.placed_at,
        customer=newcomer,
        status="paid",
        total="50.00",
    )
    assert not MetricsQueue.objects.exists()
    # A return takes the order out of the figures.
    order_set_status(order=order, status="returned")
    metrics_recompute_queued()
    assert not CustomerMetrics.objects.filter(customer=newcomer).exists()


def test_an_objection_queues_the_customer_and_clears_the_scores(buyers):
    _store, people = buyers
    customer_object(customer=people[3], to="profiling", actor=None)
    assert metrics_recompute_queued() == 1
    metrics = CustomerMetrics.objects.get(customer=people[3], store__isnull=True)
    assert metrics.rfm_segment == ""
    assert metrics.recency_score is None
