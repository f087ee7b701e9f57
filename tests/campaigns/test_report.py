"""The campaign and flow report: counts, rates, attribution and the timeline."""

import datetime as dt
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import translation

from campaigns.coupons import coupon_issue
from campaigns.models import Delivery, DeliveryEvent
from campaigns.selectors import (
    TIMELINE_POINTS,
    MessageReport,
    ReportDay,
    attribution_help,
    campaign_report,
    flow_report,
    skipped_reasons,
)
from consents.links import unsubscribe_url
from orders.models import Order
from orders.services import order_upsert
from segments.models import CurrencyRate, Segment
from tests.factories.campaigns import CampaignFactory, DeliveryFactory, FlowFactory
from tests.factories.customers import CustomerFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC
T0 = dt.datetime(2025, 3, 10, 9, 0, tzinfo=UTC)  # 10:00 in Warsaw
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
SENT, FAILED, PENDING, SKIPPED = (
    Delivery.Status.SENT,
    Delivery.Status.FAILED,
    Delivery.Status.PENDING,
    Delivery.Status.SKIPPED,
)


@pytest.fixture(autouse=True)
def _window(settings):
    settings.CAMPAIGN_ATTRIBUTION_DAYS = 5
    settings.TIME_ZONE = "Europe/Warsaw"
    settings.DEFAULT_CURRENCY = "PLN"


@pytest.fixture
def segment(purposes):
    return Segment.objects.create(name="x", kind="static")


def sent(owner, customer, *, at=T0, opened=None, clicked=None, **extra):
    return DeliveryFactory(
        customer=customer,
        status=SENT,
        sent_at=at,
        opened_at=opened,
        clicked_at=clicked,
        **owner,
        **extra,
    )


def paid(customer, placed_at, total, *, currency="PLN", status=Order.Status.PAID):
    return OrderFactory(
        customer=customer,
        placed_at=placed_at,
        total=Decimal(total),
        currency=currency,
        status=status,
    )


def unsubscribe(customer, delivery):
    url = unsubscribe_url(customer, "email_marketing", reference=str(delivery.pk))
    response = Client().post(
        urlsplit(url).path,
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200


@pytest.fixture
def story(segment, store):
    """Campaign A to six people (and four not sent), and campaign B to one."""
    a = CampaignFactory(segment=segment, status="sent")
    b = CampaignFactory(segment=segment, status="sent")
    ania, bartek, celina, darek, ewa, filip = (CustomerFactory() for _ in range(6))
    of_a, of_b = {"campaign": a}, {"campaign": b}

    # Ania clicked; an order before she opened and a cancelled one do not count.
    d_ania = sent(of_a, ania, opened=T0 + HOUR, clicked=T0 + 2 * HOUR)
    paid(ania, T0 + HOUR / 2, "50")
    paid(ania, T0 + DAY, "100")
    paid(ania, T0 + 2 * DAY, "70", status=Order.Status.CANCELLED)
    coupon_issue(delivery=d_ania, prefix="WIOSNA", validity_days=30, now=T0)

    # Bartek opened only: the window runs 5 days from the open, the end excluded.
    d_bartek = sent(of_a, bartek, opened=T0 + 3 * HOUR)
    paid(bartek, T0 + 3 * HOUR + 5 * DAY - dt.timedelta(seconds=1), "200")
    paid(bartek, T0 + 3 * HOUR + 5 * DAY, "300")
    DeliveryEvent.objects.create(
        delivery=d_bartek, kind=DeliveryEvent.Kind.COMPLAINT, at=T0 + 4 * HOUR
    )

    # Celina opened A, then clicked B: B was the last touch, the order is B's.
    sent(of_a, celina, opened=T0 + HOUR)
    d_celina_b = sent(
        of_b, celina, at=T0 + 12 * HOUR, opened=T0 + DAY, clicked=T0 + DAY
    )
    paid(celina, T0 + 2 * DAY, "150")
    unsubscribe(celina, d_celina_b)

    # Darek never opened, but his coupon was used 20 days on, in euros.
    d_darek = sent(of_a, darek)
    coupon = coupon_issue(delivery=d_darek, prefix="WIOSNA", validity_days=30, now=T0)
    CurrencyRate.objects.create(currency="EUR", rate=Decimal("4.30"))
    order_upsert(
        store=store,
        external_id="EU-1",
        placed_at=T0 + 20 * DAY,
        customer=darek,
        status="paid",
        currency="EUR",
        coupon_code=coupon.code,
        lines=[{"name": "Karma", "quantity": 1, "unit_price": "50"}],
    )

    # Ewa opened after midnight in Warsaw (the 11th), bought in dollars: no rate.
    d_ewa = sent(of_a, ewa, opened=dt.datetime(2025, 3, 10, 23, 30, tzinfo=UTC))
    paid(ewa, T0 + 2 * DAY, "40", currency="USD")
    unsubscribe(ewa, d_ewa)

    d_filip = DeliveryFactory(campaign=a, customer=filip, status=FAILED)
    for _ in range(2):
        DeliveryEvent.objects.create(delivery=d_filip, kind=DeliveryEvent.Kind.BOUNCE)

    for reason in ("no_consent", "no_consent", "suppressed", "frequency_cap"):
        DeliveryFactory(campaign=a, status=SKIPPED, reason=reason)
    DeliveryFactory(campaign=a, status=PENDING)
    return a, b


def test_campaign_report_counts(story):
    a, _b = story

    report = campaign_report(a)

    assert (report.audience, report.sent, report.failed, report.pending) == (
        11,
        5,
        1,
        1,
    )
    assert report.skipped == {"no_consent": 2, "frequency_cap": 1, "suppressed": 1}
    assert list(report.skipped) == ["no_consent", "frequency_cap", "suppressed"]
    assert report.skipped_total == 4
    assert (report.opens, report.clicks) == (4, 1)
    assert report.open_rate == pytest.approx(0.8)
    assert report.click_through_rate == pytest.approx(0.2)
    assert report.click_to_open_rate == pytest.approx(0.25)
    assert (report.unsubscribes, report.bounces, report.complaints) == (1, 1, 1)
    assert (report.coupons_issued, report.coupons_redeemed) == (2, 1)


def test_campaign_report_attribution(story):
    a, _b = story

    report = campaign_report(a)

    # Ania's 100, Bartek's 200 (the 300 came at the window's end), Darek's coupon
    # at 50 EUR x 4.30, Ewa's dollars without revenue; Celina's order went to B.
    assert report.conversions == 4
    assert report.unpriced_conversions == 1
    assert report.revenue == Decimal("515.00")
    assert report.revenue_per_recipient == Decimal("103.00")


def test_last_touch_gives_the_order_to_the_other_campaign(story):
    _a, b = story

    report = campaign_report(b)

    assert (report.audience, report.sent, report.opens, report.clicks) == (1, 1, 1, 1)
    assert (report.conversions, report.revenue) == (1, Decimal("150.00"))
    assert report.revenue_per_recipient == Decimal("150.00")
    assert report.unsubscribes == 1
    assert report.timeline == [
        ReportDay(dt.date(2025, 3, 10), 1, 0, 0, 0, Decimal("0.00")),
        ReportDay(dt.date(2025, 3, 11), 0, 1, 1, 0, Decimal("0.00")),
        ReportDay(dt.date(2025, 3, 12), 0, 0, 0, 1, Decimal("150.00")),
    ]


def test_a_longer_window_takes_in_the_order_at_the_edge(story, settings):
    a, _b = story
    settings.CAMPAIGN_ATTRIBUTION_DAYS = 6

    report = campaign_report(a)

    assert (report.conversions, report.revenue) == (5, Decimal("815.00"))
    with translation.override("en"):
        assert "within 6 days after" in attribution_help()


def test_campaign_timeline_in_local_days_from_the_first_send(story):
    a, _b = story

    report = campaign_report(a)

    start = dt.date(2025, 3, 10)
    assert report.timeline_step_days == 1
    assert [point.day for point in report.timeline] == [
        start + dt.timedelta(days=n) for n in range(21)
    ]
    busy = {point.day: point for point in report.timeline if any(point[1:])}
    zero = Decimal("0.00")
    assert busy == {
        start: ReportDay(start, 5, 3, 1, 0, zero),
        dt.date(2025, 3, 11): ReportDay(dt.date(2025, 3, 11), 0, 1, 0, 1, 100),
        dt.date(2025, 3, 12): ReportDay(dt.date(2025, 3, 12), 0, 0, 0, 1, zero),
        dt.date(2025, 3, 15): ReportDay(dt.date(2025, 3, 15), 0, 0, 0, 1, 200),
        dt.date(2025, 3, 30): ReportDay(dt.date(2025, 3, 30), 0, 0, 0, 1, 215),
    }
    assert sum(point.sent for point in report.timeline) == report.sent
    assert sum(point.revenue for point in report.timeline) == report.revenue


def test_report_queries_do_not_grow_with_deliveries(story, django_assert_num_queries):
    a, _b = story
    with django_assert_num_queries(3):
        campaign_report(a)
    for n in range(20):
        customer = CustomerFactory()
        sent({"campaign": a}, customer, opened=T0 + n * HOUR, clicked=T0 + n * HOUR)
        paid(customer, T0 + DAY, "10")

    with django_assert_num_queries(3):
        report = campaign_report(a)

    assert (report.sent, report.conversions) == (25, 24)


def test_nothing_sent(segment):
    report = campaign_report(CampaignFactory(segment=segment))

    assert report == MessageReport()
    assert (report.open_rate, report.click_through_rate) == (None, None)
    assert (report.click_to_open_rate, report.revenue_per_recipient) == (None, None)
    assert report.timeline == []


def test_skipped_reasons_are_labelled(segment):
    campaign = CampaignFactory(segment=segment)
    DeliveryFactory(campaign=campaign, status=SKIPPED, reason="suppressed")

    with translation.override("en"):
        labelled = skipped_reasons(campaign_report(campaign))
    assert labelled == [("Suppressed address", 1)]


def test_flow_counts_an_order_once_and_groups_a_long_timeline(purposes, store):
    flow = FlowFactory()
    owner = {"flow": flow}
    zofia = CustomerFactory()
    first = sent(owner, zofia, opened=T0 + HOUR, trigger="cart:1")
    sent(owner, zofia, at=T0 + DAY, opened=T0 + DAY + HOUR, trigger="cart:2")
    coupon = coupon_issue(delivery=first, prefix="KOSZYK", validity_days=30, now=T0)
    # Both messages of the flow earn it: the first's coupon, the second's open.
    order_upsert(
        store=store,
        external_id="Z-1",
        placed_at=T0 + 2 * DAY,
        customer=zofia,
        status="paid",
        coupon_code=coupon.code,
        lines=[{"name": "Karma", "quantity": 1, "unit_price": "80"}],
    )
    sent(owner, CustomerFactory(), at=T0 + 200 * DAY, trigger="cart:3")

    report = flow_report(flow)

    assert (report.audience, report.sent, report.opens) == (3, 3, 2)
    assert (report.conversions, report.revenue) == (1, Decimal("80.00"))
    assert (report.coupons_issued, report.coupons_redeemed) == (1, 1)
    # 201 days in groups of three: 67 points.
    assert report.timeline_step_days == 3
    assert len(report.timeline) == 67 <= TIMELINE_POINTS
    assert report.timeline[0] == ReportDay(
        dt.date(2025, 3, 10), 2, 2, 0, 1, Decimal("80.00")
    )
    assert report.timeline[-1].day == dt.date(2025, 3, 10) + dt.timedelta(days=198)
    assert report.timeline[-1].sent == 1
    assert sum(point.sent for point in report.timeline) == 3
