"""The dashboard's pre-aggregated figures, rebuilt in PostgreSQL in set-based SQL.

The dashboard (``segments.dashboard``) never reads the orders themselves: over a
million customers and five million orders a year's figures would take seconds. It
reads these rows instead (``segments.models``):

- ``DailySales``: per local day, store and currency, the orders that count as
  revenue and their totals;
- ``DailyCategorySales`` / ``DailyBrandSales``: the same for order lines, per
  category and per brand (the orders count each order once a day per category);
- ``DailyCustomers``: per day, per store and over all stores, the customers who
  ordered, those whose first order it was, and the cumulated gaps back to each
  customer's previous order day (``repeat_gaps``, ``second_order_gaps``), which make
  distinct counts over any period exact (see segments.dashboard);
- ``DashboardSnapshot``: what does not depend on the period, per store and overall:
  monthly cohort retention, the lifetime value distribution, the RFM segment mix and
  the consent coverage.

The rules are those of ``segments.metrics``: an order counts when it is paid, shipped
or delivered (``Order.REVENUE_STATUSES``), whoever placed it (orders stay for
accounting). Customer figures count only customers who may be processed: not erased,
not restricted and not merged into another record. Money is stored in the order's own
currency; the dashboard converts it at the current ``CurrencyRate`` when it reads.

When (the beat schedule; ``manage.py refresh_dashboard`` does the same on demand):

- every ten minutes, the last ``RECENT_DAYS`` days (today and yesterday): orders come
  in all day and their status changes the day after. The dashboard reads today from
  here, so today's figures are at most ten minutes old (a live read of today would
  need the customers' history for the distinct counts: the rollup does that work
  once for every reader);
- every night, the last ``WINDOW_DAYS`` days (returns and cancellations of the last
  weeks) and the snapshot, after the metrics recompute (the RFM mix and the lifetime
  values come from CustomerMetrics);
- every week, and on the first run ever, every day. A day older than the window is
  not revisited until then: an older order returned, a customer erased or merged
  shows in older days after the weekly rebuild.

Each refresh replaces its days in one transaction (readers see the old rows until it
commits) and records a ``DashboardRefresh``; refreshes take turns (an advisory lock).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from consents.models import ConsentPurpose, Suppression
from consents.services import suppression_hash
from customers.models import Customer, Store
from orders.models import Order
from segments.dashboard import month_start
from segments.models import DashboardRefresh, DashboardSnapshot

#: The frequent refresh: today and yesterday.
RECENT_DAYS = 2
#: The nightly refresh's sliding window.
WINDOW_DAYS = 35
#: Cohorts in the retention table (the current month and the eleven before it), and
#: the months after the first order it follows.
COHORT_MONTHS = 12
#: The lifetime value histogram's bucket edges, in the default currency: the last
#: bucket is open ("10,000 and more").
LIFETIME_VALUE_EDGES = (0, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

# Serialises refreshes (a nightly one and a frequent one must not interleave their
# deletes and inserts). Any constant unique to this lock.
_LOCK_KEY = 7_301_002

# Only customers who may be processed count as customers (segments.dashboard).
PROCESSABLE = (
    "c.erased_at IS NULL AND c.restricted_at IS NULL AND c.merged_into_id IS NULL"
)
_DAY = "(o.placed_at AT TIME ZONE %(zone)s)::date"


@dataclass(frozen=True)
class RefreshResult:
    kind: str
    first_day: dt.date | None  # None: every day
    rows: int
    seconds: float


# --- The daily rows -------------------------------------------------------------------


def _since(full: bool) -> str:
    return "" if full else "AND o.placed_at >= %(since)s"


def sales_sql(*, full: bool) -> str:
    """DailySales of every day, or of the days from %(since)s on."""
    return f"""
    INSERT INTO segments_dailysales (day, store_id, currency, orders, revenue)
    SELECT {_DAY}, o.store_id, o.currency, count(*), sum(o.total)
    FROM orders_order o
    WHERE o.status = ANY(%(statuses)s) {_since(full)}
    GROUP BY 1, 2, 3
    """  # noqa: S608 - this module's own constants


def line_sales_sql(*, full: bool) -> str:
    """DailyCategorySales and DailyBrandSales in one pass over the order lines.

    Grouped by category and by brand at once (two hash tables, one scan of the
    lines and their orders); the brand's rows go in through a data-modifying CTE.
    """
    return f"""
    WITH per_line AS MATERIALIZED (
        SELECT {_DAY} AS day, o.store_id, o.currency, l.category_id,
            p.brand, count(*) AS lines, sum(l.quantity) AS quantity,
            sum(l.total) AS revenue,
            grouping(l.category_id) AS by_brand
        FROM orders_order o
        JOIN orders_orderline l ON l.order_id = o.id
        LEFT JOIN orders_product p ON p.id = l.product_id AND p.brand <> ''
        WHERE o.status = ANY(%(statuses)s) {_since(full)}
        GROUP BY GROUPING SETS ((1, 2, 3, l.category_id), (1, 2, 3, p.brand))
    ),
    brands AS (
        INSERT INTO segments_dailybrandsales
            (day, store_id, brand, currency, lines, quantity, revenue)
        SELECT day, store_id, brand, currency, lines, quantity, revenue
        FROM per_line WHERE by_brand = 1 AND brand IS NOT NULL
    )
    INSERT INTO segments_dailycategorysales
        (day, store_id, category_id, currency, lines, quantity, revenue)
    SELECT day, store_id, category_id, currency, lines, quantity, revenue
    FROM per_line WHERE by_brand = 0 AND category_id IS NOT NULL
    """  # noqa: S608 - this module's own constants


def customers_sql(*, full: bool) -> str:
    """DailyCustomers of every day, or of the days from %(first_day)s on.

    Each customer's distinct order days, per store and over all stores, in order:
    the first is a new customer's day; every later one pairs with the day before
    it (the gap in days). A window refresh reads the whole history of the customers
    who ordered in the window only, so their gaps and first days are right.
    """
    touched = (
        ""
        if full
        else f"""
        AND o.customer_id IN (
            SELECT o.customer_id FROM orders_order o
            WHERE o.status = ANY(%(statuses)s) {_since(False)}
        )"""  # noqa: S608 - this module's own constants
    )
    kept = "" if full else "WHERE day >= %(first_day)s"
    return f"""
    WITH days AS (
        SELECT o.customer_id, o.store_id, {_DAY} AS day
        FROM orders_order o
        JOIN customers_customer c ON c.id = o.customer_id
        WHERE o.status = ANY(%(statuses)s) AND {PROCESSABLE} {touched}
        GROUP BY 1, 2, 3
    ),
    scoped AS (
        SELECT customer_id, store_id, day FROM days
        UNION ALL
        SELECT DISTINCT customer_id, NULL::bigint, day FROM days
    ),
    kept AS MATERIALIZED (
        SELECT * FROM (
            SELECT store_id, day, day - lag(day) OVER w AS gap,
                row_number() OVER w AS nth
            FROM scoped
            WINDOW w AS (PARTITION BY customer_id, store_id ORDER BY day)
        ) seq
        {kept}
    ),
    gaps AS (
        SELECT store_id, day, gap, count(*) AS n,
            count(*) FILTER (WHERE nth = 2) AS second
        FROM kept WHERE gap IS NOT NULL
        GROUP BY 1, 2, 3
    ),
    -- Cumulated by gap, then written out densely: element k counts the gaps of
    -- at most k days (a value repeated up to the next gap seen, as text: no row
    -- per element).
    cumulated AS (
        SELECT store_id, day, gap,
            sum(n) OVER w AS n, sum(second) OVER w AS second,
            coalesce(lead(gap) OVER w, gap + 1) - gap AS span
        FROM gaps
        WINDOW w AS (PARTITION BY store_id, day ORDER BY gap)
    ),
    arrays AS (
        SELECT store_id, day,
            string_to_array(rtrim(repeat('0,', min(gap) - 1)
                || string_agg(repeat(n || ',', span), '' ORDER BY gap), ','),
                ',')::int[] AS repeat_gaps,
            string_to_array(rtrim(repeat('0,', min(gap) - 1)
                || string_agg(repeat(second || ',', span), '' ORDER BY gap), ','),
                ',')::int[] AS second_order_gaps
        FROM cumulated
        GROUP BY 1, 2
    )
    INSERT INTO segments_dailycustomers
        (day, store_id, customers, new_customers, repeat_gaps, second_order_gaps)
    SELECT p.day, p.store_id, p.customers, p.new_customers,
        coalesce(a.repeat_gaps, '{{}}'), coalesce(a.second_order_gaps, '{{}}')
    FROM (
        SELECT store_id, day, count(*) AS customers,
            count(*) FILTER (WHERE nth = 1) AS new_customers
        FROM kept
        GROUP BY 1, 2
    ) p
    LEFT JOIN arrays a ON coalesce(a.store_id, 0) = coalesce(p.store_id, 0)
        AND a.day = p.day
    """  # noqa: S608 - this module's own constants


#: The daily tables, and the statement filling each group of them.
ROLLUPS = (
    (("segments_dailysales",), sales_sql),
    (("segments_dailycategorysales", "segments_dailybrandsales"), line_sales_sql),
    (("segments_dailycustomers",), customers_sql),
)


def _local_midnight(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def dashboard_rollups_refresh(*, days: int | None = RECENT_DAYS) -> RefreshResult:
    """Rebuild the daily rows of the last ``days`` days (today included), or all.

    ``days=None`` rebuilds every day; so does the first refresh ever (no full
    rebuild recorded yet). One transaction: readers see the old rows until it
    commits.
    """
    started_at = timezone.now()
    started = time.monotonic()
    full = (
        days is None
        or not DashboardRefresh.objects.filter(kind=DashboardRefresh.Kind.FULL).exists()
    )
    first_day = None if full else timezone.localdate() - dt.timedelta(days=days - 1)
    params: dict[str, Any] = {
        "zone": settings.TIME_ZONE,
        "statuses": [str(status) for status in Order.REVENUE_STATUSES],
        "first_day": first_day,
        "since": _local_midnight(first_day) if first_day else None,
    }
    rows = 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        if full:
            # Hashing every order's days in memory instead of on disk.
            cursor.execute("SET LOCAL work_mem = %s", [settings.METRICS_WORK_MEM])
        for tables, statement in ROLLUPS:
            for table in tables:
                if full:
                    cursor.execute(f"DELETE FROM {table}")  # noqa: S608
                else:
                    cursor.execute(
                        f"DELETE FROM {table} WHERE day >= %(first_day)s",  # noqa: S608
                        params,
                    )
            cursor.execute(statement(full=full), params)
            for table in tables:  # the brands go in through a CTE: counted here
                cursor.execute(
                    f"SELECT count(*) FROM {table}"  # noqa: S608
                    + ("" if full else " WHERE day >= %(first_day)s"),
                    params,
                )
                rows += cursor.fetchone()[0]
        if full:
            # The planner must not take the new tables for empty.
            for tables, _statement in ROLLUPS:
                for table in tables:
                    cursor.execute(f"ANALYZE {table}")
        DashboardRefresh.objects.create(
            kind=DashboardRefresh.Kind.FULL if full else DashboardRefresh.Kind.RECENT,
            first_day=first_day,
            started_at=started_at,
            finished_at=timezone.now(),
            rows=rows,
        )
    return RefreshResult(
        kind=DashboardRefresh.Kind.FULL if full else DashboardRefresh.Kind.RECENT,
        first_day=first_day,
        rows=rows,
        seconds=time.monotonic() - started,
    )


# --- The snapshot ---------------------------------------------------------------------


COHORTS_SQL = f"""
WITH months AS (
    SELECT o.customer_id, o.store_id,
        date_trunc('month', o.placed_at AT TIME ZONE %(zone)s)::date AS month
    FROM orders_order o
    JOIN customers_customer c ON c.id = o.customer_id
    WHERE o.status = ANY(%(statuses)s) AND {PROCESSABLE}
    GROUP BY 1, 2, 3
),
scoped AS (
    SELECT customer_id, store_id, month FROM months
    UNION ALL
    SELECT DISTINCT customer_id, NULL::bigint, month FROM months
),
firsts AS (
    SELECT store_id, month,
        min(month) OVER (PARTITION BY customer_id, store_id) AS cohort
    FROM scoped
)
SELECT store_id, cohort,
    ((extract(year FROM month) - extract(year FROM cohort)) * 12
        + extract(month FROM month) - extract(month FROM cohort))::int AS offset_,
    count(*)
FROM firsts
WHERE cohort >= %(first_cohort)s
    AND month < cohort + make_interval(months => %(months)s)
GROUP BY 1, 2, 3
"""  # noqa: S608 - this module's own constants

LIFETIME_VALUES_SQL = f"""
SELECT m.store_id, width_bucket(m.clv, %(edges)s::numeric[]) AS bucket, count(*),
    sum(m.clv)
FROM segments_customermetrics m
JOIN customers_customer c ON c.id = m.customer_id
WHERE {PROCESSABLE}
GROUP BY 1, 2
"""  # noqa: S608 - this module's own constants

LIFETIME_MEDIANS_SQL = f"""
SELECT m.store_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY m.clv)
FROM segments_customermetrics m
JOIN customers_customer c ON c.id = m.customer_id
WHERE {PROCESSABLE}
GROUP BY 1
"""  # noqa: S608 - this module's own constants

RFM_MIX_SQL = """
SELECT m.store_id, m.rfm_segment, count(*), sum(m.revenue)
FROM segments_customermetrics m
JOIN customers_customer c ON c.id = m.customer_id
WHERE m.recency_score IS NOT NULL AND c.merged_into_id IS NULL
GROUP BY 1, 2
"""

# Reachable as a campaign would reach them (campaigns' deliveries_insert_sql): not
# objected to direct marketing, the channel's consent granted (its purpose active),
# an address, and the address not on the suppression list.
CONSENT_COVERAGE_SQL = f"""
WITH people AS MATERIALIZED (
    SELECT c.id,
        (c.email IS NOT NULL AND c.email <> '' AND c.marketing_objection_at IS NULL
            AND e.customer_id IS NOT NULL AND se.id IS NULL) AS by_email,
        (c.phone <> '' AND c.marketing_objection_at IS NULL
            AND s.customer_id IS NOT NULL AND sp.id IS NULL) AS by_sms
    FROM customers_customer c
    LEFT JOIN consents_consentstate e ON e.customer_id = c.id
        AND e.purpose_id = %(email_purpose)s AND e.granted
    LEFT JOIN consents_consentstate s ON s.customer_id = c.id
        AND s.purpose_id = %(sms_purpose)s AND s.granted
    LEFT JOIN (SELECT DISTINCT unnest(%(email_suppressed)s::bigint[]) AS id) se
        ON se.id = c.id
    LEFT JOIN (SELECT DISTINCT unnest(%(sms_suppressed)s::bigint[]) AS id) sp
        ON sp.id = c.id
    WHERE {PROCESSABLE}
)
SELECT NULL::bigint, count(*), count(*) FILTER (WHERE by_email),
    count(*) FILTER (WHERE by_sms)
FROM people
UNION ALL
SELECT i.store_id, count(*), count(*) FILTER (WHERE by_email),
    count(*) FILTER (WHERE by_sms)
FROM people p
JOIN (SELECT DISTINCT customer_id, store_id FROM customers_customeridentity) i
    ON i.customer_id = p.id
GROUP BY 1
"""  # noqa: S608 - this module's own constants


def _active_purpose(code: str) -> int | None:
    """The purpose's id while it is active: a campaign needs its consent then only."""
    return (
        ConsentPurpose.objects.filter(code=code, is_active=True)
        .values_list("pk", flat=True)
        .first()
    )


def suppressed_customers(*, kind: str, purpose: int | None) -> list[int]:
    """Processable customers with the purpose granted whose address is suppressed.

    The list holds keyed hashes, so each candidate's address is hashed here (as
    campaigns' deliveries_suppress does), and only when the list has any of ``kind``.
    """
    if purpose is None or not Suppression.objects.filter(kind=kind).exists():
        return []
    hashes = set(
        Suppression.objects.filter(kind=kind).values_list("value_hash", flat=True)
    )
    field = "email" if kind == Suppression.Kind.EMAIL else "phone"
    candidates = (
        Customer.objects.processable()
        .filter(
            consent_states__purpose_id=purpose,
            consent_states__granted=True,
            **{f"{field}__gt": ""},
        )
        .values_list("pk", field)
    )
    return [
        pk
        for pk, value in candidates.iterator(chunk_size=10_000)
        if suppression_hash(kind, value) in hashes
    ]


def _scope(store_id: int | None, by_store: dict[int | None, Any], empty: Any) -> Any:
    """The figures of one store (or of all: None), started with ``empty()``."""
    return by_store.setdefault(store_id, empty())


def _cohorts(cursor: Any, params: dict[str, Any]) -> dict[int | None, dict]:
    cursor.execute(COHORTS_SQL, params)
    found: dict[int | None, dict[str, list[int]]] = {}
    for store_id, cohort, offset, customers in cursor.fetchall():
        months = found.setdefault(store_id, {})
        counts = months.setdefault(cohort.isoformat(), [0] * COHORT_MONTHS)
        counts[offset] = customers
    return {
        store_id: {
            "first": params["first_cohort"].isoformat(),
            "months": months,
        }
        for store_id, months in found.items()
    }


def _lifetime_values(cursor: Any, params: dict[str, Any]) -> dict[int | None, dict]:
    cursor.execute(LIFETIME_VALUES_SQL, params)
    found: dict[int | None, dict[str, Any]] = {}
    buckets = len(LIFETIME_VALUE_EDGES)

    def empty() -> dict[str, Any]:
        return {
            "edges": list(LIFETIME_VALUE_EDGES),
            "counts": [0] * buckets,
            "sums": ["0"] * buckets,
            "customers": 0,
            "total": "0",
            "median": None,
        }

    for store_id, bucket, count, total in cursor.fetchall():
        scope = _scope(store_id, found, empty)
        index = max(bucket, 1) - 1  # a negative value (none expected) in the first
        scope["counts"][index] += count
        scope["sums"][index] = str(Decimal(scope["sums"][index]) + (total or 0))
        scope["customers"] += count
        scope["total"] = str(Decimal(scope["total"]) + (total or 0))
    cursor.execute(LIFETIME_MEDIANS_SQL, params)
    for store_id, median in cursor.fetchall():
        scope = _scope(store_id, found, empty)
        scope["median"] = None if median is None else str(round(Decimal(median), 2))
    return found


def _rfm_mix(cursor: Any) -> dict[int | None, dict]:
    cursor.execute(RFM_MIX_SQL)
    found: dict[int | None, dict[str, Any]] = {}
    for store_id, code, customers, revenue in cursor.fetchall():
        scope = _scope(store_id, found, dict)
        scope[code] = {"customers": customers, "revenue": str(revenue or 0)}
    return found


def _consent_coverage(cursor: Any) -> dict[int | None, dict]:
    email = _active_purpose(ConsentPurpose.Code.EMAIL_MARKETING)
    sms = _active_purpose(ConsentPurpose.Code.SMS_MARKETING)
    cursor.execute(
        CONSENT_COVERAGE_SQL,
        {
            "email_purpose": email,
            "sms_purpose": sms,
            "email_suppressed": suppressed_customers(
                kind=Suppression.Kind.EMAIL, purpose=email
            ),
            "sms_suppressed": suppressed_customers(
                kind=Suppression.Kind.PHONE, purpose=sms
            ),
        },
    )
    return {
        store_id: {"customers": customers, "email": by_email, "sms": by_sms}
        for store_id, customers, by_email, by_sms in cursor.fetchall()
    }


def first_cohort(today: dt.date) -> dt.date:
    """The first month of the retention table: eleven months before this one."""
    return month_start(today, -(COHORT_MONTHS - 1))


def dashboard_snapshot_refresh() -> RefreshResult:
    """Recompute the DashboardSnapshot of every store and of all stores together."""
    started_at = timezone.now()
    started = time.monotonic()
    today = timezone.localdate()
    params: dict[str, Any] = {
        "zone": settings.TIME_ZONE,
        "statuses": [str(status) for status in Order.REVENUE_STATUSES],
        "first_cohort": first_cohort(today),
        "months": COHORT_MONTHS,
        "edges": list(LIFETIME_VALUE_EDGES),
    }
    with connection.cursor() as cursor:
        cursor.execute("SET work_mem = %s", [settings.METRICS_WORK_MEM])
        try:
            cohorts = _cohorts(cursor, params)
            lifetime_values = _lifetime_values(cursor, params)
            rfm_mix = _rfm_mix(cursor)
            coverage = _consent_coverage(cursor)
        finally:
            cursor.execute("RESET work_mem")
    now = timezone.now()
    scopes: list[int | None] = [None, *Store.objects.values_list("pk", flat=True)]
    with transaction.atomic():
        for store_id in scopes:
            DashboardSnapshot.objects.update_or_create(
                store_id=store_id,
                defaults={
                    "computed_at": now,
                    "cohorts": cohorts.get(
                        store_id,
                        {"first": params["first_cohort"].isoformat(), "months": {}},
                    ),
                    "lifetime_values": lifetime_values.get(store_id, {}),
                    "rfm_mix": rfm_mix.get(store_id, {}),
                    "consent_coverage": coverage.get(
                        store_id, {"customers": 0, "email": 0, "sms": 0}
                    ),
                },
            )
        DashboardRefresh.objects.create(
            kind=DashboardRefresh.Kind.SNAPSHOT,
            started_at=started_at,
            finished_at=timezone.now(),
            rows=len(scopes),
        )
    return RefreshResult(
        kind=DashboardRefresh.Kind.SNAPSHOT,
        first_day=None,
        rows=len(scopes),
        seconds=time.monotonic() - started,
    )


#: Refresh records older than this are deleted at night (the newest of each kind
#: stays: it says when the figures were last rebuilt).
KEEP_REFRESHES_DAYS = 30


def dashboard_refreshes_prune(*, keep_days: int = KEEP_REFRESHES_DAYS) -> int:
    """Delete old DashboardRefresh records but the newest of each kind; how many."""
    newest = [
        DashboardRefresh.objects.filter(kind=kind)
        .order_by("-finished_at")
        .values_list("pk", flat=True)
        .first()
        for kind in DashboardRefresh.Kind.values
    ]
    deleted, _by_model = (
        DashboardRefresh.objects.filter(
            finished_at__lt=timezone.now() - dt.timedelta(days=keep_days)
        )
        .exclude(pk__in=[pk for pk in newest if pk is not None])
        .delete()
    )
    return deleted
