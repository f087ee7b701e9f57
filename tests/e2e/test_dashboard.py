"""The dashboard in the browser: the Manager signs in, lands on the dashboard, and
every chart is drawn by Chart.js with data, in Polish and in English, with no
console errors; a chart's table opens under it."""

import datetime as dt
import importlib
import re
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps
from django.utils import timezone

from campaigns.models import Campaign, Delivery
from consents.services import consent_grant, consent_text_current
from customers.roles import grant_role_permissions
from segments.metrics import metrics_recompute
from segments.models import CurrencyRate, Segment
from segments.rollups import dashboard_rollups_refresh, dashboard_snapshot_refresh
from tests.factories.campaigns import CampaignFactory, DeliveryFactory
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
from tests.staff import press_sign_in

pytestmark = pytest.mark.e2e

SHOTS = str(Path(tempfile.gettempdir()) / "e2e-dashboard-{}.png")
CHARTS = [
    "revenue",
    "customers",
    "consents",
    "categories",
    "brands",
    "lifetime-values",
    "rfm",
    "campaigns",
]

# Each drawn chart: its kind, how many values it has and whether any is not zero.
CHART_STATE = """
() => Array.from(document.querySelectorAll("canvas[data-dashboard-chart]")).map(
    (canvas) => {
        const chart = window.Chart.getChart(canvas);
        const values = chart ? chart.data.datasets.flatMap((set) => set.data) : [];
        return {
            key: canvas.dataset.dashboardChart,
            drawn: canvas.dataset.chartDrawn === "true" && canvas.width > 0,
            kind: chart ? chart.config.type : null,
            values: values.length,
            nonzero: values.some((value) => value),
        };
    }
)
"""
MONEY_TICKS = """
() => window.Chart.getChart(document.querySelector(
    "canvas[data-dashboard-chart='revenue']")).scales.y.ticks.map((tick) => tick.label)
"""


def at(days_ago: int, hour: int = 11) -> dt.datetime:
    day = timezone.localdate() - dt.timedelta(days=days_ago)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


@pytest.fixture
def dashboard_roles(db):
    """The live server's flush takes the roles; make_staff brings back the older
    grants, this the dashboard's."""
    grant_role_permissions(
        apps,
        "segments",
        importlib.import_module("segments.migrations.0005_dashboard_roles").PERMISSIONS,
    )


@pytest.fixture
def shop(purposes):
    """Two stores, buyers over the last months in PLN and EUR with categories and
    brands, consents, scored metrics, a campaign of last week; figures built."""
    main = StoreFactory(code="main", name="Sklep")
    outlet = StoreFactory(code="outlet", name="Outlet")
    CurrencyRate.objects.create(currency="EUR", rate=Decimal("4.30"))
    shoes = CategoryFactory(store=main, name="Buty")
    bags = CategoryFactory(store=main, name="Torebki")
    products = [
        ProductFactory(store=main, category=shoes, brand="Nike"),
        ProductFactory(store=main, category=bags, brand="Wittchen"),
        ProductFactory(store=outlet, category=None, brand="Puma"),
    ]
    customers = [
        CustomerFactory(first_name=f"Klient{index}", email=f"k{index}@example.pl")
        for index in range(12)
    ]
    for index, customer in enumerate(customers):
        CustomerIdentityFactory(customer=customer, store=main)
        for number in range(1 + index % 3):
            product = products[(index + number) % 3]
            order = OrderFactory(
                customer=customer,
                store=product.store,
                placed_at=at(1 + index * 9 + number * 17),
                total=Decimal(80 + 15 * index),
                currency="EUR" if index % 5 == 4 else "PLN",
            )
            OrderLineFactory(order=order, product=product, total=order.total)
        for code in ("email_marketing",) + (("sms_marketing",) if index % 2 else ()):
            consent_grant(
                customer=customer,
                purpose=code,
                text=consent_text_current(purpose=purposes[code], language="pl"),
                source="newsletter_form",
                occurred_at=timezone.now() - dt.timedelta(days=30),
            )
    segment = Segment.objects.create(name="Wszyscy", kind=Segment.Kind.STATIC)
    campaign = CampaignFactory(
        name="Wyprzedaż",
        segment=segment,
        status=Campaign.Status.SENT,
        started_at=at(6),
        finished_at=at(6),
    )
    for index, customer in enumerate(customers[:8]):
        DeliveryFactory(
            campaign=campaign,
            customer=customer,
            status=Delivery.Status.SENT,
            sent_at=at(6),
            opened_at=at(5) if index < 5 else None,
            clicked_at=at(5) if index < 2 else None,
        )
    metrics_recompute()
    dashboard_rollups_refresh(days=None)
    dashboard_snapshot_refresh()


def test_the_manager_lands_on_a_dashboard_with_every_chart_drawn(
    live_server, page, make_staff, dashboard_roles, shop
):
    make_staff("Manager", username="maria")
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(live_server.url + "/login/")
    page.get_by_label("Nazwa użytkownika").fill("maria")
    page.get_by_label("Hasło").fill("test-pass-123")
    press_sign_in(page, "maria")
    # "/" sends the Manager to the dashboard.
    page.wait_for_url(re.compile(r"/dashboard/$"))
    page.wait_for_selector("canvas[data-chart-drawn='true']")

    charts = page.evaluate(CHART_STATE)
    assert [chart["key"] for chart in charts] == CHARTS
    for chart in charts:
        assert chart["drawn"], chart
        assert chart["values"] > 0, chart
        assert chart["nonzero"], chart
    assert {chart["key"]: chart["kind"] for chart in charts}["rfm"] == "doughnut"
    # Money in the page's language: złoty after the amount in Polish.
    assert any("zł" in label for label in page.evaluate(MONEY_TICKS))
    kpis = page.locator("[data-kpi]")
    assert kpis.count() == 7
    assert page.locator("[data-cohort]").count() == 12
    page.screenshot(path=SHOTS.format("pl"), full_page=True)

    # A chart's numbers as a table, and as CSV.
    revenue = page.locator("#panel-revenue")
    revenue.locator("details.dashtable > summary").click()
    assert revenue.locator("table tbody tr").count() == 30
    assert "/dashboard/export/revenue.csv" in (
        revenue.locator("a[data-csv]").get_attribute("href")
    )

    # The same in English, a year long, for one store.
    page.get_by_role("button", name="EN").click()
    page.wait_for_load_state()
    page.get_by_label("Store", exact=True).select_option(label="Sklep")
    page.get_by_label("Period", exact=True).select_option(label="This year")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"period=year"))
    page.wait_for_selector("canvas[data-chart-drawn='true']")
    assert page.evaluate("document.documentElement.lang") == "en"
    charts = page.evaluate(CHART_STATE)
    assert [chart["key"] for chart in charts] == CHARTS
    assert all(chart["drawn"] and chart["nonzero"] for chart in charts), charts
    assert any("PLN" in label for label in page.evaluate(MONEY_TICKS))
    page.screenshot(path=SHOTS.format("en"), full_page=True)

    # A bad custom period: the form says why.
    page.get_by_label("From", exact=True).fill("2026-02-10")
    page.get_by_label("To", exact=True).fill("2026-02-01")
    page.get_by_role("button", name="Show").click()
    page.wait_for_load_state()
    assert page.locator("[data-error='end']").count() == 1
    assert errors == []
