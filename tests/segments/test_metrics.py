"""CustomerMetrics and RFM scoring on a small hand-made data set."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.models import Order
from segments.metrics import metrics_queue, metrics_recompute, metrics_recompute_queued
from segments.models import (
    CurrencyRate,
    CustomerMetrics,
    MetricsQueue,
    RfmCell,
    RfmSegment,
    RfmSegmentMove,
    RfmThreshold,
)
from tests.factories.customers import CustomerFactory, StoreFactory
from tests.factories.orders import (
    CategoryFactory,
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
)

# name: (days since the last order, number of orders); every order is 100 PLN
# except where REVENUE says otherwise.
BUYERS = {
    "c1": (1, 5),
    "c2": (5, 3),
    "c3": (10, 1),
    "c4": (20, 1),
    "c5": (30, 1),
    "c6": (60, 2),
    "c7": (90, 1),
    "c8": (120, 1),
    "c9": (200, 1),
    "c10": (300, 2),
}


def _orders(customer, store, last_days, count, *, total=Decimal("100"), **extra):
    now = timezone.now()
    for i in range(count):
        OrderFactory(
            customer=customer,
            store=store,
            placed_at=now - timedelta(days=last_days + 10 * i),
            total=total,
            **extra,
        )


@pytest.fixture
def shop(db):
    store = StoreFactory(code="main")
    customers = {}
    for name, (days, count) in BUYERS.items():
        customers[name] = CustomerFactory(email=f"{name}@example.pl")
        _orders(customers[name], store, days, count)
    return store, customers


def _overall(customer):
    return CustomerMetrics.objects.get(customer=customer, store__isnull=True)


def test_recency_is_the_quintile_of_the_last_order_date(shop):
    _store, customers = shop
    metrics_recompute()
    scores = {name: _overall(c).recency_score for name, c in customers.items()}
    # Ten buyers, oldest first: two per quintile.
    assert scores == {
        "c10": 1, "c9": 1, "c8": 2, "c7": 2, "c6": 3,
        "c5": 3, "c4": 4, "c3": 4, "c2": 5, "c1": 5,
    }  # fmt: skip


def test_tied_frequencies_share_the_lowest_score(shop):
    _store, customers = shop
    metrics_recompute()
    scores = {name: _overall(c).frequency_score for name, c in customers.items()}
    # Six one-order buyers fill the three lowest quintiles together: all F 1.
    assert {scores[n] for n in ("c3", "c4", "c5", "c7", "c8", "c9")} == {1}
    assert scores["c6"] == scores["c10"] == 4  # two orders, ranks 7 and 8
    assert scores["c2"] == scores["c1"] == 5


def test_named_segments_follow_the_grid(shop):
    _store, customers = shop
    metrics_recompute()
    segments = {name: _overall(c).rfm_segment for name, c in customers.items()}
    assert segments["c1"] == "champions"  # R5 F5
    assert segments["c3"] == "promising"  # R4 F1, one order
    assert segments["c5"] == "about_to_sleep"  # R3 F1
    assert segments["c6"] == "loyal"  # R3 F4
    assert segments["c8"] == "hibernating"  # R2 F1
    assert segments["c9"] == "lost"  # R1 F1
    assert segments["c10"] == "cant_lose_them"  # R1 F4


def test_a_moved_grid_cell_renames_its_customers(shop):
    _store, customers = shop
    RfmCell.objects.filter(recency=1, frequency=1).update(
        segment=RfmSegment.objects.get(code="hibernating")
    )
    metrics_recompute()
    assert _overall(customers["c9"]).rfm_segment == "hibernating"


def test_figures(shop):
    _store, customers = shop
    now = timezone.now()
    metrics_recompute()
    m = _overall(customers["c2"])
    assert m.orders_count == 3
    assert m.revenue == Decimal("300.00")
    assert m.average_order_value == Decimal("100.00")
    assert m.average_days_between_orders == Decimal("10.0")
    assert m.days_since_last_order == 5
    # One gap after the last order: in five days.
    assert m.predicted_next_order_on == timezone.localdate(now + timedelta(days=5))
    assert m.clv == Decimal("300.00")
    single = _overall(customers["c3"])
    assert single.average_days_between_orders is None
    assert single.predicted_next_order_on is None  # no rhythm, nothing replenishable


def test_one_order_buyer_is_expected_back_when_the_product_runs_out(shop):
    store, customers = shop
    food = ProductFactory(store=store, replenishment_days=30)
    order = Order.objects.filter(customer=customers["c3"]).get()
    OrderLineFactory(order=order, product=food, quantity=Decimal("2"))
    metrics_recompute()
    expected = timezone.localtime(order.placed_at) + timedelta(days=60)
    assert _overall(customers["c3"]).predicted_next_order_on == expected.date()


def test_favourites_skip_sensitive_goods(shop):
    store, customers = shop
    food = CategoryFactory(store=store, name="Karma")
    pharmacy = CategoryFactory(store=store, name="Apteka", is_sensitive=True)
    orders = list(Order.objects.filter(customer=customers["c2"]))
    for order in orders:
        OrderLineFactory(
            order=order,
            product=ProductFactory(store=store, category=pharmacy, brand="Zdrowie"),
        )
    OrderLineFactory(
        order=orders[0],
        product=ProductFactory(store=store, category=food, brand="Acana"),
    )
    metrics_recompute()
    m = _overall(customers["c2"])
    assert m.favourite_category == food
    assert m.favourite_brand == "Acana"


def test_only_paid_orders_count_and_foreign_money_needs_a_rate(shop):
    store, customers = shop
    c = customers["c3"]
    _orders(c, store, 2, 1, status=Order.Status.CANCELLED)
    _orders(c, store, 3, 1, total=Decimal("10"), currency="EUR")
    _orders(c, store, 4, 1, total=Decimal("10"), currency="USD")
    CurrencyRate.objects.create(currency="EUR", rate=Decimal("4.25"))
    result = metrics_recompute()
    m = _overall(c)
    assert m.orders_count == 3  # the cancelled order does not count
    assert m.revenue == Decimal("142.50")  # 100 PLN + 10 EUR; USD has no rate
    assert m.average_order_value == Decimal("71.25")
    assert result.orders_without_rate == 1


def test_objectors_and_restricted_customers_are_not_scored_or_ranked(shop):
    store, customers = shop
    now = timezone.now()
    objector = CustomerFactory(profiling_objection_at=now)
    restricted = CustomerFactory(restricted_at=now)
    _orders(objector, store, 1, 9)
    _orders(restricted, store, 1, 9)
    metrics_recompute()
    for customer in (objector, restricted):
        m = _overall(customer)
        assert m.orders_count == 9  # the plain figures stay
        assert m.recency_score is None
        assert m.rfm_segment == ""
        assert m.favourite_brand == ""
        assert m.predicted_next_order_on is None
    # They are not in the ranking: c1 and c2 still share the top F quintile.
    assert _overall(customers["c2"]).frequency_score == 5
    assert RfmThreshold.objects.get(store__isnull=True).buyers == 10


def test_scores_per_store_rank_that_store_s_buyers(shop):
    store, customers = shop
    other = StoreFactory(code="outlet")
    _orders(customers["c9"], other, 3, 1)
    _orders(customers["c8"], other, 100, 1)
    metrics_recompute()
    in_other = CustomerMetrics.objects.filter(store=other)
    assert {m.customer_id: m.recency_score for m in in_other} == {
        customers["c9"].pk: 3,  # the more recent of two: 1 + 5 * 1 // 2
        customers["c8"].pk: 1,
    }
    # Overall, c9 now bought 3 days ago.
    assert _overall(customers["c9"]).recency_score == 5
    assert CustomerMetrics.objects.filter(store=store).count() == 10


def test_a_second_run_writes_nothing_and_moves_are_recorded(shop):
    _store, customers = shop
    first = metrics_recompute()
    assert first.inserted == 20
    assert first.moves == 0  # the first run ever: nobody moved, all first seen
    again = metrics_recompute()
    assert (again.inserted, again.updated, again.deleted, again.moves) == (0, 0, 0, 0)
    # c9 buys again today: from Lost to a better segment.
    _orders(customers["c9"], _store, 0, 1)
    metrics_recompute()
    move = RfmSegmentMove.objects.get(customer=customers["c9"], from_segment="lost")
    assert move.to_segment == _overall(customers["c9"]).rfm_segment != "lost"


def test_incremental_recompute_scores_against_the_last_thresholds(shop):
    store, customers = shop
    metrics_recompute()
    newcomer = CustomerFactory()
    _orders(newcomer, store, 0, 1)
    # A first score after the first run is recorded, from nothing.
    _orders(customers["c10"], store, 0, 1)
    assert metrics_queue([newcomer.pk, customers["c10"].pk, newcomer.pk]) == 2
    assert metrics_recompute_queued() == 2
    assert not MetricsQueue.objects.exists()
    m = _overall(newcomer)
    assert (m.recency_score, m.frequency_score) == (5, 1)
    assert m.rfm_segment == "new_customers"
    assert RfmSegmentMove.objects.get(customer=newcomer).from_segment == ""
    c10 = _overall(customers["c10"])
    assert (c10.recency_score, c10.frequency_score, c10.orders_count) == (5, 5, 3)
    assert c10.rfm_segment == "champions"
    # Nobody else was touched.
    assert _overall(customers["c9"]).rfm_segment == "lost"


def test_a_customer_with_no_orders_left_loses_the_rows(shop):
    _store, customers = shop
    metrics_recompute()
    Order.objects.filter(customer=customers["c3"]).update(status=Order.Status.RETURNED)
    metrics_recompute(customer_ids=[customers["c3"].pk])
    assert not CustomerMetrics.objects.filter(customer=customers["c3"]).exists()
    move = RfmSegmentMove.objects.get(customer=customers["c3"], to_segment="")
    assert move.from_segment == "promising"


def test_fixed_thresholds_replace_quintiles(shop, settings):
    _store, customers = shop
    settings.RFM_FREQUENCY_ORDERS = [2, 3, 4, 5]
    settings.RFM_RECENCY_DAYS = [7, 30, 90, 180]
    metrics_recompute()
    c2 = _overall(customers["c2"])  # three orders, five days ago
    assert (c2.recency_score, c2.frequency_score) == (5, 3)
    c9 = _overall(customers["c9"])  # one order, 200 days ago
    assert (c9.recency_score, c9.frequency_score) == (1, 1)
