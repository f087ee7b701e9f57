"""Celery tasks of the segments app: thin wrappers around the services."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery import shared_task
from django.core.cache import cache
from django.db import transaction

from segments.metrics import (
    SCHEDULED_KEY,
    metrics_recompute,
    metrics_recompute_queued,
)
from segments.models import DashboardSnapshot, Segment, SegmentRebuild
from segments.rollups import (
    RECENT_DAYS,
    WINDOW_DAYS,
    dashboard_refreshes_prune,
    dashboard_rollups_refresh,
    dashboard_snapshot_refresh,
)
from segments.services import segment_rebuild, segments_rebuild_due


@shared_task
def metrics_recompute_task() -> dict:
    """Nightly: every buyer's metrics and RFM scores, then the daily segments."""
    result = metrics_recompute()
    for segment in Segment.objects.filter(
        is_active=True, kind=Segment.Kind.DYNAMIC, schedule=Segment.Schedule.DAILY
    ):
        segment_rebuild(segment=segment, trigger=SegmentRebuild.Trigger.SCHEDULE)
    return {"customers": result.customers, "moves": result.moves}


@shared_task
def metrics_recompute_queued_task() -> int:
    """The customers whose orders or rights changed since the last run."""
    # Cleared first: a change from now on schedules the next run.
    cache.delete(SCHEDULED_KEY)
    return metrics_recompute_queued()


@shared_task
def segments_rebuild_due_task() -> int:
    """Every few minutes: the segments whose schedule says they are due."""
    return len(segments_rebuild_due())


@shared_task
def segment_rebuild_task(
    segment_id: int, trigger: str = SegmentRebuild.Trigger.MANUAL, user_id=None
) -> None:
    """A rebuild asked for on a page, in the admin or after the rules changed."""
    from django.contrib.auth import get_user_model

    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None:
        return
    actor = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    segment_rebuild(segment=segment, trigger=trigger, actor=actor)


def segment_rebuild_after_commit(
    segments: Iterable[Segment], *, trigger: str, user: Any = None
) -> int:
    """Queue a rebuild of each segment once the transaction commits; how many.

    For pages and the admin. A broker that is down must not turn the committed
    change into an error (robust): scheduled segments catch up on their next run.
    """
    ids = [segment.pk for segment in segments]
    trigger = str(trigger)  # the plain value through the broker's JSON
    user_id = user.pk if getattr(user, "is_authenticated", False) else None

    def enqueue() -> None:
        for segment_id in ids:
            segment_rebuild_task.delay(segment_id, trigger=trigger, user_id=user_id)

    transaction.on_commit(enqueue, robust=True)
    return len(ids)


# --- The dashboard -------------------------------------------------------------------


@shared_task
def dashboard_refresh_task() -> dict:
    """Every ten minutes: today's and yesterday's figures (the first run: all)."""
    result = dashboard_rollups_refresh(days=RECENT_DAYS)
    if not DashboardSnapshot.objects.exists():
        dashboard_snapshot_refresh()  # a new installation sees its panels at once
    return {"kind": result.kind, "rows": result.rows}


@shared_task
def dashboard_nightly_task() -> dict:
    """Every night, after the metrics: the last weeks' figures and the snapshot."""
    result = dashboard_rollups_refresh(days=WINDOW_DAYS)
    snapshot = dashboard_snapshot_refresh()
    dashboard_refreshes_prune()
    return {"kind": result.kind, "rows": result.rows, "scopes": snapshot.rows}


@shared_task
def dashboard_rebuild_task() -> dict:
    """Every week: every day's figures again (older returns, erasures, merges)."""
    result = dashboard_rollups_refresh(days=None)
    return {"kind": result.kind, "rows": result.rows}
