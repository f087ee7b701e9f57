"""dashboard: the dashboard page's render time on a million customers.

The shop of ``bench/_segments_data.py`` (``BENCH_SEGMENTS_CUSTOMERS`` customers,
default 1,000,000, and ``BENCH_SEGMENTS_ORDERS`` orders, default 5,000,000, over
three years in two stores, 3 % in EUR). Then, each timed and printed:

- every buyer's metrics and RFM scores (``segments.metrics.metrics_recompute``, as
  the nightly task does: the lifetime values and the RFM mix come from them);
- the dashboard's rollups (``segments.rollups``): every day (the first run and the
  weekly rebuild), the last 35 days (the nightly refresh), the last 2 days (the
  refresh every ten minutes), and the snapshot (cohorts, lifetime values, RFM mix,
  consent coverage);
- ``GET /dashboard/`` through Django's test Client (in process: middleware,
  session, permissions, every panel's queries and the template) as a Manager, for
  all stores and for one store, over the last 30 days and a custom 365 days. Each
  is warmed up once, then timed ``BENCH_DASHBOARD_REPEAT`` times (default 7):
  median and max.

The figure is the slowest scenario's median; the goal is under 1 s. Then, if
``bench/_duplicates.py`` exists (the data-quality benchmark's helper), its
``measure()`` plants duplicates in this database and times
``customers.quality.duplicates_scan()``: goal under 60 s; both go in the result.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import statistics
import time

from bench import _harness, _segments_data

NAME = "dashboard"
REPEAT = int(os.environ.get("BENCH_DASHBOARD_REPEAT", "7"))
GOAL_S = 1.0
SCAN_GOAL_S = 60.0


def _timed(label: str, work):
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    print(f"  {label}: {seconds:.1f} s", flush=True)
    return result, seconds


def _scenarios(main_id: int) -> dict[str, dict[str, str]]:
    from django.utils import timezone

    today = timezone.localdate()
    year = {
        "period": "custom",
        "start": (today - dt.timedelta(days=364)).isoformat(),
        "end": today.isoformat(),
    }
    return {
        "all stores, 30 days": {"period": "30"},
        "all stores, 365 days": year,
        "one store, 30 days": {"period": "30", "store": str(main_id)},
        "one store, 365 days": {**year, "store": str(main_id)},
    }


def _scan_seconds(result: dict) -> float | None:
    """The scan's time in a result of ``bench._duplicates.measure()``."""
    for key in ("duplicate_scan_s", "seconds", "value"):
        if isinstance(result.get(key), int | float):
            return result[key]
    return None


def _duplicate_scan() -> dict | None:
    if not (_harness.BENCH_DIR / "_duplicates.py").exists():
        print("  duplicate scan: skipped (no bench/_duplicates.py yet)", flush=True)
        return None
    module = importlib.import_module("bench._duplicates")
    result = module.measure()
    seconds = _scan_seconds(result)
    shown = f"{seconds:.1f} s" if seconds is not None else "done"
    print(f"  duplicate scan: {shown} {result}", flush=True)
    return result


def run() -> dict:
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings
    from django.urls import reverse

    from customers.roles import MANAGER
    from segments.metrics import metrics_recompute
    from segments.models import CurrencyRate
    from segments.rollups import (
        dashboard_rollups_refresh,
        dashboard_snapshot_refresh,
    )

    data = _segments_data.generate()
    print(f"  generated {data['rows']}", flush=True)
    CurrencyRate.objects.create(currency="EUR", rate=Decimal("4.27"))

    _metrics, metrics_s = _timed("metrics recompute", metrics_recompute)
    full, full_s = _timed(
        "rollups, every day (first run, weekly)",
        lambda: dashboard_rollups_refresh(days=None),
    )
    _nightly, nightly_s = _timed(
        "rollups, last 35 days (nightly)", lambda: dashboard_rollups_refresh(days=35)
    )
    _recent, recent_s = _timed(
        "rollups, last 2 days (every ten minutes)",
        lambda: dashboard_rollups_refresh(days=2),
    )
    _snapshot, snapshot_s = _timed(
        "snapshot (cohorts, lifetime values, RFM mix, consents)",
        dashboard_snapshot_refresh,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute(
            "SELECT (SELECT count(*) FROM segments_dailysales),"
            " (SELECT count(*) FROM segments_dailycustomers),"
            " (SELECT count(*) FROM segments_dailycategorysales),"
            " (SELECT count(*) FROM segments_dailybrandsales),"
            " pg_total_relation_size('segments_dailycustomers')"
        )
        sales, customers, categories, brands, customers_bytes = cursor.fetchone()
    print(
        f"  rollup rows: {sales:,} sales, {customers:,} customers"
        f" ({customers_bytes / 1e6:.1f} MB), {categories:,} categories,"
        f" {brands:,} brands",
        flush=True,
    )

    user = get_user_model().objects.create_user(
        username="bench-manager", password=None, is_staff=True
    )
    user.groups.add(Group.objects.get(name=MANAGER))
    url = reverse("dashboard:index")
    results: dict[str, dict] = {}
    with override_settings(DEBUG=False, ALLOWED_HOSTS=["testserver"]):
        client = Client()
        client.force_login(user)
        for label, query in _scenarios(data["main"].pk).items():
            queries: list[str] = []

            def count(execute, sql, params, many, context, queries=queries):
                queries.append(sql)
                return execute(sql, params, many, context)

            with connection.execute_wrapper(count):
                response = client.get(url, query, secure=True)
            if response.status_code != 200:
                raise RuntimeError(f"{label}: HTTP {response.status_code}")
            if response.context is not None and response.context["form"].errors:
                raise RuntimeError(f"{label}: {response.context['form'].errors}")
            samples = []
            for _ in range(REPEAT):
                started = time.perf_counter()
                client.get(url, query, secure=True)
                samples.append(time.perf_counter() - started)
            results[label] = {
                "median_s": round(statistics.median(samples), 3),
                "max_s": round(max(samples), 3),
                "queries": len(queries),
            }
            print(
                f"  GET /dashboard/ {label}: median"
                f" {statistics.median(samples) * 1000:.0f} ms, max"
                f" {max(samples) * 1000:.0f} ms,"
                f" {len(queries)} queries",
                flush=True,
            )

    scan = _duplicate_scan()
    value = max(result["median_s"] for result in results.values())
    verdict = "meets" if value < GOAL_S else "MISSES"
    scan_s = _scan_seconds(scan) if scan is not None else None
    summary = (
        f"{verdict} the goal of {GOAL_S:.0f} s (slowest scenario's median); rollups:"
        f" every day {full_s:.1f} s, nightly {nightly_s:.1f} s, every ten minutes"
        f" {recent_s:.1f} s, snapshot {snapshot_s:.1f} s"
    )
    if isinstance(scan_s, int | float):
        scan_verdict = "meets" if scan_s < SCAN_GOAL_S else "MISSES"
        summary += (
            f"; duplicate scan {scan_s:.1f} s ({scan_verdict} the goal of"
            f" {SCAN_GOAL_S:.0f} s)"
        )
    return _harness.write_result(
        name=NAME,
        value=value,
        unit="s",
        reference=None,
        conditions=_harness.conditions(
            customers=_segments_data.CUSTOMERS,
            orders=_segments_data.ORDERS,
            generated=data["rows"],
            client="django.test.Client in process, Manager",
            repeat=REPEAT,
            scenarios=results,
            metrics_recompute_s=round(metrics_s, 2),
            rollups={
                "full_s": round(full_s, 2),
                "full_rows": full.rows,
                "nightly_35_days_s": round(nightly_s, 2),
                "recent_2_days_s": round(recent_s, 2),
                "snapshot_s": round(snapshot_s, 2),
                "rows": {
                    "sales": sales,
                    "customers": customers,
                    "customers_mb": round(customers_bytes / 1e6, 1),
                    "categories": categories,
                    "brands": brands,
                },
            },
            duplicate_scan_s=scan_s,
            duplicate_scan_goal_s=SCAN_GOAL_S,
            duplicate_scan=scan,
        ),
        summary=summary,
    )
