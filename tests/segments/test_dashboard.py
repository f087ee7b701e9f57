"""The dashboard's figures: the rollups, and what the panels read from them.

A small shop with hand-computed figures (revenue with a EUR order converted and a
GBP one without a rate, cancelled and returned orders left out, new and returning
customers, the repeat purchase rate, the previous period, one store), then a
generated shop where every figure read from the rollups must equal the same figure
computed straight from the orders, for many periods.
"""

import datetime as dt
import random
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone, translation

from consents.services import consent_grant, consent_text_current, suppression_add
from orders.models import Order
from segments.dashboard import DashboardPeriod
from segments.dashboard_panels import (
    Kpi,
    brands_panel,
    categories_panel,
    cohorts_panel,
    consents_panel,
    customer_figures,
    customers_by_bucket,
    customers_panel,
    kpis,
    lifetime_values_panel,
    revenue_panel,
    rfm_panel,
    sales_figures,
)
from segments.metrics import metrics_recompute
from segments.models import (
    CurrencyRate,
    DailyBrandSales,
    DailyCategorySales,
    DailyCustomers,
    DailySales,
    DashboardRefresh,
    DashboardSnapshot,
)
from segments.rollups import (
    dashboard_refreshes_prune,
    dashboard_rollups_refresh,
    dashboard_snapshot_refresh,
)
from tests.factories.customers import (
    CustomerFactory,
    CustomerIdentityFactory,
    StoreFactory,
)
from tests.factories.orders import (
    CategoryFactory,
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
)

pytestmark = pytest.mark.django_db

PAID, CANCELLED, RETURNED = (
    Order.Status.PAID,
    Order.Status.CANCELLED,
    Order.Status.RETURNED,
)


def today() -> dt.date:
    return timezone.localdate()


def at(days_ago: int, hour: int = 10) -> dt.datetime:
    """Local ``hour`` o'clock ``days_ago`` days before today."""
    day = today() - dt.timedelta(days=days_ago)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def order(customer, store, days_ago, total, currency="PLN", status=PAID, hour=10):
    return OrderFactory(
        customer=customer,
        store=store,
        placed_at=at(days_ago, hour),
        total=Decimal(total),
        currency=currency,
        status=status,
    )


def last(days: int, store=None) -> DashboardPeriod:
    """The last ``days`` days, today included."""
    return DashboardPeriod(today() - dt.timedelta(days=days - 1), today(), store)


@pytest.fixture
def stores(db):
    return {
        "main": StoreFactory(code="main", name="Sklep"),
        "outlet": StoreFactory(code="outlet", name="Outlet"),
    }


@pytest.fixture
def shop(stores):
    """The hand-computed shop: periods are the last 10 days and the 10 before.

    This period (days 9..0 ago): anna (returning: ordered 30 days ago) on days 5
    and 2; bogdan (new) on day 8 in EUR and day 3 in the outlet; celina (new) on
    day 4, her cancelled order on day 6 left out; frank (new) on day 2 in GBP, which
    has no rate; erased ewa and a merged-away record: revenue, not customers.
    The previous period: damian (new) on day 15; his returned order on day 1 is out.
    """
    main, outlet = stores["main"], stores["outlet"]
    CurrencyRate.objects.create(currency="EUR", rate=Decimal("4.00"))
    people = {
        name: CustomerFactory(first_name=name)
        for name in ("anna", "bogdan", "celina", "damian", "frank")
    }
    survivor = CustomerFactory(first_name="survivor")
    people["ewa"] = CustomerFactory(first_name="ewa", erased_at=timezone.now())
    people["merged"] = CustomerFactory(first_name="merged", merged_into=survivor)
    order(people["anna"], main, 30, "100.00")
    order(people["anna"], main, 5, "200.00")
    order(people["anna"], main, 2, "50.00")
    order(people["bogdan"], main, 8, "10.00", currency="EUR")
    order(people["bogdan"], outlet, 3, "60.00")
    order(people["celina"], main, 4, "120.00")
    order(people["celina"], main, 6, "999.00", status=CANCELLED)
    order(people["frank"], main, 2, "100.00", currency="GBP")
    order(people["ewa"], main, 6, "70.00")
    order(people["merged"], main, 7, "30.00")
    order(people["damian"], main, 15, "80.00")
    order(people["damian"], main, 1, "500.00", status=RETURNED)
    dashboard_rollups_refresh(days=None)
    return people


def test_revenue_converts_euros_and_leaves_out_cancelled_and_unrated(shop):
    figures = sales_figures(last(10))

    # 200 + 50 + 10 EUR x 4 + 60 + 120 + 70 (erased) + 30 (merged away); the GBP
    # order counts as an order without revenue, the cancelled one not at all.
    assert figures.revenue == Decimal("570.00")
    assert figures.orders == 8
    assert figures.priced_orders == 7
    assert figures.orders_without_rate == 1
    assert figures.average_order_value == Decimal("81.43")  # 570 / 7


def test_new_returning_and_repeat_rate(shop):
    figures = customer_figures(last(10))

    # anna, bogdan, celina, frank: erased ewa and the merged-away record do not count.
    assert figures.customers == 4
    assert figures.new == 3  # bogdan, celina, frank
    assert figures.returning == 1  # anna
    assert figures.new_repeating == 1  # bogdan came back on day 3
    assert figures.repeat_rate == pytest.approx(50.0)  # (anna + bogdan) / 4


def test_the_previous_period(shop):
    previous = last(10).previous

    assert (previous.start, previous.end) == (at(19).date(), at(10).date())
    assert sales_figures(previous).revenue == Decimal("80.00")
    figures = customer_figures(previous)
    assert (figures.customers, figures.new, figures.returning) == (1, 1, 0)
    assert figures.repeat_rate == 0


def test_one_store(shop, stores):
    main = last(10, stores["main"])
    outlet = last(10, stores["outlet"])

    assert sales_figures(main).revenue == Decimal("510.00")
    assert sales_figures(main).orders == 7
    assert sales_figures(outlet).revenue == Decimal("60.00")
    in_main, in_outlet = customer_figures(main), customer_figures(outlet)
    # In the main store bogdan ordered on one day only: no repeat there.
    assert (in_main.customers, in_main.new, in_main.new_repeating) == (4, 3, 0)
    assert in_main.repeat_rate == pytest.approx(25.0)
    # His outlet order was his first there: new to the outlet.
    assert (in_outlet.customers, in_outlet.new, in_outlet.returning) == (1, 1, 0)


def test_key_figures_compare_with_the_previous_period(shop):
    figures = {kpi.key: kpi for kpi in kpis(last(10))}

    assert figures["revenue"].value == Decimal("570.00")
    assert figures["revenue"].previous == Decimal("80.00")
    assert figures["revenue"].change == pytest.approx(612.5)
    assert figures["revenue"].direction == "up"
    assert figures["customers"].change == pytest.approx(300.0)
    # A rate changes in percentage points.
    assert figures["repeat_rate"].change == pytest.approx(50.0)
    assert figures["returning_customers"].previous == 0
    assert figures["returning_customers"].change is None  # nothing to compare with
    assert figures["returning_customers"].direction == "none"


def test_a_customer_counts_once_in_a_period_however_often(shop):
    # anna ordered on days 5 and 2 of the last 6: five customer-days, four customers.
    assert customer_figures(last(6)).customers == 4  # anna, bogdan, celina, frank
    by_day = customers_by_bucket(last(6), 1)
    assert [customers for customers, _new in by_day] == [1, 1, 1, 2, 0, 0]
    # bogdan's day 3 is not his first: new are celina (day 4) and frank (day 2).
    assert [new for _customers, new in by_day] == [0, 1, 0, 1, 0, 0]


def test_revenue_panel_by_day(shop):
    content = revenue_panel(last(10))

    revenue = [row["revenue"] for row in content.table.rows]
    assert revenue == [
        Decimal(value)
        for value in ("0", "40", "30", "70", "200", "120", "60", "50", "0", "0")
    ]
    assert content.table.totals["revenue"] == Decimal("570.00")
    assert content.table.totals["previous_revenue"] == Decimal("80.00")
    assert content.chart.labels[0] == at(9).date().isoformat()
    assert content.chart.datasets[1].dates[0] == at(19).date().isoformat()


def test_weekly_buckets_for_long_periods(shop):
    period = last(100)
    content = customers_panel(period)

    assert len(content.table.rows) == 15  # 14 weeks and 2 days
    assert content.table.rows[0]["day"] == period.start
    # The whole period counts each customer once (anna: days 30, 5 and 2).
    assert content.table.totals["customers"] == 5
    assert content.table.totals["new"] == 5
    assert sum(row["customers"] for row in content.table.rows) == 6


def _lines(shop, stores):
    main, outlet = stores["main"], stores["outlet"]
    shoes = CategoryFactory(store=main, name="Buty")
    bags = CategoryFactory(store=main, name="Torby")
    outlet_shoes = CategoryFactory(store=outlet, name="Buty")
    nike = ProductFactory(store=main, category=shoes, brand="Nike")
    bag = ProductFactory(store=main, category=bags, brand="")
    outlet_nike = ProductFactory(store=outlet, category=outlet_shoes, brand="Nike")

    def line(order, product, total, quantity="1"):
        OrderLineFactory(
            order=order,
            product=product,
            category=product.category,
            total=Decimal(total),
            quantity=Decimal(quantity),
        )

    # anna's order of day 5 (200 PLN): two lines of shoes and a bag.
    anna = Order.objects.get(customer=shop["anna"], placed_at=at(5))
    line(anna, nike, "100.00")
    line(anna, nike, "50.00", "2")
    line(anna, bag, "50.00")
    # bogdan's EUR order: 10 EUR of shoes; his outlet order: shoes.
    line(Order.objects.get(customer=shop["bogdan"], currency="EUR"), nike, "10.00")
    line(Order.objects.get(customer=shop["bogdan"], store=outlet), outlet_nike, "60.00")
    # celina's cancelled order does not count.
    line(Order.objects.get(customer=shop["celina"], status=CANCELLED), nike, "999.00")


def test_top_categories_and_brands(shop, stores):
    _lines(shop, stores)
    dashboard_rollups_refresh(days=None)

    overall = categories_panel(last(10))
    # Over all stores the outlet's "Buty" counts with the main store's.
    assert [(row["name"], row["revenue"]) for row in overall.table.rows] == [
        ("Buty", Decimal("250.00")),  # 100 + 50 + 10 EUR x 4 + 60
        ("Torby", Decimal("50.00")),
    ]
    assert overall.table.rows[0]["lines"] == 4
    assert overall.table.rows[0]["quantity"] == Decimal("5")
    assert overall.table.rows[0]["share"] == pytest.approx(250 * 100 / 300)
    in_outlet = categories_panel(last(10, stores["outlet"]))
    assert [row["revenue"] for row in in_outlet.table.rows] == [Decimal("60.00")]
    brands = brands_panel(last(10))
    assert [(row["name"], row["revenue"]) for row in brands.table.rows] == [
        ("Nike", Decimal("250.00"))
    ]


def _rows(model):
    fields = [f.name for f in model._meta.concrete_fields if f.name != "id"]
    return sorted(model.objects.values_list(*fields), key=str)


ROLLUPS = (DailySales, DailyCustomers, DailyCategorySales, DailyBrandSales)


def test_refreshing_twice_changes_nothing(shop, stores):
    _lines(shop, stores)
    dashboard_rollups_refresh(days=None)
    first = {model: _rows(model) for model in ROLLUPS}
    dashboard_rollups_refresh(days=None)
    assert {model: _rows(model) for model in ROLLUPS} == first
    # The sliding window gives the same rows as a full rebuild.
    dashboard_rollups_refresh(days=35)
    dashboard_rollups_refresh(days=2)
    assert {model: _rows(model) for model in ROLLUPS} == first
    assert DashboardRefresh.objects.filter(kind="recent").count() == 2


def test_the_first_refresh_rebuilds_everything(shop):
    DashboardRefresh.objects.all().delete()
    DailySales.objects.all().delete()

    result = dashboard_rollups_refresh(days=2)

    assert result.first_day is None
    assert DailySales.objects.filter(day=at(30).date()).exists()


def test_the_recent_refresh_picks_up_todays_orders_and_changes(shop, stores):
    new = order(shop["celina"], stores["main"], 0, "45.00", hour=0)
    order(shop["damian"], stores["main"], 1, "20.00")
    Order.objects.filter(customer=shop["anna"], placed_at=at(2)).update(
        status=CANCELLED
    )

    dashboard_rollups_refresh(days=2)

    figures = customer_figures(last(2))
    # celina and damian ordered before: both returning.
    assert (figures.customers, figures.new, figures.returning) == (2, 0, 2)
    assert sales_figures(last(1)).revenue == new.total
    # The day before yesterday is outside the window: anna's order still counts...
    day_before = DashboardPeriod(at(2).date(), at(2).date())
    assert sales_figures(day_before).revenue == Decimal("50.00")
    # ...until a refresh reaches it.
    dashboard_rollups_refresh(days=3)
    assert sales_figures(day_before).revenue == Decimal("0.00")
    assert customer_figures(day_before).customers == 1  # frank


# --- Rollups equal the live computation --------------------------------------------

LIVE = """
WITH days AS (
    SELECT o.customer_id, (o.placed_at AT TIME ZONE 'Europe/Warsaw')::date AS day
    FROM orders_order o JOIN customers_customer c ON c.id = o.customer_id
    WHERE o.status IN ('paid', 'shipped', 'delivered')
        AND c.erased_at IS NULL AND c.restricted_at IS NULL
        AND c.merged_into_id IS NULL
        AND (%(store)s::bigint IS NULL OR o.store_id = %(store)s)
    GROUP BY 1, 2
),
people AS (
    SELECT customer_id, min(day) AS first,
        (array_agg(day ORDER BY day))[2] AS second,
        bool_or(day BETWEEN %(start)s AND %(end)s) AS active
    FROM days GROUP BY 1
)
SELECT count(*) FILTER (WHERE active),
    count(*) FILTER (WHERE active AND first >= %(start)s),
    count(*) FILTER (WHERE active AND (first < %(start)s OR second <= %(end)s))
FROM people
"""

LIVE_SALES = """
SELECT count(*), coalesce(sum(o.total * CASE o.currency WHEN 'PLN' THEN 1
    WHEN 'EUR' THEN 4.25 END), 0)
FROM orders_order o
WHERE o.status IN ('paid', 'shipped', 'delivered')
    AND (o.placed_at AT TIME ZONE 'Europe/Warsaw')::date BETWEEN %(start)s AND %(end)s
    AND (%(store)s::bigint IS NULL OR o.store_id = %(store)s)
"""


@pytest.fixture
def generated(stores):
    """80 customers, 600 orders over 400 days in two stores, EUR and PLN, some
    cancelled or returned, a few customers erased or restricted."""
    rng = random.Random(7)
    CurrencyRate.objects.create(currency="EUR", rate=Decimal("4.25"))
    customers = [CustomerFactory() for _ in range(80)]
    customers[3].erased_at = timezone.now()
    customers[3].save(update_fields=["erased_at"])
    customers[5].restricted_at = timezone.now()
    customers[5].save(update_fields=["restricted_at"])
    weights = [1 / (index + 1) for index in range(len(customers))]
    for _ in range(600):
        order(
            rng.choices(customers, weights)[0],
            stores["main"] if rng.random() < 0.7 else stores["outlet"],
            rng.randrange(400),
            f"{rng.randrange(10, 500)}.{rng.randrange(100):02d}",
            currency="EUR" if rng.random() < 0.1 else "PLN",
            status=rng.choices([PAID, CANCELLED, RETURNED], [0.85, 0.1, 0.05])[0],
            hour=rng.choice([0, 10, 23]),
        )


def _live(period):
    params = {"start": period.start, "end": period.end, "store": period.store_id}
    with connection.cursor() as cursor:
        cursor.execute(LIVE, params)
        customers, new, repeating = cursor.fetchone()
        cursor.execute(LIVE_SALES, params)
        orders, revenue = cursor.fetchone()
    return customers, new, repeating, orders, Decimal(revenue).quantize(Decimal("0.01"))


def test_rollups_equal_the_live_computation(generated, stores):
    dashboard_rollups_refresh(days=None)
    rng = random.Random(11)
    periods = [last(days) for days in (1, 7, 30, 90, 365, 400)]
    for _ in range(40):
        end = today() - dt.timedelta(days=rng.randrange(400))
        periods.append(
            DashboardPeriod(end - dt.timedelta(days=rng.randrange(200)), end)
        )
    checked = 0
    for base in periods:
        for store in (None, stores["main"], stores["outlet"]):
            period = DashboardPeriod(base.start, base.end, store)
            people = customer_figures(period)
            sales = sales_figures(period)
            customers, new, repeating, orders, revenue = _live(period)
            assert people.customers == customers, period
            assert people.new == new, period
            assert people.returning + people.new_repeating == repeating, period
            assert sales.orders == orders, period
            assert sales.revenue == revenue, period
            checked += customers
    assert checked > 1000  # the periods were not empty


def test_weekly_buckets_equal_the_live_computation(generated, stores):
    dashboard_rollups_refresh(days=None)
    period = DashboardPeriod(today() - dt.timedelta(days=120), today(), stores["main"])
    points = customers_by_bucket(period, 7)
    for index, (customers, new) in enumerate(points):
        start = period.start + dt.timedelta(days=7 * index)
        week = DashboardPeriod(start, min(start + dt.timedelta(days=6), period.end))
        live = _live(DashboardPeriod(week.start, week.end, stores["main"]))
        assert (customers, new) == live[:2]


# --- The snapshot ------------------------------------------------------------------


def _month(months_ago: int, day: int = 3) -> dt.datetime:
    first = today().replace(day=1)
    index = first.year * 12 + first.month - 1 - months_ago
    month = dt.date(index // 12, index % 12 + 1, day)
    return timezone.make_aware(dt.datetime.combine(month, dt.time(12)))


def test_cohorts(stores):
    main = stores["main"]
    # Two customers started two months ago; one came back last month. One started
    # last month and came back this month. An old customer is in no cohort shown.
    first, second, third, old = (CustomerFactory() for _ in range(4))
    for customer, when in (
        (first, _month(2)),
        (first, _month(1)),
        (second, _month(2)),
        (third, _month(1)),
        (third, _month(0, day=1)),
        (old, _month(14)),
        (old, _month(2)),
    ):
        OrderFactory(customer=customer, store=main, placed_at=when, status=PAID)

    dashboard_snapshot_refresh()
    rows = {row["month"]: row for row in cohorts_panel(last(30)).table.rows}

    two_ago, one_ago = _month(2).date().replace(day=1), _month(1).date().replace(day=1)
    assert rows[two_ago]["customers"] == 2
    assert rows[two_ago]["m1"] == 50.0
    assert rows[two_ago]["m2"] == 0.0
    assert rows[two_ago]["m3"] is None  # not yet
    assert rows[one_ago]["customers"] == 1
    assert rows[one_ago]["m1"] == 100.0
    assert len(rows) == 12
    assert sum(row["customers"] for row in rows.values()) == 3


def test_lifetime_values_and_rfm_mix(stores):
    main = stores["main"]
    for total in ("30.00", "80.00", "150.00", "150.00", "12000.00"):
        OrderFactory(
            customer=CustomerFactory(), store=main, total=Decimal(total), status=PAID
        )
    erased = CustomerFactory(erased_at=timezone.now())
    OrderFactory(customer=erased, store=main, total=Decimal("70.00"), status=PAID)
    metrics_recompute()
    dashboard_snapshot_refresh()

    content = lifetime_values_panel(last(30))
    counts = {row["range"]: row["customers"] for row in content.table.rows}
    assert list(counts.values()) == [1, 1, 2, 0, 0, 0, 0, 0, 1]
    assert content.table.totals["customers"] == 5  # not the erased customer
    assert content.table.totals["revenue"] == Decimal("12410.00")
    rfm = rfm_panel(last(30))
    assert rfm.table.totals["customers"] == 5
    assert sum(row["customers"] for row in rfm.table.rows) == 5
    assert rfm.chart.has_data


def test_consent_coverage(stores, purposes):
    main, outlet = stores["main"], stores["outlet"]

    def grant(customer, code):
        consent_grant(
            customer=customer,
            purpose=code,
            text=consent_text_current(purpose=purposes[code], language="pl"),
            source="newsletter_form",
            occurred_at=timezone.now() - dt.timedelta(days=1),
        )

    both = CustomerFactory()
    email_only = CustomerFactory(phone="")
    suppressed = CustomerFactory()
    objected = CustomerFactory()
    nobody = CustomerFactory()
    restricted = CustomerFactory()
    for customer in (both, email_only, suppressed, objected, restricted):
        grant(customer, "email_marketing")
    for customer in (both, email_only, objected):
        grant(customer, "sms_marketing")  # email_only has no phone
    suppression_add(email=suppressed.email, reason="bounce")
    objected.marketing_objection_at = timezone.now()
    objected.save(update_fields=["marketing_objection_at"])
    restricted.restricted_at = timezone.now()
    restricted.save(update_fields=["restricted_at"])
    for customer in (both, email_only, suppressed, objected, nobody):
        CustomerIdentityFactory(customer=customer, store=main)
    CustomerIdentityFactory(customer=both, store=outlet)

    dashboard_snapshot_refresh()

    overall = {row["code"]: row for row in consents_panel(last(7)).table.rows}
    email, sms = overall["email"], overall["sms"]
    assert consents_panel(last(7)).table.totals["reachable"] == 5
    assert (email["reachable"], sms["reachable"]) == (2, 1)  # both, email_only; both
    assert email["share"] == pytest.approx(40.0)
    in_outlet = consents_panel(last(7, outlet)).table
    assert in_outlet.totals["reachable"] == 1
    assert [row["reachable"] for row in in_outlet.rows] == [1, 1]


def test_snapshot_rows_per_store_and_overall(stores):
    dashboard_snapshot_refresh()
    dashboard_snapshot_refresh()
    assert DashboardSnapshot.objects.count() == 3
    assert DashboardSnapshot.objects.filter(store__isnull=True).count() == 1


def test_old_refresh_records_go_but_the_newest_of_each_kind_stays(db):
    long_ago = timezone.now() - dt.timedelta(days=40)
    for kind in ("full", "recent", "recent", "snapshot"):
        DashboardRefresh.objects.create(
            kind=kind, started_at=long_ago, finished_at=long_ago
        )
    DashboardRefresh.objects.create(
        kind="recent", started_at=timezone.now(), finished_at=timezone.now()
    )

    assert dashboard_refreshes_prune() == 2  # both old "recent" ones
    assert sorted(DashboardRefresh.objects.values_list("kind", flat=True)) == [
        "full",
        "recent",
        "snapshot",
    ]


@pytest.mark.parametrize(
    ("kind", "value", "previous", "direction", "change"),
    [
        ("money", Decimal("150.00"), Decimal("100.00"), "up", "+50.0%"),
        ("int", 90, 100, "down", "−10.0%"),
        ("int", 100, 100, "flat", "±0.0%"),
        ("int", 5, 0, "none", "—"),
        ("percent", 42.5, 40.0, "up", "+2.5\u00a0pp"),
    ],
)
def test_a_key_figure_says_which_way_it_went(kind, value, previous, direction, change):
    kpi = Kpi("x", "X", kind, value, previous)
    with translation.override("en"):
        assert kpi.direction == direction
        assert kpi.change_display == change
