"""CustomerMetrics and RFM scores, computed in PostgreSQL in a few set-based statements.

One statement computes every buyer's figures, over all stores and per store at once
(``GROUPING SETS``), into a temporary table; three more bring the stored rows in
line with it, writing only what changed, and record who moved between named RFM
segments. Python never loops over customers.

Definitions (also on the RFM page):

- an order counts when it is paid, shipped or delivered (``Order.REVENUE_STATUSES``);
  a buyer is a customer with at least one;
- money is in the default currency: an order in another currency counts at its
  ``CurrencyRate``; with no rate it counts for recency and frequency, not money;
- R is ranked by the local date of the last order, F by the number of orders, M
  by revenue. A score is the quintile the buyer's rank falls in:
  ``1 + floor(5 * (rank - 1) / buyers)``, where tied values share the lowest rank,
  so ties always get the same score (with many one-order buyers, F 2 and 3 may
  stay empty: those buyers fill the lowest quintiles together). Fixed thresholds
  replace quintiles per dimension where settings.RFM_RECENCY_DAYS,
  RFM_FREQUENCY_ORDERS or RFM_MONETARY are set;
- only buyers who may be profiled are ranked and scored: not erased, not
  restricted, no objection to profiling. The others keep the plain figures but no
  scores, segment, favourites or prediction;
- the favourite category and brand are those on the most order lines (ties: the
  lowest id, the first brand alphabetically), never from sensitive products or
  categories;
- the next purchase is expected one average gap after the last order for a buyer
  with two orders or more, otherwise when the last replenishable product bought
  runs out (its replenishment days times the quantity);
- the historical lifetime value is the revenue, or over all stores, what the
  previous platform reported (``imported_total_spent``) if that is more.

The full recompute (nightly) ranks everyone and stores the lowest value that earned
each score (RfmThreshold); the incremental one recomputes only the customers queued
in MetricsQueue and scores them against those thresholds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from orders.models import Order
from segments.models import MetricsQueue
from segments.rfm import rfm_grid_ensure

logger = logging.getLogger(__name__)

# Serialises recomputes: a nightly run and an incremental one must not interleave
# their writes (the older snapshot would win). Any constant unique to this lock.
_LOCK_KEY = 7_301_001

# The stored columns, in the order the compute produces them.
COLUMNS = (
    "customer_id",
    "store_id",
    "orders_count",
    "revenue",
    "average_order_value",
    "first_order_at",
    "last_order_at",
    "average_days_between_orders",
    "favourite_category_id",
    "favourite_brand",
    "predicted_next_order_on",
    "clv",
    "recency_score",
    "frequency_score",
    "monetary_score",
    "rfm_segment",
)
_KEY = ("customer_id", "store_id")
_VALUES = tuple(c for c in COLUMNS if c not in _KEY)


@dataclass(frozen=True)
class RecomputeResult:
    customers: int  # buyers with overall figures after the run (full) or touched
    rows: int  # rows computed (overall plus per store)
    inserted: int
    updated: int
    deleted: int
    moves: int
    orders_without_rate: int
    seconds: float


def _score(value: str, cut: Callable[[int], str]) -> str:
    """SQL for a 1-5 score of ``value``: 1 plus the number of cuts it reaches.

    ``cut(i)`` is the SQL of the i-th of four ascending cuts (0-based); a NULL cut
    (a score nobody earned) is never reached.
    """
    terms = " + ".join(f"coalesce(({value} >= {cut(i)})::int, 0)" for i in range(4))
    return f"(1 + {terms})"


def _fixed(parameter: str, cast: str) -> Callable[[int], str]:
    return lambda i: f"(%({parameter})s::{cast}[])[{i + 1}]"


def _stored(column: str, cast: str) -> Callable[[int], str]:
    return lambda i: f"(th.{column}->>{i})::{cast}"


def _rank_score(order_by: str) -> str:
    return (
        "(1 + 5 * (rank() OVER (PARTITION BY store_id, scorable ORDER BY "
        f"{order_by}) - 1) / count(*) OVER (PARTITION BY store_id, scorable))"
    )


def compute_sql(*, incremental: bool) -> str:
    """The SELECT producing COLUMNS for every buyer (or those in %(ids)s)."""
    only = "AND o.customer_id = ANY(%(ids)s)" if incremental else ""
    if settings.RFM_RECENCY_DAYS:
        # Fewer days since the last order is better: negated, the cuts ascend.
        recency = _score(
            "-days_since", lambda i: f"-{_fixed('recency_days', 'int')(3 - i)}"
        )
    elif incremental:
        recency = _score("last_day", _stored("recency", "date"))
    else:
        recency = _rank_score("last_day")
    if settings.RFM_FREQUENCY_ORDERS:
        frequency = _score("orders_count", _fixed("frequency_orders", "int"))
    elif incremental:
        frequency = _score("orders_count", _stored("frequency", "int"))
    else:
        frequency = _rank_score("orders_count")
    if settings.RFM_MONETARY:
        monetary = _score("revenue", _fixed("monetary", "numeric"))
    elif incremental:
        monetary = _score("revenue", _stored("monetary", "numeric"))
    else:
        monetary = _rank_score("revenue")
    # Incremental scores need the thresholds of the last full run; a store never
    # ranked yet gives no scores until the next one.
    thresholds = (
        "LEFT JOIN segments_rfmthreshold th "
        "ON coalesce(th.store_id, 0) = coalesce(b.store_id, 0)"
        if incremental
        else ""
    )
    ranked_when = "b.scorable AND th.id IS NOT NULL" if incremental else "b.scorable"
    return f"""
    WITH rates AS (
        SELECT currency, rate FROM segments_currencyrate
        UNION ALL SELECT %(default_currency)s, 1
    ),
    o AS (
        SELECT o.id, o.customer_id, o.store_id, o.placed_at, o.total * r.rate AS amount
        FROM orders_order o
        LEFT JOIN rates r ON r.currency = o.currency
        WHERE o.status = ANY(%(statuses)s) {only}
    ),
    totals AS (
        SELECT customer_id, store_id, count(*) AS orders_count,
            coalesce(sum(amount), 0) AS revenue, count(amount) AS priced,
            min(placed_at) AS first_order_at, max(placed_at) AS last_order_at
        FROM o
        GROUP BY GROUPING SETS ((customer_id), (customer_id, store_id))
    ),
    picks AS (
        SELECT o.customer_id, o.store_id,
            mode() WITHIN GROUP (ORDER BY l.category_id) FILTER (
                WHERE l.category_id IS NOT NULL AND NOT c.is_sensitive
                AND NOT coalesce(p.is_sensitive, false)
            ) AS favourite_category_id,
            mode() WITHIN GROUP (ORDER BY p.brand) FILTER (
                WHERE p.brand <> '' AND NOT p.is_sensitive
                AND NOT coalesce(c.is_sensitive, false)
            ) AS favourite_brand,
            max(o.placed_at + make_interval(
                days => ceil(p.replenishment_days * l.quantity)::int
            )) AS runs_out_at
        FROM o
        JOIN orders_orderline l ON l.order_id = o.id
        LEFT JOIN orders_product p ON p.id = l.product_id
        LEFT JOIN orders_category c ON c.id = l.category_id
        GROUP BY GROUPING SETS ((o.customer_id), (o.customer_id, o.store_id))
    ),
    b AS (
        SELECT t.*, pk.favourite_category_id, pk.favourite_brand, pk.runs_out_at,
            cu.imported_total_spent,
            (cu.erased_at IS NULL AND cu.restricted_at IS NULL
                AND cu.profiling_objection_at IS NULL) AS scorable,
            (t.last_order_at AT TIME ZONE %(zone)s)::date AS last_day,
            %(today)s::date - (t.last_order_at AT TIME ZONE %(zone)s)::date
                AS days_since
        FROM totals t
        JOIN customers_customer cu ON cu.id = t.customer_id
        LEFT JOIN picks pk ON pk.customer_id = t.customer_id
            AND coalesce(pk.store_id, 0) = coalesce(t.store_id, 0)
    ),
    scored AS (
        SELECT b.*,
            CASE WHEN {ranked_when} THEN {recency} END AS r,
            CASE WHEN {ranked_when} THEN {frequency} END AS f,
            CASE WHEN {ranked_when} THEN {monetary} END AS m
        FROM b {thresholds}
    )
    SELECT s.customer_id, s.store_id, s.orders_count,
        round(s.revenue, 2) AS revenue,
        CASE WHEN s.priced > 0 THEN round(s.revenue / s.priced, 2) ELSE 0 END
            AS average_order_value,
        s.first_order_at, s.last_order_at,
        CASE WHEN s.orders_count > 1 THEN round((extract(epoch FROM
            s.last_order_at - s.first_order_at) / 86400
            / (s.orders_count - 1))::numeric, 1)
        END AS average_days_between_orders,
        CASE WHEN s.scorable THEN s.favourite_category_id END
            AS favourite_category_id,
        CASE WHEN s.scorable THEN coalesce(s.favourite_brand, '') ELSE '' END
            AS favourite_brand,
        CASE WHEN NOT s.scorable THEN NULL
            WHEN s.orders_count > 1 THEN ((s.last_order_at + (s.last_order_at
                - s.first_order_at) / (s.orders_count - 1)) AT TIME ZONE %(zone)s)::date
            ELSE (s.runs_out_at AT TIME ZONE %(zone)s)::date
        END AS predicted_next_order_on,
        CASE WHEN s.store_id IS NULL
            THEN greatest(round(s.revenue, 2), coalesce(s.imported_total_spent, 0))
            ELSE round(s.revenue, 2)
        END AS clv,
        s.r AS recency_score, s.f AS frequency_score, s.m AS monetary_score,
        coalesce(seg.code, '') AS rfm_segment
    FROM scored s
    LEFT JOIN segments_rfmcell cell ON cell.recency = s.r AND cell.frequency = s.f
    LEFT JOIN segments_rfmsegment seg ON seg.id = cell.segment_id
    """


def _params(ids: list[int] | None = None) -> dict[str, Any]:
    now = timezone.now()
    return {
        "default_currency": settings.DEFAULT_CURRENCY,
        "statuses": [str(s) for s in Order.REVENUE_STATUSES],
        "zone": settings.TIME_ZONE,
        "today": timezone.localdate(now),
        "now": now,
        "ids": ids or [],
        "recency_days": sorted(settings.RFM_RECENCY_DAYS),
        "frequency_orders": sorted(settings.RFM_FREQUENCY_ORDERS),
        "monetary": sorted(settings.RFM_MONETARY),
    }


def _same_key(left: str, right: str) -> str:
    # coalesce() keeps the overall rows (store NULL) joinable by hash.
    return (
        f"{left}.customer_id = {right}.customer_id "
        f"AND coalesce({left}.store_id, 0) = coalesce({right}.store_id, 0)"
    )


def _apply(cursor: Any, params: dict[str, Any], *, incremental: bool) -> dict[str, int]:
    """Bring segments_customermetrics in line with ``metrics_fresh``."""
    scope = "AND m.customer_id = ANY(%(ids)s)" if incremental else ""
    cursor.execute("SELECT EXISTS (SELECT 1 FROM segments_customermetrics)")
    (scored_before,) = cursor.fetchone()
    # The first run ever: everyone is seen for the first time, nobody moved (and
    # flows that start on entering a segment must not fire for the whole base).
    moves = 0
    if scored_before:
        cursor.execute(
            f"""
        INSERT INTO segments_rfmsegmentmove
            (customer_id, from_segment, to_segment, moved_at)
        SELECT coalesce(f.customer_id, m.customer_id), coalesce(m.rfm_segment, ''),
            coalesce(f.rfm_segment, ''), %(now)s
        FROM (
            SELECT customer_id, rfm_segment FROM pg_temp.metrics_fresh
            WHERE store_id IS NULL
        ) f
        FULL JOIN (
            SELECT customer_id, rfm_segment FROM segments_customermetrics m
            WHERE store_id IS NULL {scope}
        ) m ON m.customer_id = f.customer_id
        WHERE coalesce(m.rfm_segment, '') <> coalesce(f.rfm_segment, '')
        """,
            params,
        )
        moves = cursor.rowcount
    cursor.execute(
        f"""
        DELETE FROM segments_customermetrics m
        WHERE NOT EXISTS (
            SELECT 1 FROM pg_temp.metrics_fresh f WHERE {_same_key("f", "m")}
        ) {scope}
        """,
        params,
    )
    deleted = cursor.rowcount
    assignments = ", ".join(f"{c} = f.{c}" for c in _VALUES)
    old = ", ".join(f"m.{c}" for c in _VALUES)
    new = ", ".join(f"f.{c}" for c in _VALUES)
    cursor.execute(
        f"""
        UPDATE segments_customermetrics m SET {assignments}, updated_at = %(now)s
        FROM pg_temp.metrics_fresh f
        WHERE {_same_key("f", "m")} AND ({old}) IS DISTINCT FROM ({new})
        """,
        params,
    )
    updated = cursor.rowcount
    names = ", ".join(COLUMNS)
    cursor.execute(
        f"""
        INSERT INTO segments_customermetrics ({names}, updated_at)
        SELECT {names}, %(now)s FROM pg_temp.metrics_fresh f
        ON CONFLICT ON CONSTRAINT customer_metrics_unique DO NOTHING
        """,
        params,
    )
    return {
        "moves": moves,
        "deleted": deleted,
        "updated": updated,
        "inserted": cursor.rowcount,
    }


def _thresholds_store(cursor: Any, params: dict[str, Any]) -> None:
    """The lowest value that earned each score, per store and overall."""
    cursor.execute("DELETE FROM segments_rfmthreshold")

    def cuts(column: str, score: str, cast: str = "") -> str:
        return (
            "jsonb_build_array("
            + ", ".join(
                f"min({column}{cast}) FILTER (WHERE {score} >= {k})"
                for k in range(2, 6)
            )
            + ")"
        )

    cursor.execute(
        f"""
        INSERT INTO segments_rfmthreshold
            (store_id, recency, frequency, monetary, buyers, computed_at)
        SELECT store_id,
            {cuts("(last_order_at AT TIME ZONE %(zone)s)::date", "recency_score")},
            {cuts("orders_count", "frequency_score")},
            {cuts("revenue", "monetary_score")},
            count(*), %(now)s
        FROM pg_temp.metrics_fresh WHERE recency_score IS NOT NULL
        GROUP BY store_id
        """,
        params,
    )


def _orders_without_rate(cursor: Any, params: dict[str, Any], only: str) -> int:
    cursor.execute(
        f"""
        SELECT count(*) FROM orders_order o
        WHERE o.status = ANY(%(statuses)s) {only}
        AND o.currency <> %(default_currency)s
        AND NOT EXISTS (
            SELECT 1 FROM segments_currencyrate r WHERE r.currency = o.currency
        )
        """,
        params,
    )
    return cursor.fetchone()[0]


def metrics_recompute(*, customer_ids: Iterable[int] | None = None) -> RecomputeResult:
    """Recompute CustomerMetrics for everyone, or only for ``customer_ids``.

    Everyone: buyers are ranked afresh and the thresholds stored. Some: their
    figures are recomputed and scored against the stored thresholds (a customer
    left with no orders loses their rows). One transaction either way.
    """
    started = time.monotonic()
    incremental = customer_ids is not None
    ids = sorted(set(customer_ids)) if incremental else None
    params = _params(ids)
    rfm_grid_ensure()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        if not incremental:
            # Sorting and hashing a million buyers in memory instead of on disk.
            cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("DROP TABLE IF EXISTS pg_temp.metrics_fresh")
        cursor.execute(
            "CREATE TEMPORARY TABLE metrics_fresh ON COMMIT DROP AS "
            + compute_sql(incremental=incremental),
            params,
        )
        rows = cursor.rowcount
        counts = _apply(cursor, params, incremental=incremental)
        if not incremental and counts["inserted"] + counts["deleted"] > rows / 10:
            # Many rows came or went (a first run): the planner's next plans
            # must not take the table for empty.
            cursor.execute("ANALYZE segments_customermetrics")
        if not incremental:
            _thresholds_store(cursor, params)
        cursor.execute(
            "SELECT count(*) FROM pg_temp.metrics_fresh WHERE store_id IS NULL"
        )
        customers = cursor.fetchone()[0]
        without_rate = _orders_without_rate(
            cursor, params, "AND o.customer_id = ANY(%(ids)s)" if incremental else ""
        )
    return RecomputeResult(
        customers=customers,
        rows=rows,
        orders_without_rate=without_rate,
        seconds=time.monotonic() - started,
        **counts,
    )


# --- The queue of customers whose orders or rights changed --------------------------


def metrics_queue(customer_ids: Iterable[int]) -> int:
    """Queue customers for the incremental recompute; already queued: nothing new.

    Runs in the caller's transaction: an order that rolls back queues nobody.
    """
    ids = sorted({int(pk) for pk in customer_ids if pk is not None})
    if not ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO segments_metricsqueue (customer_id, queued_at)
            SELECT unnest(%s::bigint[]), now()
            ON CONFLICT (customer_id) DO NOTHING
            """,
            [ids],
        )
        return cursor.rowcount


def metrics_recompute_queued(*, batch: int = 5000) -> int:
    """Recompute the queued customers, ``batch`` at a time; returns how many.

    Each batch is taken off the queue in the transaction that recomputes it, so a
    worker that dies leaves its batch queued; SKIP LOCKED lets two workers share.
    """
    done = 0
    while True:
        with transaction.atomic():
            ids = list(
                MetricsQueue.objects.order_by("queued_at")
                .select_for_update(skip_locked=True)
                .values_list("customer_id", flat=True)[:batch]
            )
            if not ids:
                return done
            metrics_recompute(customer_ids=ids)
            MetricsQueue.objects.filter(customer_id__in=ids).delete()
        done += len(ids)


SCHEDULED_KEY = "segments:metrics-queue-scheduled"


def metrics_queue_receiver(*, customer_ids: Iterable[int], **kwargs: Any) -> None:
    """customer_activity_changed: queue the customers, and the run once committed.

    Coalesced: the first change schedules a run METRICS_QUEUE_DELAY_SECONDS later,
    changes until then only join the queue. The every-few-minutes beat picks up
    whatever a lost schedule (a cache cleared, a broker down) left behind.
    """
    if metrics_queue(customer_ids):
        transaction.on_commit(_schedule_queued_run)


def _schedule_queued_run() -> None:
    from segments.tasks import metrics_recompute_queued_task

    delay = settings.METRICS_QUEUE_DELAY_SECONDS
    if cache.add(SCHEDULED_KEY, True, timeout=delay):
        try:
            metrics_recompute_queued_task.apply_async(countdown=delay)
        except Exception:  # the beat catches up; the order is stored anyway
            logger.warning("Could not schedule the metrics recompute", exc_info=True)
