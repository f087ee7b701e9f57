"""The dashboard page: who sees it, the filters, its panels, and the CSV downloads."""

import csv
import datetime as dt
import importlib
import io
import json
import re
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign, Delivery
from customers.roles import grant_role_permissions
from segments.metrics import metrics_recompute
from segments.models import (
    CurrencyRate,
    DashboardRefresh,
    DashboardSnapshot,
    Segment,
)
from segments.rollups import dashboard_rollups_refresh, dashboard_snapshot_refresh
from segments.tasks import (
    dashboard_nightly_task,
    dashboard_rebuild_task,
    dashboard_refresh_task,
)
from tests.factories.campaigns import CampaignFactory, DeliveryFactory
from tests.factories.customers import CustomerFactory, StoreFactory
from tests.factories.orders import OrderFactory, OrderLineFactory

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("dashboard:index")


def export(key):
    return reverse("dashboard:export", args=[key])


@pytest.fixture(autouse=True)
def dashboard_roles(db):
    """The roles as the migrations leave them (a flushed database loses them)."""
    grant_role_permissions(
        apps,
        "segments",
        importlib.import_module("segments.migrations.0005_dashboard_roles").PERMISSIONS,
    )


@pytest.fixture
def manager(client, make_staff):
    user = make_staff("Manager", username="maria")
    client.force_login(user)
    return user


def at(days_ago: int) -> dt.datetime:
    day = timezone.localdate() - dt.timedelta(days=days_ago)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(11)))


@pytest.fixture
def shop(store):
    """Three buyers this month, one the month before; a EUR order; figures built."""
    CurrencyRate.objects.create(currency="EUR", rate=Decimal("4.00"))
    anna, bogdan, celina = (CustomerFactory() for _ in range(3))
    for customer, days_ago, total, currency in (
        (anna, 40, "100.00", "PLN"),
        (anna, 3, "200.00", "PLN"),
        (bogdan, 2, "25.00", "EUR"),
        (celina, 1, "50.00", "PLN"),
    ):
        order = OrderFactory(
            customer=customer,
            store=store,
            placed_at=at(days_ago),
            total=Decimal(total),
            currency=currency,
        )
        OrderLineFactory(order=order, total=Decimal(total), product__brand="Marka")
    metrics_recompute()
    dashboard_rollups_refresh(days=None)
    dashboard_snapshot_refresh()
    return {"anna": anna, "bogdan": bogdan, "celina": celina}


@pytest.mark.parametrize("role", ["Manager", "Marketing"])
def test_manager_and_marketing_see_the_dashboard(client, make_staff, role, shop):
    client.force_login(make_staff(role))
    response = client.get(DASHBOARD)
    assert response.status_code == 200
    assert response.templates[0].name == "segments/dashboard.html"
    # The navigation leads there first.
    nav = response.content.decode().split('class="mainnav"')[1]
    assert nav.index(f'href="{DASHBOARD}"') < nav.index(reverse("customers:list"))


@pytest.mark.parametrize("role", ["Support", "Data protection officer"])
def test_support_and_the_dpo_do_not(client, make_staff, role):
    client.force_login(make_staff(role))
    assert client.get(DASHBOARD).status_code == 403
    assert client.get(export("summary")).status_code == 403
    assert (
        f'href="{DASHBOARD}"'
        not in client.get(reverse("customers:list")).content.decode()
    )


def test_anonymous_goes_to_the_login(client):
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert client.get(export("summary")).status_code == 302


@pytest.mark.parametrize(
    ("role", "target"),
    [
        ("Manager", DASHBOARD),
        ("Marketing", DASHBOARD),
        ("Support", reverse("customers:list")),
        ("Data protection officer", reverse("customers:list")),
    ],
)
def test_home_sends_each_role_to_its_start(client, make_staff, role, target):
    client.force_login(make_staff(role))
    response = client.get("/")
    assert response.status_code == 302
    assert response.url == target


def test_home_sends_the_anonymous_to_the_customer_list_and_so_the_login(client):
    response = client.get("/")
    assert response.url == reverse("customers:list")


def _kpi(response, key):
    return next(
        k
        for k in response.context["panels"][0]["content"].extra["kpis"]
        if k.key == key
    )


def test_the_page_shows_the_periods_figures(client, manager, shop, store):
    response = client.get(DASHBOARD, {"period": "7"})
    assert response.status_code == 200
    period = response.context["period"]
    assert period.days == 7
    assert period.end == timezone.localdate()
    assert _kpi(response, "revenue").value == Decimal("350.00")  # 200 + 25 EUR x 4
    assert _kpi(response, "customers").value == 3
    assert _kpi(response, "new_customers").value == 2
    assert _kpi(response, "returning_customers").value == 1
    keys = [item["panel"].key for item in response.context["panels"]]
    assert keys == [
        "summary",
        "revenue",
        "customers",
        "consents",
        "categories",
        "brands",
        "cohorts",
        "lifetime-values",
        "rfm",
        "campaigns",
    ]
    # Every panel with data hands its chart to the page's script.
    charts = json.loads(
        response.content.decode()
        .split('<script id="dashboard-charts" type="application/json">')[1]
        .split("</script>")[0]
    )["charts"]
    # Consent coverage has no consents to draw, the cohorts are a table, and no
    # campaign was sent.
    assert set(charts) == {
        "revenue",
        "customers",
        "categories",
        "brands",
        "lifetime-values",
        "rfm",
    }
    assert charts["revenue"]["format"] == "money"
    assert charts["revenue"]["datasets"][0]["data"][-4:] == [200.0, 100.0, 50.0, 0.0]
    html = response.content.decode()
    for key in charts:
        assert f'data-dashboard-chart="{key}"' in html
    assert f'href="{export("revenue")}?period=7"' in html


def test_one_store(client, manager, shop, store):
    other = StoreFactory(code="other")
    dashboard_snapshot_refresh()
    response = client.get(DASHBOARD, {"period": "30", "store": other.pk})
    assert response.context["period"].store == other
    assert _kpi(response, "revenue").value == Decimal("0.00")
    response = client.get(DASHBOARD, {"period": "30", "store": store.pk})
    assert _kpi(response, "revenue").value == Decimal("350.00")


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        (
            {"period": "custom", "start": "2026-02-10", "end": "2026-02-01"},
            "end",
            "order",
        ),
        ({"period": "custom", "end": "2026-02-01"}, "start", "required"),
        ({"period": "custom", "start": "2026-02-01"}, "end", "required"),
        (
            {"period": "custom", "start": "1999-12-01", "end": "2000-01-05"},
            "start",
            "too_early",
        ),
        (
            {"period": "custom", "start": "2000-01-01", "end": "2009-01-05"},
            "end",
            "too_long",
        ),
        (
            {"period": "custom", "start": "soon", "end": "2026-02-01"},
            "start",
            "invalid",
        ),
        ({"period": "fortnight"}, "period", "invalid_choice"),
    ],
)
def test_a_bad_period_says_why(client, manager, query, field, code):
    response = client.get(DASHBOARD, query)
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors[field]
    assert form.has_error(field, code)
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "data-filter-errors" in html
    # The figures shown meanwhile are the last 30 days of all stores.
    assert response.context["period"].days == 30
    # The CSV of a bad period goes back to the page, which says why.
    response = client.get(export("summary"), query)
    assert response.status_code == 302
    assert response.url.startswith(DASHBOARD + "?")


def test_a_period_ending_after_today(client, manager):
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    response = client.get(
        DASHBOARD, {"period": "custom", "start": "2026-01-01", "end": tomorrow}
    )
    assert response.context["form"].has_error("end", "future")


def test_a_custom_period_and_dates_alone(client, manager, shop):
    end = timezone.localdate() - dt.timedelta(days=2)
    start = end - dt.timedelta(days=4)
    response = client.get(DASHBOARD, {"period": "custom", "start": start, "end": end})
    period = response.context["period"]
    assert (period.start, period.end) == (start, end)
    assert period.previous.end == start - dt.timedelta(days=1)
    # Dates without a period choice mean "from - to".
    response = client.get(DASHBOARD, {"start": start, "end": end})
    assert (response.context["period"].start, response.context["period"].end) == (
        start,
        end,
    )


def _csv(response):
    body = response.content.decode("utf-8")
    assert body.startswith("\ufeff")  # Excel reads it as UTF-8
    return list(csv.reader(io.StringIO(body[1:])))


def test_csv_of_the_key_figures(client, manager, shop, store):
    response = client.get(export("summary"), {"period": "7", "store": store.pk})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = timezone.localdate()
    start = today - dt.timedelta(days=6)
    assert (
        f"dashboard-summary-sklep-{start:%Y-%m-%d}-{today:%Y-%m-%d}.csv"
        in (response["Content-Disposition"])
    )
    rows = _csv(response)
    assert len(rows[0]) == 4
    figures = rows[1:]
    assert figures[0][1:3] == ["350.00", "0.00"]  # revenue, the previous period's
    assert figures[1][1:3] == ["3", "0"]  # orders
    assert [row[1] for row in figures] == [
        "350.00",
        "3",
        "116.67",
        "3",
        "2",
        "1",
        "33.33",
    ]


def test_csv_of_every_panel(client, manager, shop):
    for key in (
        "revenue",
        "customers",
        "consents",
        "categories",
        "brands",
        "cohorts",
        "lifetime-values",
        "rfm",
        "campaigns",
    ):
        response = client.get(export(key), {"period": "30"})
        assert response.status_code == 200, key
        rows = _csv(response)
        assert rows[0], key
    revenue = _csv(client.get(export("revenue"), {"period": "7"}))
    assert len(revenue) == 1 + 7 + 1  # header, a line a day, the total
    assert revenue[-1][1] == "350.00"
    assert revenue[4][0] == (timezone.localdate() - dt.timedelta(days=3)).isoformat()
    assert revenue[4][1] == "200.00"


def test_csv_of_an_unknown_panel(client, manager):
    assert client.get(export("nothing")).status_code == 404


def test_orders_without_a_rate_are_warned_of(client, manager, shop, store):
    OrderFactory(customer=shop["anna"], store=store, placed_at=at(1), currency="GBP")
    dashboard_rollups_refresh(days=3)
    response = client.get(DASHBOARD, {"period": "7"})
    assert 'data-orders-without-rate="1"' in response.content.decode()


def test_not_computed_yet(client, manager):
    response = client.get(DASHBOARD)
    assert response.status_code == 200
    assert "data-not-computed" in response.content.decode()


def test_the_campaign_results_panel(client, manager, shop, purposes):
    segment = Segment.objects.create(name="Wszyscy", kind=Segment.Kind.STATIC)
    campaign = CampaignFactory(
        segment=segment,
        status=Campaign.Status.SENT,
        started_at=at(5),
        finished_at=at(5),
    )
    CampaignFactory(
        segment=segment,
        status=Campaign.Status.SENT,
        started_at=at(50),
        finished_at=at(49),
    )
    for index, customer in enumerate(shop.values()):
        DeliveryFactory(
            campaign=campaign,
            customer=customer,
            status=Delivery.Status.SENT,
            sent_at=at(5),
            opened_at=at(4) if index < 2 else None,
            clicked_at=at(4) if index < 1 else None,
        )
    response = client.get(DASHBOARD, {"period": "7"})
    content = response.context["panels"][-1]["content"]
    assert [row["name"] for row in content.table.rows] == [campaign.name]
    row = content.table.rows[0]
    assert row["sent"] == 3
    assert row["open_rate"] == pytest.approx(200 / 3)
    assert row["click_rate"] == pytest.approx(100 / 3)
    # anna's order came after her click, bogdan's (25 EUR) after his open.
    assert row["conversions"] == 2
    assert row["revenue"] == Decimal("300.00")
    rows = _csv(client.get(export("campaigns"), {"period": "7"}))
    assert rows[1][0] == campaign.name


def test_panels_with_a_permission_of_their_own(client, make_staff, shop):
    user = make_staff(username="only-the-dashboard")
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    client.force_login(user)
    response = client.get(DASHBOARD)
    keys = [item["panel"].key for item in response.context["panels"]]
    assert "campaigns" not in keys  # campaigns.view_campaign
    assert "rfm" not in keys  # segments.view_customermetrics
    assert "revenue" in keys
    assert client.get(export("campaigns")).status_code == 403


def test_the_page_reads_a_bounded_number_of_queries(
    client, manager, shop, django_assert_max_num_queries
):
    with django_assert_max_num_queries(32):
        client.get(DASHBOARD, {"period": "year"})


def test_the_cohort_table_is_shaded_by_share(client, manager, shop):
    html = client.get(DASHBOARD).content.decode()
    levels = re.findall(r'class="cohort heat-([^"]+)"', html)
    assert levels
    assert all(level.isdigit() and 0 <= int(level) <= 9 for level in levels)


@pytest.mark.parametrize(
    "model",
    [
        "dailysales",
        "dailycustomers",
        "dailycategorysales",
        "dailybrandsales",
        "dashboardsnapshot",
        "dashboardrefresh",
    ],
)
def test_the_manager_reads_the_rollups_in_the_admin(client, manager, shop, model):
    response = client.get(reverse(f"admin:segments_{model}_changelist"))
    assert response.status_code == 200
    assert not response.context["has_add_permission"]


def test_the_command_and_the_tasks(shop, store):
    out = io.StringIO()
    call_command("refresh_dashboard", "--full", stdout=out)
    assert "Rebuilt every day" in out.getvalue()
    call_command("refresh_dashboard", "--days", "3", "--no-snapshot", stdout=out)
    assert "Rebuilt the days from" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("refresh_dashboard", "--days", "0")

    DashboardRefresh.objects.all().delete()
    DashboardSnapshot.objects.all().delete()
    assert dashboard_refresh_task()["kind"] == "full"  # the first run ever
    assert DashboardSnapshot.objects.count() == 2  # the store and all stores
    assert dashboard_refresh_task()["kind"] == "recent"
    assert dashboard_nightly_task()["scopes"] == 2
    assert dashboard_rebuild_task()["kind"] == "full"


@pytest.mark.parametrize(("role", "shown"), [("Manager", True), ("Marketing", False)])
def test_the_data_quality_link(client, make_staff, role, shown):
    client.force_login(make_staff(role))
    html = client.get(DASHBOARD).content.decode()
    assert (f'href="{reverse("quality:index")}"' in html) is shown
