"""The RFM page: the R-by-F heat map, named segments, moves and the cell lists."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone, translation

from consents.models import AccessLog
from segments import views
from segments.metrics import metrics_queue, metrics_recompute
from segments.models import CustomerMetrics, RfmSegmentMove
from tests.factories.customers import CustomerFactory, StoreFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db

RFM = reverse("segments:rfm")
CUSTOMERS = reverse("segments:rfm_customers")

# name: (days since the last order, orders); every order is 100 PLN. Five buyers,
# so each rank is its own quintile: R by the last order, F by the count (ties
# share the lowest rank: the three one-order buyers all get F 1).
BUYERS = {
    "anna": (1, 3),  # R5 F5 M5: champions
    "bogdan": (10, 2),  # R4 F4 M4: loyal
    "celina": (20, 1),  # R3 F1 M1: about to sleep
    "damian": (40, 1),  # R2 F1 M1: hibernating
    "ewa": (80, 1),  # R1 F1 M1: lost
}


@pytest.fixture(autouse=True)
def _english(client):
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def marketing(client, make_staff):
    user = make_staff("Marketing", username="magda")
    client.force_login(user)
    return user


def _orders(customer, store, last_days, count):
    now = timezone.now()
    for index in range(count):
        OrderFactory(
            customer=customer,
            store=store,
            placed_at=now - timedelta(days=last_days + 30 * index),
            total=Decimal("100.00"),
        )


@pytest.fixture
def shop(store):
    customers = {}
    for name, (days, count) in BUYERS.items():
        customers[name] = CustomerFactory(first_name=name.title())
        _orders(customers[name], store, days, count)
    metrics_recompute()
    return customers


def cell(response, r, f):
    return next(
        c
        for row in response.context["grid"]
        for c in row
        if (c.recency, c.frequency) == (r, f)
    )


def test_grid_counts_customers_and_revenue_per_cell(client, marketing, shop):
    response = client.get(RFM)
    assert response.status_code == 200
    filled = {
        (c.recency, c.frequency): (c.customers, c.revenue, c.heat, c.segment.code)
        for row in response.context["grid"]
        for c in row
        if c.customers
    }
    assert filled == {
        (5, 5): (1, Decimal("300.00"), 9, "champions"),
        (4, 4): (1, Decimal("200.00"), 9, "loyal"),
        (3, 1): (1, Decimal("100.00"), 9, "about_to_sleep"),
        (2, 1): (1, Decimal("100.00"), 9, "hibernating"),
        (1, 1): (1, Decimal("100.00"), 9, "lost"),
    }
    empty = cell(response, 5, 1)
    assert (empty.customers, empty.heat, empty.segment.code) == (0, 0, "new_customers")
    # Rows R 5..1, columns F 1..5.
    assert [row[0].recency for row in response.context["grid"]] == [5, 4, 3, 2, 1]
    assert [c.frequency for c in response.context["grid"][0]] == [1, 2, 3, 4, 5]

    content = response.content.decode()
    assert 'data-r="5" data-f="5" data-customers="1"' in content
    assert "heatcell heat-9 rfmseg--champions" in content
    assert "heatcell heat-0 rfmseg--new_customers" in content
    assert "style=" not in content.split('class="heatmap"')[1].split("</table>")[0]
    assert f'href="{CUSTOMERS}?r=5&amp;f=5"' in content


def test_named_segments_table_in_grid_order_with_shares(client, marketing, shop):
    response = client.get(RFM)
    figures = {item.segment.code: item for item in response.context["figures"]}
    codes = [item.segment.code for item in response.context["figures"]]
    assert codes[0] == "champions"
    assert codes[-1] == "lost"
    assert len(codes) == 11
    assert (figures["champions"].customers, figures["champions"].share) == (1, 20.0)
    assert figures["champions"].average == Decimal("300.00")
    assert figures["new_customers"].customers == 0
    assert figures["new_customers"].average is None
    assert response.context["total"] == 5
    assert response.context["total_revenue"] == Decimal("800.00")
    content = response.content.decode()
    assert f'href="{CUSTOMERS}?segment=champions"' in content
    assert "20.0%" in content


def test_heat_levels_scale_with_the_fullest_cell():
    assert views.heat_level(0, 10) == 0
    assert views.heat_level(1, 100) == 1
    assert views.heat_level(50, 100) == 5
    assert views.heat_level(100, 100) == 9


def test_rfm_page_groups_once_and_loads_no_rows(
    client, marketing, shop, django_assert_max_num_queries
):
    with django_assert_max_num_queries(14) as queries:
        client.get(RFM)
    grouped = [
        q["sql"]
        for q in queries.captured_queries
        if "segments_customermetrics" in q["sql"] and "GROUP BY" in q["sql"]
    ]
    assert len(grouped) == 1
    assert '"recency_score" IS NOT NULL' in grouped[0]
    # More buyers, same queries.
    for index in range(4):
        _orders(CustomerFactory(), StoreFactory(code="main"), index + 2, 1)
    metrics_recompute()
    with django_assert_max_num_queries(len(queries.captured_queries)):
        client.get(RFM)


def test_store_selector_shows_one_store(client, marketing, shop, store):
    other = StoreFactory(code="outlet", name="Outlet")
    _orders(shop["ewa"], other, 2, 1)
    metrics_recompute()
    overall = client.get(RFM)
    assert overall.context["store"] is None
    assert overall.context["total"] == 5

    response = client.get(RFM, {"store": other.pk})
    assert response.context["store"] == other
    assert response.context["total"] == 1
    assert response.context["total_revenue"] == Decimal("100.00")
    filled = [c for row in response.context["grid"] for c in row if c.customers]
    assert len(filled) == 1
    assert (
        filled[0].query
        == f"r={filled[0].recency}&f={filled[0].frequency}&store={other.pk}"
    )
    assert "Outlet" in response.content.decode()

    # An unknown store: all stores, with a word about it.
    response = client.get(RFM, {"store": 999999})
    assert response.context["store"] is None
    assert "No such store" in response.content.decode()


def test_moves_of_the_last_30_days(client, marketing, shop):
    # The first recompute ever records no moves; later first scores do.
    RfmSegmentMove.objects.create(
        customer=shop["ewa"],
        from_segment="",
        to_segment="champions",
        moved_at=timezone.now() - timedelta(days=1),
    )
    RfmSegmentMove.objects.create(
        customer=shop["anna"],
        from_segment="champions",
        to_segment="at_risk",
        moved_at=timezone.now() - timedelta(days=3),
    )
    RfmSegmentMove.objects.create(
        customer=shop["bogdan"],
        from_segment="loyal",
        to_segment="",
        moved_at=timezone.now() - timedelta(days=45),
    )
    response = client.get(RFM)
    moves = {
        (m["from_segment"], m["to_segment"]): m["customers"]
        for m in response.context["moves"]
    }
    assert moves[("", "champions")] == 1
    assert moves[("champions", "at_risk")] == 1
    assert ("loyal", "") not in moves
    table = response.content.decode().split("rfmmoves")[1].split("</table>")[0]
    assert "not scored" in table
    assert "At risk" in table


def test_definitions_and_when_computed(client, marketing, shop):
    content = client.get(RFM).content.decode()
    assert "Figures computed" in content
    assert "quintile" in content
    assert "Ties share the lower score" in content
    assert "default currency (PLN)" in content
    assert "objected to profiling" in content
    assert "recompute_metrics" not in content


def test_orders_in_a_currency_with_no_rate_are_pointed_out(
    client, marketing, shop, store
):
    assert "order is in a currency" not in client.get(RFM).content.decode()
    OrderFactory(customer=shop["anna"], store=store, currency="CZK", total=500)
    metrics_recompute()
    content = client.get(RFM).content.decode()
    assert "1 order is in a currency with no rate to PLN" in content


def test_empty_metrics_tell_how_to_compute_them(client, marketing):
    CustomerMetrics.objects.all().delete()
    content = client.get(RFM).content.decode()
    assert "No customer metrics yet." in content
    assert "python manage.py recompute_metrics" in content
    assert "Figures not computed yet" in content


def test_cell_click_lists_its_customers_logged(
    client, marketing, shop, django_assert_max_num_queries
):
    with django_assert_max_num_queries(14):
        response = client.get(CUSTOMERS, {"r": 5, "f": 5})
    assert response.status_code == 200
    assert [row.customer for row in response.context["rows"]] == [shop["anna"]]
    content = response.content.decode()
    assert f'href="{reverse("customers:detail", args=[shop["anna"].pk])}"' in content
    assert "Champions" in content
    assert "300.00" in content
    assert AccessLog.objects.filter(
        action="view", customer=shop["anna"], user=marketing
    ).exists()

    response = client.get(CUSTOMERS, {"segment": "lost"})
    assert [row.customer for row in response.context["rows"]] == [shop["ewa"]]

    # Biggest spenders first, paged without counting.
    response = client.get(CUSTOMERS, {"r": 3, "f": 1})
    assert [row.customer for row in response.context["rows"]] == [shop["celina"]]


def test_cell_list_pages(client, marketing, shop, store, monkeypatch):
    monkeypatch.setattr(views, "MEMBERS_PER_PAGE", 2)
    # Two more buyers tied with Ewa: the same day, one order; all three R1 F1.
    for name in ("filip", "gosia"):
        _orders(CustomerFactory(first_name=name.title()), store, 80, 1)
    metrics_recompute()
    first = client.get(CUSTOMERS, {"r": 1, "f": 1})
    assert first.context["page"].has_next
    second = client.get(CUSTOMERS, {"r": 1, "f": 1, "page": 2})
    assert not second.context["page"].has_next
    names = [row.customer.first_name for row in first.context["rows"]] + [
        row.customer.first_name for row in second.context["rows"]
    ]
    assert sorted(names) == ["Ewa", "Filip", "Gosia"]
    assert "Next" in first.content.decode()


@pytest.mark.parametrize(
    "query", [{"r": 6, "f": 1}, {"r": "x", "f": 1}, {"segment": "nope"}, {}]
)
def test_cell_list_refuses_odd_filters(client, marketing, query):
    assert client.get(CUSTOMERS, query).status_code == 404


def test_rfm_pages_need_the_metrics_permission(client, make_staff):
    assert client.get(RFM).status_code == 302
    client.force_login(make_staff())
    assert client.get(RFM).status_code == 403
    assert client.get(CUSTOMERS, {"r": 1, "f": 1}).status_code == 403
    for role in ("Support", "Data protection officer", "Manager"):
        client.force_login(make_staff(role))
        assert client.get(RFM).status_code == 200


def test_recompute_command(shop):
    CustomerMetrics.objects.all().delete()
    out = StringIO()
    call_command("recompute_metrics", stdout=out)
    assert "Recomputed 5 buyers" in out.getvalue()
    assert CustomerMetrics.objects.overall().count() == 5

    metrics_queue([shop["anna"].pk])
    out = StringIO()
    call_command("recompute_metrics", "--queued", stdout=out)
    assert "Recomputed 1 queued customers." in out.getvalue()
