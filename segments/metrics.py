"""CustomerMetrics and RFM scores, computed in PostgreSQL in a few set-based statements.

One statement computes every buyer's figures, per store and over all stores, into a
temporary table (``metrics_base``); one stores the quintile cuts of that table
(RfmThreshold); one scores it against the cuts (``metrics_fresh``); four more
bring the stored rows in line, writing only what changed, and record who moved
between named RFM segments. Python never loops over customers.

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
  categories; they and the next purchase are over all stores (a store's row has
  its own counts, money, dates and scores);
- the next purchase is expected one average gap after the last order for a buyer
  with two orders or more, otherwise when the last replenishable product bought
  runs out (its replenishment days times the quantity);
- the historical lifetime value is the revenue, or over all stores, what the
  previous platform reported (``imported_total_spent``) if that is more.

The full recompute (nightly) ranks everyone and stores the cuts; the incremental one
recomputes only the customers queued in MetricsQueue and scores them against the
stored cuts, so one new order does not re-rank a million buyers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from orders.models import Order
from segments.models import CurrencyRate, MetricsQueue
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
    orders_without_rate: int | None  # counted by full runs only
    seconds: float


# Quintiles: the cuts are the values at positions ceil(k * n / 5), k = 1..4, of the
# scorable buyers sorted ascending, and a buyer scores 1 plus the number of cuts
# their value is above. That is exactly 1 + floor(5 * (rank - 1) / n) with ties
# sharing the lowest rank (value > cut k iff at least ceil(k * n / 5) values are
# below it), computed with four narrow sorts instead of three window sorts of every
# row. percentile_disc takes the value at ceil(fraction * n) in floating point: a
# hair under k/5 keeps 0.6 * 10 from rounding up to 7.
QUINTILES = [k / 5 - 1e-9 for k in range(1, 5)]


def _score(value: str, cut: Callable[[int], str], compare: str = ">") -> str:
    """SQL for a 1-5 score of ``value``: 1 plus the number of cuts it passes.

    ``cut(i)`` is the SQL of the i-th of four ascending cuts (0-based), never NULL
    (a store with scorable buyers has all four).
    """
    return (
        "(1 + "
        + " + ".join(f"({value} {compare} {cut(i)})::int" for i in range(4))
        + ")"
    )


def _fixed(parameter: str, cast: str) -> Callable[[int], str]:
    return lambda i: f"(%({parameter})s::{cast}[])[{i + 1}]"


def _stored(column: str, cast: str) -> Callable[[int], str]:
    return lambda i: f"th.{column}_{i}"


def _thresholds_typed() -> str:
    """RfmThreshold's JSON cuts as typed columns, once per store, not per row."""
    columns = ", ".join(
        f"({name}->>{i})::{cast} AS {name}_{i}"
        for name, cast in (
            ("recency", "date"),
            ("frequency", "int"),
            ("monetary", "numeric"),
        )
        for i in range(4)
    )
    return f"(SELECT id, store_id, {columns} FROM segments_rfmthreshold)"


def base_sql(*, incremental: bool, rates: int) -> str:
    """Every buyer's figures (or those of %(ids)s), before scoring.

    One row per buyer and store and one over all stores (store_id NULL), with
    ``scorable``, ``last_day`` and ``days_since`` for the scores. ``rates`` is the
    number of currency rates among the parameters (see _rates).
    """
    only = "AND o.customer_id = ANY(%(ids)s)" if incremental else ""
    # Most orders are in the default currency; the others count at their rate
    # (a CASE of the few rates, as parameters) and with no rate, not at all.
    rate = " ".join(
        f"WHEN %(rate_currency_{i})s THEN %(rate_{i})s::numeric" for i in range(rates)
    )
    foreign = (
        f"coalesce(sum(o.total * CASE o.currency {rate} END)"
        " FILTER (WHERE o.currency = ANY(%(rated)s)), 0)"
        if rates
        else "0"
    )
    figures = f"""count(*) AS orders_count,
        coalesce(sum(o.total) FILTER (WHERE o.currency = %(default_currency)s), 0)
            + {foreign} AS revenue,
        count(*) FILTER (
            WHERE o.currency = %(default_currency)s OR o.currency = ANY(%(rated)s)
        ) AS priced,
        min(o.placed_at) AS first_order_at, max(o.placed_at) AS last_order_at"""
    return f"""
    WITH totals AS (
        SELECT o.customer_id, o.store_id, {figures}
        FROM orders_order o
        WHERE o.status = ANY(%(statuses)s) {only}
        GROUP BY o.customer_id, o.store_id
        UNION ALL
        -- Again over all stores: cheaper than GROUPING SETS (one hash table at a
        -- time) or summing the rows above (a materialised CTE).
        SELECT o.customer_id, NULL, {figures}
        FROM orders_order o
        WHERE o.status = ANY(%(statuses)s) {only}
        GROUP BY o.customer_id
    ),
    -- Brands as small numbers: the sort below carries an integer, not the name.
    products AS (
        SELECT p.id, p.replenishment_days, p.is_sensitive,
            CASE WHEN p.brand <> '' THEN dense_rank() OVER (
                PARTITION BY p.brand = '' ORDER BY p.brand
            ) END
                AS brand_no
        FROM orders_product p
    ),
    picks AS (
        SELECT o.customer_id,
            mode() WITHIN GROUP (ORDER BY l.category_id) FILTER (
                WHERE l.category_id IS NOT NULL AND NOT c.is_sensitive
                AND NOT coalesce(p.is_sensitive, false)
            ) AS favourite_category_id,
            mode() WITHIN GROUP (ORDER BY p.brand_no) FILTER (
                WHERE p.brand_no IS NOT NULL AND NOT p.is_sensitive
                AND NOT coalesce(c.is_sensitive, false)
            ) AS favourite_brand_no,
            max(o.placed_at + make_interval(
                days => ceil(p.replenishment_days * l.quantity)::int
            )) AS runs_out_at
        FROM orders_order o
        JOIN orders_orderline l ON l.order_id = o.id
        LEFT JOIN products p ON p.id = l.product_id
        LEFT JOIN orders_category c ON c.id = l.category_id
        WHERE o.status = ANY(%(statuses)s) {only}
        GROUP BY o.customer_id
    ),
    brands AS (
        -- Brand number n is the n-th name in order, as dense_rank() numbered them.
        SELECT array_agg(DISTINCT brand ORDER BY brand) AS names
        FROM orders_product WHERE brand <> ''
    )
    SELECT t.customer_id, t.store_id, t.orders_count,
        round(t.revenue, 2) AS revenue,
        CASE WHEN t.priced > 0 THEN round(t.revenue / t.priced, 2) ELSE 0 END
            AS average_order_value,
        t.first_order_at, t.last_order_at,
        CASE WHEN t.orders_count > 1 THEN round((extract(epoch FROM
            t.last_order_at - t.first_order_at) / 86400
            / (t.orders_count - 1))::numeric, 1)
        END AS average_days_between_orders,
        CASE WHEN ok THEN pk.favourite_category_id END AS favourite_category_id,
        CASE WHEN ok
            THEN coalesce((SELECT names FROM brands)[pk.favourite_brand_no], '')
            ELSE ''
        END AS favourite_brand,
        CASE WHEN NOT ok OR t.store_id IS NOT NULL THEN NULL
            WHEN t.orders_count > 1 THEN ((t.last_order_at + (t.last_order_at
                - t.first_order_at) / (t.orders_count - 1)) AT TIME ZONE %(zone)s)::date
            ELSE (pk.runs_out_at AT TIME ZONE %(zone)s)::date
        END AS predicted_next_order_on,
        CASE WHEN t.store_id IS NULL
            THEN greatest(round(t.revenue, 2), coalesce(cu.imported_total_spent, 0))
            ELSE round(t.revenue, 2)
        END AS clv,
        ok AS scorable,
        (t.last_order_at AT TIME ZONE %(zone)s)::date AS last_day,
        %(today)s::date - (t.last_order_at AT TIME ZONE %(zone)s)::date AS days_since
    FROM totals t
    JOIN customers_customer cu ON cu.id = t.customer_id
    CROSS JOIN LATERAL (
        SELECT cu.erased_at IS NULL AND cu.restricted_at IS NULL
            AND cu.profiling_objection_at IS NULL AS ok
    ) rights
    LEFT JOIN picks pk ON pk.customer_id = t.customer_id AND t.store_id IS NULL
    """


def thresholds_sql() -> str:
    """Store the quintile cuts of the scorable buyers in ``metrics_base``."""
    cuts = "percentile_disc(%(quintiles)s::float8[]) WITHIN GROUP (ORDER BY {})"
    return f"""
    INSERT INTO segments_rfmthreshold
        (store_id, recency, frequency, monetary, buyers, computed_at)
    SELECT store_id,
        to_jsonb({cuts.format("last_day")}),
        to_jsonb({cuts.format("orders_count")}),
        to_jsonb({cuts.format("revenue")}),
        count(*), %(now)s
    FROM pg_temp.metrics_base WHERE scorable
    GROUP BY store_id
    """


def scores_sql() -> str:
    """``metrics_base`` with R, F, M and the named segment: the COLUMNS."""
    if settings.RFM_RECENCY_DAYS:
        # Fewer days since the last order is better: negated, the cuts ascend.
        recency = _score(
            "-days_since", lambda i: f"-{_fixed('recency_days', 'int')(3 - i)}", ">="
        )
    else:
        recency = _score("last_day", _stored("recency", "date"))
    if settings.RFM_FREQUENCY_ORDERS:
        frequency = _score("orders_count", _fixed("frequency_orders", "int"), ">=")
    else:
        frequency = _score("orders_count", _stored("frequency", "int"))
    if settings.RFM_MONETARY:
        monetary = _score("revenue", _fixed("monetary", "numeric"), ">=")
    else:
        monetary = _score("revenue", _stored("monetary", "numeric"))
    # A store never ranked yet (no thresholds) gives no scores until the next
    # full run, unless every dimension has fixed thresholds.
    fixed = (
        settings.RFM_RECENCY_DAYS
        and settings.RFM_FREQUENCY_ORDERS
        and settings.RFM_MONETARY
    )
    ranked = "b.scorable" if fixed else "b.scorable AND th.id IS NOT NULL"
    values = ", ".join(COLUMNS[:12])
    # OFFSET 0 keeps the scored rows a subquery of their own: flattened, each
    # score's expression would be computed again in the join with the grid.
    return f"""
    SELECT {values},
        s.r AS recency_score, s.f AS frequency_score, s.m AS monetary_score,
        coalesce(seg.code, '') AS rfm_segment
    FROM (
        SELECT b.*,
            CASE WHEN {ranked} THEN {recency} END AS r,
            CASE WHEN {ranked} THEN {frequency} END AS f,
            CASE WHEN {ranked} THEN {monetary} END AS m
        FROM pg_temp.metrics_base b
        LEFT JOIN {_thresholds_typed()} th
            ON coalesce(th.store_id, 0) = coalesce(b.store_id, 0)
        OFFSET 0
    ) s
    LEFT JOIN segments_rfmcell cell ON cell.recency = s.r AND cell.frequency = s.f
    LEFT JOIN segments_rfmsegment seg ON seg.id = cell.segment_id
    """


def _rates() -> dict[str, Any]:
    """The currency rates as parameters of base_sql (its CASE names them)."""
    rates = CurrencyRate.objects.exclude(currency=settings.DEFAULT_CURRENCY)
    params: dict[str, Any] = {"rated": []}
    for i, rate in enumerate(rates):
        params["rated"].append(rate.currency)
        params[f"rate_currency_{i}"] = rate.currency
        params[f"rate_{i}"] = rate.rate
    return params


def _fixed_thresholds() -> None:
    for name in ("RFM_RECENCY_DAYS", "RFM_FREQUENCY_ORDERS", "RFM_MONETARY"):
        values = getattr(settings, name)
        if values and (len(values) != 4 or sorted(values) != list(values)):
            raise ImproperlyConfigured(
                f"{name} needs four ascending numbers (or none, for quintiles)."
            )


def _params(ids: list[int] | None = None) -> dict[str, Any]:
    _fixed_thresholds()
    now = timezone.now()
    return {
        "default_currency": settings.DEFAULT_CURRENCY,
        "statuses": [str(s) for s in Order.REVENUE_STATUSES],
        "zone": settings.TIME_ZONE,
        "today": timezone.localdate(now),
        "now": now,
        "ids": ids or [],
        "quintiles": QUINTILES,
        **_rates(),
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


def _first(cursor: Any, params: dict[str, Any]) -> dict[str, int]:
    """Fill the empty segments_customermetrics straight from the scores.

    The first run ever: everyone is seen for the first time and nobody moved (flows
    that start on entering a segment must not fire for the whole base).
    """
    names = ", ".join(COLUMNS)
    cursor.execute(
        f"""
        INSERT INTO segments_customermetrics ({names}, updated_at)
        SELECT {names}, %(now)s FROM ({scores_sql()}) s
        """,
        params,
    )
    inserted = cursor.rowcount
    # The planner's next plans must not take the table for empty.
    cursor.execute("ANALYZE segments_customermetrics")
    return {"moves": 0, "deleted": 0, "updated": 0, "inserted": inserted}


def _apply(cursor: Any, params: dict[str, Any], *, incremental: bool) -> dict[str, int]:
    """Bring segments_customermetrics in line with ``metrics_fresh``."""
    scope = "AND m.customer_id = ANY(%(ids)s)" if incremental else ""
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
        WHERE NOT EXISTS (
            SELECT 1 FROM segments_customermetrics m WHERE {_same_key("f", "m")}
        )
        """,
        params,
    )
    return {
        "moves": moves,
        "deleted": deleted,
        "updated": updated,
        "inserted": cursor.rowcount,
    }


def _orders_without_rate(cursor: Any, params: dict[str, Any]) -> int:
    cursor.execute(
        """
        SELECT count(*) FROM orders_order o
        WHERE o.status = ANY(%(statuses)s)
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
            # Hashing and sorting a million buyers in memory instead of on disk.
            cursor.execute("SET LOCAL work_mem = %s", [settings.METRICS_WORK_MEM])
        for table in ("metrics_base", "metrics_fresh"):
            cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
        cursor.execute(
            "CREATE TEMPORARY TABLE metrics_base ON COMMIT DROP AS "
            + base_sql(incremental=incremental, rates=len(params["rated"])),
            params,
        )
        if not incremental:
            cursor.execute("DELETE FROM segments_rfmthreshold")
            cursor.execute(thresholds_sql(), params)
        cursor.execute("SELECT EXISTS (SELECT 1 FROM segments_customermetrics)")
        (scored_before,) = cursor.fetchone()
        if scored_before:
            cursor.execute(
                "CREATE TEMPORARY TABLE metrics_fresh ON COMMIT DROP AS "
                + scores_sql(),
                params,
            )
            counts = _apply(cursor, params, incremental=incremental)
        else:
            counts = _first(cursor, params)
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE store_id IS NULL)"
            " FROM pg_temp.metrics_base"
        )
        rows, customers = cursor.fetchone()
        # The RFM page's warning counts everyone's; a few customers' would cost
        # a second pass over their orders for nothing.
        without_rate = None if incremental else _orders_without_rate(cursor, params)
        if without_rate is not None:
            # The RFM page warns of them (the figures leave their money out).
            cursor.execute(
                "UPDATE segments_rfmthreshold SET orders_without_rate = %s",
                [without_rate],
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
