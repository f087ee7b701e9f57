"""Demo segments for ``seed_demo``; called by ``customers.demo.demo_seed``.

Runs after the orders and consents apps' hooks: the metrics and RFM scores of the
seeded buyers, then a few segments a shop's marketing would make first.
"""

from __future__ import annotations

from django.db import connection
from psycopg import sql

from customers.demo import DemoRun
from segments.metrics import metrics_recompute
from segments.models import CustomerMetrics, Segment
from segments.rollups import dashboard_rollups_refresh, dashboard_snapshot_refresh
from segments.services import segment_create, segment_members_add, segment_rebuild

DEMO_SEGMENTS = [
    (
        "Stali klienci",
        "Co najmniej dwa zamówienia.",
        {
            "op": "and",
            "rules": [{"field": "orders_count", "operator": "gte", "value": 2}],
        },
    ),
    (
        "Do odzyskania",
        "Dobrzy klienci, którzy dawno nie kupowali: na kampanię win-back.",
        {
            "op": "and",
            "rules": [
                {
                    "field": "rfm_segment",
                    "operator": "in",
                    "value": ["at_risk", "cant_lose_them"],
                }
            ],
        },
    ),
    (
        "Najlepsi z Warszawy",
        "Mistrzowie i lojalni klienci z Warszawy.",
        {
            "op": "and",
            "rules": [
                {
                    "field": "rfm_segment",
                    "operator": "in",
                    "value": ["champions", "loyal"],
                },
                {"field": "city", "operator": "equals", "value": "Warszawa"},
            ],
        },
    ),
]


def demo_seed_app(run: DemoRun) -> None:
    """Compute the seeded buyers' metrics, then create and build demo segments."""
    with connection.cursor() as cursor:
        # The plans of the recompute need the seeded tables' statistics.
        for table in run.tables:
            cursor.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    result = metrics_recompute()
    run.counts["customer_metrics"] = result.rows
    run.log(f"Metrics and RFM scores of {result.customers:,} buyers computed")
    for name, description, rules in DEMO_SEGMENTS:
        segment = segment_create(name=name, description=description, rules=rules)
        segment_rebuild(segment=segment)
    vip = segment_create(
        name="VIP",
        description="Lista wybrana ręcznie: najwyższa wartość klienta.",
        kind=Segment.Kind.STATIC,
        schedule=Segment.Schedule.MANUAL,
    )
    best = (
        CustomerMetrics.objects.overall()
        .scored()
        .order_by("-clv")
        .values_list("customer_id", flat=True)[:25]
    )
    segment_members_add(segment=vip, customers=list(best))
    run.counts["segments"] = len(DEMO_SEGMENTS) + 1
    run.log("Demo segments built")


def demo_seed_finish(run: DemoRun) -> None:
    """The dashboard's rollups and snapshot over everything the demo seeded."""
    rollups = dashboard_rollups_refresh(days=None)
    dashboard_snapshot_refresh()
    run.log(f"Dashboard figures built ({rollups.seconds:.1f} s)")
