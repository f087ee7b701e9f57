"""segment_preview: the builder's live count for a three-condition rule.

The shop of ``bench/_segments_data.py`` (1,000,000 customers, 5,000,000 orders by
default), its metrics computed first (not timed). Measured: ``segment_preview()``
for "orders ≥ 2 AND city is Warszawa AND bought category X in the last 365 days"
(``_segments_data.three_conditions``): rules validated and compiled, the count
run. Warmed up once, then timed ``BENCH_SEGMENT_PREVIEW_REPEAT`` times (default
7); the figure is the median. Reference: the goal of 1 s. The plan is printed.
"""

from __future__ import annotations

import os
import statistics
import time

from bench import _harness, _segments_data

NAME = "segment_preview"
REPEAT = int(os.environ.get("BENCH_SEGMENT_PREVIEW_REPEAT", "7"))
GOAL_S = 1.0


def run() -> dict:
    from django.db import connection

    from segments.metrics import metrics_recompute
    from segments.services import segment_customers, segment_preview

    data = _segments_data.generate()
    print(f"  generated {data['rows']}", flush=True)
    computed = metrics_recompute()
    print(f"  metrics computed in {computed.seconds:.1f} s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE segments_customermetrics")
    rules = _segments_data.three_conditions(data["category_id"])
    count = segment_preview(rules)
    timings = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        segment_preview(rules)
        timings.append(time.perf_counter() - started)
    query, params = segment_customers(rules).order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM ({query}) q", params
        )
        plan = "\n    ".join(row[0] for row in cursor.fetchall())
    print(f"    {plan}")
    value = statistics.median(timings)
    verdict = "meets" if value < GOAL_S else "MISSES"
    return _harness.write_result(
        name=NAME,
        value=value * 1000,
        unit="ms",
        reference=GOAL_S * 1000,
        conditions=_harness.conditions(
            customers=_segments_data.CUSTOMERS,
            orders=_segments_data.ORDERS,
            generated=data["rows"],
            rule=rules,
            matched=count,
            timings_ms=[round(t * 1000, 1) for t in timings],
        ),
        summary=(
            f"{verdict} the goal (under {GOAL_S * 1000:.0f} ms);"
            f" {count:,} customers match"
        ),
    )
