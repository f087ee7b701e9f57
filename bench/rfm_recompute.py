"""rfm_recompute: every buyer's metrics and RFM scores, against one SQL statement.

The shop of ``bench/_segments_data.py`` (1,000,000 customers, 5,000,000 orders by
default). Measured, in this order:

- the reference: one hand-written statement computing the same figures (orders,
  revenue in PLN at the stored rates, AOV, first and last order, average gap,
  favourite category and brand, next purchase, CLV, R, F and M by quintile per
  store and overall, the named segment) into a temporary table, as an analyst
  would write it, with nothing stored;
- ``metrics_recompute()`` on an empty CustomerMetrics table (the first run ever:
  every row inserted, no moves);
- the reference again, then ``metrics_recompute()`` with nothing changed (a quiet
  night: everything computed and compared, nothing written);
- ``metrics_recompute()`` after 1 % of the orders were returned (a usual night:
  the changed rows written, the segment moves recorded);
- the incremental recompute of 1,000 queued customers.

The figure is the usual night, the full recompute the nightly task runs; the
reference is the faster of the statement's two runs (the machine's speed drifts).
The statement uses the same techniques (per-store and overall sums as two
aggregates, brands as numbers, quintile cuts by percentile_disc); being one
statement, it must materialise the joined figures its cuts and scores both read,
where the service writes them to a temporary table once.
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
WITH totals AS (
    SELECT customer_id, store_id, count(*) AS orders,
        sum(total * CASE WHEN currency = 'PLN' THEN 1 ELSE (SELECT rate FROM
            segments_currencyrate r WHERE r.currency = o.currency) END) AS revenue,
        count(CASE WHEN currency = 'PLN' THEN 1 ELSE (SELECT rate FROM
            segments_currencyrate r WHERE r.currency = o.currency) END) AS priced,
        min(placed_at) AS first_at, max(placed_at) AS last_at
    FROM orders_order o WHERE status IN ('paid', 'shipped', 'delivered')
    GROUP BY customer_id, store_id
    UNION ALL
    SELECT customer_id, NULL, count(*),
        sum(total * CASE WHEN currency = 'PLN' THEN 1 ELSE (SELECT rate FROM
            segments_currencyrate r WHERE r.currency = o.currency) END),
        count(CASE WHEN currency = 'PLN' THEN 1 ELSE (SELECT rate FROM
            segments_currencyrate r WHERE r.currency = o.currency) END),
        min(placed_at), max(placed_at)
    FROM orders_order o WHERE status IN ('paid', 'shipped', 'delivered')
    GROUP BY customer_id
),
products AS (
    SELECT id, replenishment_days, is_sensitive,
        CASE WHEN brand <> '' THEN dense_rank() OVER (
            PARTITION BY brand = '' ORDER BY brand) END AS brand_no
    FROM orders_product
),
per_line AS (
    SELECT o.customer_id,
        mode() WITHIN GROUP (ORDER BY l.category_id) FILTER (WHERE
            l.category_id IS NOT NULL AND NOT c.is_sensitive
            AND NOT coalesce(p.is_sensitive, false)) AS category_id,
        mode() WITHIN GROUP (ORDER BY p.brand_no) FILTER (WHERE p.brand_no IS NOT NULL
            AND NOT p.is_sensitive AND NOT coalesce(c.is_sensitive, false)) AS brand_no,
        max(o.placed_at + make_interval(
            days => ceil(p.replenishment_days * l.quantity)::int)) AS runs_out
    FROM orders_order o
    JOIN orders_orderline l ON l.order_id = o.id
    LEFT JOIN products p ON p.id = l.product_id
    LEFT JOIN orders_category c ON c.id = l.category_id
    WHERE o.status IN ('paid', 'shipped', 'delivered')
    GROUP BY o.customer_id
),
joined AS MATERIALIZED (
    SELECT t.*, pl.category_id, pl.runs_out, cu.imported_total_spent,
        (SELECT array_agg(DISTINCT brand ORDER BY brand) FROM orders_product
            WHERE brand <> '')[pl.brand_no] AS brand,
        (cu.erased_at IS NULL AND cu.restricted_at IS NULL
            AND cu.profiling_objection_at IS NULL) AS ok,
        (t.last_at AT TIME ZONE 'Europe/Warsaw')::date AS last_day
    FROM totals t
    JOIN customers_customer cu ON cu.id = t.customer_id
    LEFT JOIN per_line pl ON pl.customer_id = t.customer_id AND t.store_id IS NULL
),
cuts AS (
    SELECT store_id,
        percentile_disc(ARRAY[0.199999999, 0.399999999, 0.599999999, 0.799999999])
            WITHIN GROUP (ORDER BY last_day) AS r,
        percentile_disc(ARRAY[0.199999999, 0.399999999, 0.599999999, 0.799999999])
            WITHIN GROUP (ORDER BY orders) AS f,
        percentile_disc(ARRAY[0.199999999, 0.399999999, 0.599999999, 0.799999999])
            WITHIN GROUP (ORDER BY revenue) AS m
    FROM joined WHERE ok GROUP BY store_id
),
scored AS (
    SELECT j.*,
        CASE WHEN j.ok THEN 1 + (j.last_day > k.r[1])::int + (j.last_day > k.r[2])::int
            + (j.last_day > k.r[3])::int + (j.last_day > k.r[4])::int END AS r,
        CASE WHEN j.ok THEN 1 + (j.orders > k.f[1])::int + (j.orders > k.f[2])::int
            + (j.orders > k.f[3])::int + (j.orders > k.f[4])::int END AS f,
        CASE WHEN j.ok THEN 1 + (j.revenue > k.m[1])::int + (j.revenue > k.m[2])::int
            + (j.revenue > k.m[3])::int + (j.revenue > k.m[4])::int END AS m
    FROM joined j LEFT JOIN cuts k ON coalesce(k.store_id, 0) = coalesce(j.store_id, 0)
    OFFSET 0
)
SELECT x.customer_id, x.store_id, x.orders, round(coalesce(x.revenue, 0), 2) AS revenue,
    CASE WHEN x.priced > 0 THEN round(x.revenue / x.priced, 2) ELSE 0 END AS aov,
    x.first_at, x.last_at,
    CASE WHEN x.orders > 1 THEN round((extract(epoch FROM x.last_at - x.first_at)
        / 86400 / (x.orders - 1))::numeric, 1) END AS gap,
    CASE WHEN x.ok THEN x.category_id END AS category_id,
    CASE WHEN x.ok THEN coalesce(x.brand, '') ELSE '' END AS brand,
    CASE WHEN NOT x.ok OR x.store_id IS NOT NULL THEN NULL
        WHEN x.orders > 1 THEN ((x.last_at + (x.last_at - x.first_at) / (x.orders - 1))
            AT TIME ZONE 'Europe/Warsaw')::date
        ELSE (x.runs_out AT TIME ZONE 'Europe/Warsaw')::date END AS next_on,
    CASE WHEN x.store_id IS NULL THEN greatest(round(coalesce(x.revenue, 0), 2),
        coalesce(x.imported_total_spent, 0)) ELSE round(coalesce(x.revenue, 0), 2)
    END AS clv,
    x.r, x.f, x.m, coalesce(s.code, '') AS segment
FROM scored x
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

    references = []

    def reference() -> None:
        seconds, rows = _reference()
        references.append(seconds)
        print(f"  reference statement: {seconds:.1f} s, {rows:,} rows", flush=True)
        return rows

    def recompute(label: str):
        result = metrics_recompute()
        print(
            f"  {label}: {result.seconds:.1f} s, {result.rows:,} rows,"
            f" {result.inserted:,} inserted, {result.updated:,} updated,"
            f" {result.deleted:,} deleted, {result.moves:,} moves",
            flush=True,
        )
        return result

    reference_rows = reference()
    first = recompute("first run (empty table)")
    if first.rows != reference_rows:
        raise RuntimeError(f"{first.rows} rows, the reference {reference_rows}")
    reference()
    quiet = recompute("a quiet night (nothing changed)")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE orders_order SET status = 'returned', updated_at = now()"
            " WHERE mod(id, 100) = 7 AND status <> 'returned'"
        )
        changed = cursor.rowcount
    usual = recompute(f"a usual night ({changed:,} orders changed)")

    # The customers of the latest orders, as a day's changes would queue them.
    latest = Order.objects.order_by("-placed_at").values_list("customer_id", flat=True)
    some = set()
    for customer_id in latest.iterator():
        some.add(customer_id)
        if len(some) == 1000:
            break
    metrics_queue(some)
    started = time.perf_counter()
    metrics_recompute_queued()
    incremental_s = time.perf_counter() - started
    print(f"  incremental, 1,000 queued customers: {incremental_s:.2f} s")

    value, reference_s = usual.seconds, min(references)
    scored = CustomerMetrics.objects.overall().scored().count()
    ratio = value / reference_s
    verdict = "meets" if ratio <= GOAL_RATIO and value < GOAL_S else "MISSES"
    return _harness.write_result(
        name=NAME,
        value=value,
        unit="s",
        reference=reference_s,
        conditions=_harness.conditions(
            customers=_segments_data.CUSTOMERS,
            orders=_segments_data.ORDERS,
            generated=data["rows"],
            metrics_rows=usual.rows,
            scored_buyers=scored,
            references_s=[round(r, 2) for r in references],
            first_run_s=round(first.seconds, 2),
            quiet_night_s=round(quiet.seconds, 2),
            usual_night={
                "s": round(usual.seconds, 2),
                "orders_changed": changed,
                "updated": usual.updated,
                "moves": usual.moves,
            },
            incremental_1000_s=round(incremental_s, 2),
        ),
        summary=(
            f"{verdict} the goal (within {GOAL_RATIO}x the reference and under"
            f" {GOAL_S:.0f} s); first run {first.seconds:.1f} s, a quiet night"
            f" {quiet.seconds:.1f} s, 1,000 queued customers {incremental_s:.2f} s"
        ),
    )
