"""rfm_recompute: every buyer's metrics and RFM scores, against one SQL statement.

The shop of ``bench/_segments_data.py`` (1,000,000 customers, 5,000,000 orders by
default). Measured, in this order:

- the reference: one hand-written statement computing the same figures (orders,
  revenue in PLN at the stored rates, AOV, first and last order, average gap,
  favourite category and brand, next purchase, CLV, R, F and M by quintile per
  store and overall, the named segment) into a temporary table, as an analyst
  would write it, with nothing stored;
- ``metrics_recompute()`` on an empty CustomerMetrics table (the first run: every
  row inserted, every buyer's first RFM segment recorded as a move);
- ``metrics_recompute()`` again with nothing changed (a quiet night);
- ``metrics_recompute()`` after 1 % of the orders changed status (a usual night);
- the incremental recompute of 1,000 queued customers.

The figure is the first full recompute; the reference is the statement. Both run
twice, alternately, and the faster of each counts (the machine's speed drifts).
Goal: within 1.5x the reference and under 30 s.
"""

from __future__ import annotations

import time

from bench import _harness, _segments_data

NAME = "rfm_recompute"
GOAL_RATIO = 1.5
GOAL_S = 30.0

REFERENCE = """
CREATE TEMPORARY TABLE rfm_reference AS
WITH paid AS (
    SELECT o.id, o.customer_id, o.store_id, o.placed_at,
        o.total * coalesce(r.rate, CASE WHEN o.currency = 'PLN' THEN 1 END) AS pln
    FROM orders_order o
    LEFT JOIN segments_currencyrate r ON r.currency = o.currency
    WHERE o.status IN ('paid', 'shipped', 'delivered')
),
per_customer AS (
    SELECT customer_id, store_id, count(*) AS orders, coalesce(sum(pln), 0) AS revenue,
        count(pln) AS priced, min(placed_at) AS first_at, max(placed_at) AS last_at
    FROM paid GROUP BY GROUPING SETS ((customer_id), (customer_id, store_id))
),
per_line AS (
    SELECT paid.customer_id, paid.store_id,
        mode() WITHIN GROUP (ORDER BY l.category_id) FILTER (WHERE
            l.category_id IS NOT NULL AND NOT c.is_sensitive
            AND NOT coalesce(p.is_sensitive, false)) AS category_id,
        mode() WITHIN GROUP (ORDER BY p.brand) FILTER (WHERE p.brand <> ''
            AND NOT p.is_sensitive AND NOT coalesce(c.is_sensitive, false)) AS brand,
        max(paid.placed_at + make_interval(
            days => ceil(p.replenishment_days * l.quantity)::int)) AS runs_out
    FROM paid
    JOIN orders_orderline l ON l.order_id = paid.id
    LEFT JOIN orders_product p ON p.id = l.product_id
    LEFT JOIN orders_category c ON c.id = l.category_id
    GROUP BY GROUPING SETS ((paid.customer_id), (paid.customer_id, paid.store_id))
),
joined AS (
    SELECT pc.*, pl.category_id, pl.brand, pl.runs_out, cu.imported_total_spent,
        (cu.erased_at IS NULL AND cu.restricted_at IS NULL
            AND cu.profiling_objection_at IS NULL) AS ok,
        (pc.last_at AT TIME ZONE 'Europe/Warsaw')::date AS last_day
    FROM per_customer pc
    JOIN customers_customer cu ON cu.id = pc.customer_id
    LEFT JOIN per_line pl ON pl.customer_id = pc.customer_id
        AND coalesce(pl.store_id, 0) = coalesce(pc.store_id, 0)
),
ranked AS (
    SELECT joined.*,
        CASE WHEN ok THEN 1 + 5 * (rank() OVER (PARTITION BY store_id, ok
            ORDER BY last_day) - 1) / count(*) OVER (PARTITION BY store_id, ok) END
            AS r,
        CASE WHEN ok THEN 1 + 5 * (rank() OVER (PARTITION BY store_id, ok
            ORDER BY orders) - 1) / count(*) OVER (PARTITION BY store_id, ok) END
            AS f,
        CASE WHEN ok THEN 1 + 5 * (rank() OVER (PARTITION BY store_id, ok
            ORDER BY revenue) - 1) / count(*) OVER (PARTITION BY store_id, ok) END
            AS m
    FROM joined
)
SELECT x.customer_id, x.store_id, x.orders, round(x.revenue, 2) AS revenue,
    CASE WHEN x.priced > 0 THEN round(x.revenue / x.priced, 2) ELSE 0 END AS aov,
    x.first_at, x.last_at,
    CASE WHEN x.orders > 1 THEN round((extract(epoch FROM x.last_at - x.first_at)
        / 86400 / (x.orders - 1))::numeric, 1) END AS gap,
    CASE WHEN x.ok THEN x.category_id END AS category_id,
    CASE WHEN x.ok THEN coalesce(x.brand, '') ELSE '' END AS brand,
    CASE WHEN NOT x.ok THEN NULL
        WHEN x.orders > 1 THEN ((x.last_at + (x.last_at - x.first_at) / (x.orders - 1))
            AT TIME ZONE 'Europe/Warsaw')::date
        ELSE (x.runs_out AT TIME ZONE 'Europe/Warsaw')::date END AS next_on,
    CASE WHEN x.store_id IS NULL THEN greatest(round(x.revenue, 2),
        coalesce(x.imported_total_spent, 0)) ELSE round(x.revenue, 2) END AS clv,
    x.r, x.f, x.m, coalesce(s.code, '') AS segment
FROM ranked x
LEFT JOIN segments_rfmcell g ON g.recency = x.r AND g.frequency = x.f
LEFT JOIN segments_rfmsegment s ON s.id = g.segment_id
"""


def _reference() -> tuple[float, int]:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")
        started = time.perf_counter()
        cursor.execute(REFERENCE)
        seconds = time.perf_counter() - started
        rows = cursor.rowcount
        transaction.set_rollback(True)
    return seconds, rows


def _recompute_clean() -> None:
    """Back to an empty metrics table, as before a first run."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE segments_customermetrics, segments_rfmsegmentmove,"
            " segments_rfmthreshold"
        )
        cursor.execute("VACUUM ANALYZE segments_customermetrics")


def run() -> dict:
    from decimal import Decimal

    from django.db import connection

    from orders.models import Order
    from segments.metrics import (
        metrics_queue,
        metrics_recompute,
        metrics_recompute_queued,
    )
    from segments.models import CurrencyRate, CustomerMetrics

    data = _segments_data.generate()
    print(f"  generated {data['rows']}", flush=True)
    CurrencyRate.objects.create(currency="EUR", rate=Decimal("4.27"))

    references, firsts = [], []
    for attempt in range(2):
        seconds, reference_rows = _reference()
        references.append(seconds)
        print(f"  reference statement: {seconds:.1f} s, {reference_rows:,} rows")
        if attempt:
            _recompute_clean()
        result = metrics_recompute()
        firsts.append(result.seconds)
        print(
            f"  first recompute: {result.seconds:.1f} s, {result.rows:,} rows,"
            f" {result.inserted:,} inserted, {result.moves:,} moves",
            flush=True,
        )
    if result.rows != reference_rows:
        raise RuntimeError(f"{result.rows} rows, the reference {reference_rows}")
    quiet = metrics_recompute()
    print(f"  again, nothing changed: {quiet.seconds:.1f} s, {quiet.updated} updated")

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE orders_order SET status = 'returned', updated_at = now()"
            " WHERE mod(id, 100) = 7 AND status <> 'returned'"
        )
        changed = cursor.rowcount
    usual = metrics_recompute()
    print(
        f"  after {changed:,} orders changed: {usual.seconds:.1f} s,"
        f" {usual.updated:,} updated, {usual.deleted:,} deleted, {usual.moves:,} moves"
    )

    some = list(
        Order.objects.order_by().values_list("customer_id", flat=True).distinct()[:1000]
    )
    metrics_queue(some)
    started = time.perf_counter()
    metrics_recompute_queued()
    incremental_s = time.perf_counter() - started
    print(f"  incremental, 1,000 queued customers: {incremental_s:.2f} s")

    value, reference = min(firsts), min(references)
    scored = CustomerMetrics.objects.overall().scored().count()
    ratio = value / reference
    verdict = "meets" if ratio <= GOAL_RATIO and value < GOAL_S else "MISSES"
    return _harness.write_result(
        name=NAME,
        value=value,
        unit="s",
        reference=reference,
        conditions=_harness.conditions(
            customers=_segments_data.CUSTOMERS,
            orders=_segments_data.ORDERS,
            generated=data["rows"],
            metrics_rows=result.rows,
            scored_buyers=scored,
            runs={"first": firsts, "reference": references},
            quiet_night_s=round(quiet.seconds, 2),
            usual_night_s=round(usual.seconds, 2),
            usual_night_orders_changed=changed,
            incremental_1000_s=round(incremental_s, 2),
        ),
        summary=(
            f"{verdict} the goal (within {GOAL_RATIO}x the reference and under"
            f" {GOAL_S:.0f} s); a quiet night {quiet.seconds:.1f} s, a usual one"
            f" {usual.seconds:.1f} s, 1,000 queued customers {incremental_s:.2f} s"
        ),
    )
