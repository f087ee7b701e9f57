"""The messages a customer was sent, on the customer timeline (campaigns.timeline)."""

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from campaigns.coupons import coupon_issue, coupons_redeem
from campaigns.models import Channel, Delivery, Flow
from customers.selectors import customer_timeline, timeline_sources
from segments.models import Segment
from tests.factories.campaigns import (
    CampaignFactory,
    DeliveryFactory,
    FlowFactory,
    SmsTemplateFactory,
)
from tests.factories.customers import CustomerFactory, InteractionFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def segment(purposes):
    return Segment.objects.create(name="x", kind="static")


@pytest.fixture
def support(client, make_staff):
    user = make_staff("Support")
    client.force_login(user)
    return user


def ago(**kwargs):
    return timezone.now() - dt.timedelta(**kwargs)


def sources(page):
    return [entry.source for entry in page.entries]


def detail_url(customer, **params):
    url = reverse("customers:detail", args=[customer.pk])
    if params:
        url += "?" + "&".join(f"{key}={value}" for key, value in params.items())
    return url


def sent(customer, campaign, at, **fields):
    return DeliveryFactory(
        customer=customer,
        campaign=campaign,
        channel=campaign.channel,
        status=Delivery.Status.SENT,
        sent_at=at,
        **{"created_at": at - dt.timedelta(hours=1), **fields},
    )


# ---------- The selector ----------


def test_messages_join_the_other_sources_newest_first(customer, store, segment):
    # Chosen before the order was placed, sent after it: sending time counts.
    spring = sent(
        customer,
        CampaignFactory(segment=segment),
        ago(days=3),
        created_at=ago(days=5),
    )
    order = OrderFactory(customer=customer, store=store, placed_at=ago(days=4))
    failed = DeliveryFactory(
        customer=customer,
        flow=FlowFactory(kind=Flow.Kind.ABANDONED_CART),
        trigger="cart:1",
        status=Delivery.Status.FAILED,
        error="550 Mailbox unavailable",
        created_at=ago(days=2),
    )
    no_consent = DeliveryFactory(
        customer=customer,
        campaign=CampaignFactory(segment=segment),
        status=Delivery.Status.SKIPPED,
        reason=Delivery.Reason.NO_CONSENT,
        created_at=ago(days=1, hours=12),
    )
    interaction = InteractionFactory(customer=customer, occurred_at=ago(days=1))
    # Not shown: waiting, stopped before sending, another customer's.
    DeliveryFactory(
        customer=customer, campaign=CampaignFactory(segment=segment), created_at=ago()
    )
    DeliveryFactory(
        customer=customer,
        campaign=CampaignFactory(segment=segment),
        status=Delivery.Status.SKIPPED,
        reason=Delivery.Reason.CANCELLED,
        created_at=ago(hours=1),
    )
    sent(CustomerFactory(), CampaignFactory(segment=segment), ago(hours=2))

    page = customer_timeline(customer)

    assert [(entry.source, entry.object) for entry in page.entries] == [
        ("interactions", interaction),
        ("messages", no_consent),
        ("messages", failed),
        ("messages", spring),
        ("orders", order),
    ]
    assert page.entries[3].at == spring.sent_at
    assert page.entries[2].at == failed.created_at
    assert {entry.kind for entry in page.entries if entry.source == "messages"} == {
        Channel.EMAIL
    }
    assert sources(customer_timeline(customer, kinds=["messages"])) == ["messages"] * 3


def test_the_kind_is_the_channel(customer, segment):
    sms = sent(
        customer,
        CampaignFactory(segment=segment, template=SmsTemplateFactory()),
        ago(days=1),
    )

    (entry,) = customer_timeline(customer, kinds=["messages"]).entries

    assert (entry.object, entry.kind) == (sms, Channel.SMS)


def test_only_staff_who_may_read_deliveries_see_them(customer, segment, make_staff):
    sent(customer, CampaignFactory(segment=segment), ago(days=1))
    InteractionFactory(customer=customer)
    user = make_staff()
    user.user_permissions.add(
        Permission.objects.get(
            codename="view_customer", content_type__app_label="customers"
        ),
        Permission.objects.get(
            codename="view_interaction", content_type__app_label="customers"
        ),
    )
    user = type(user).objects.get(pk=user.pk)  # fresh permission cache

    assert "messages" not in [source.key for source in timeline_sources(user)]
    assert sources(customer_timeline(customer, user=user)) == ["interactions"]
    # Asking for them by name does not help.
    assert sources(customer_timeline(customer, kinds=["messages"], user=user)) == [
        "interactions"
    ]
    for role in ("Support", "Marketing", "Manager", "Data protection officer"):
        staff = make_staff(role)
        assert "messages" in sources(customer_timeline(customer, user=staff)), role


def test_a_page_of_messages_costs_two_queries_however_many(customer, segment):
    flow = FlowFactory(kind=Flow.Kind.WIN_BACK)
    for i in range(40):
        if i % 2:
            delivery = sent(customer, CampaignFactory(segment=segment), ago(hours=i))
        else:
            delivery = DeliveryFactory(
                customer=customer,
                flow=flow,
                trigger=f"segment:{i}",
                status=Delivery.Status.SENT,
                sent_at=ago(hours=i),
                opened_at=ago(hours=i) + dt.timedelta(minutes=5),
            )
        coupon_issue(delivery=delivery, prefix="WRACAJ", validity_days=30)

    with CaptureQueriesContext(connection) as queries:
        page = customer_timeline(customer, kinds=["messages"])
        for entry in page.entries:
            message = entry.object
            _ = (message.coupon.order, message.flow)
            if message.campaign:
                _ = message.campaign.template.name

    # The UNION of rows, then the deliveries with campaign, template, flow, coupon.
    assert len(queries.captured_queries) == 2
    assert len(page.entries) == 25
    assert page.has_next


# ---------- The customer page ----------
# Staff pages speak Polish (StaffLanguageMiddleware): look for names and markers.


def test_customer_page_shows_the_message_among_the_other_entries(
    client, support, customer, store, segment
):
    OrderFactory(customer=customer, store=store, number="ZAM/7", placed_at=ago(days=9))
    campaign = CampaignFactory(segment=segment, name="Wiosenna wyprzedaż")
    delivery = sent(
        customer,
        campaign,
        ago(days=5),
        opened_at=ago(days=4, hours=2),
        clicked_at=ago(days=4),
    )
    coupon = coupon_issue(
        delivery=delivery, prefix="WIOSNA", validity_days=30, now=delivery.sent_at
    )
    OrderFactory(
        customer=customer,
        store=store,
        number="ZAM/8",
        placed_at=ago(days=3),
        coupon_code=coupon.code,
    )
    assert coupons_redeem(customer_ids=[customer.pk]) == 1
    DeliveryFactory(
        customer=customer,
        flow=FlowFactory(kind=Flow.Kind.REVIEW_REQUEST),
        trigger="order:8",
        status=Delivery.Status.SKIPPED,
        reason=Delivery.Reason.NO_CONSENT,
        created_at=ago(days=1),
    )
    with translation.override("pl"):
        review_request = str(Flow.Kind.REVIEW_REQUEST.label)
        not_sent = str(Delivery.Status.SKIPPED.label)
        no_consent = str(Delivery.Reason.NO_CONSENT.label)

    response = client.get(detail_url(customer))

    content = response.content.decode()
    timeline = content[content.index('<div id="timeline"') :]
    assert 'filterchip--messages"' in timeline
    positions = [
        timeline.index(text)
        for text in (
            f'<span class="feed__what">{review_request}</span>',
            f'data-status="skipped">{not_sent}</span>',
            f'data-reason="no_consent">{no_consent}</span>',
            "ZAM/8",  # the order placed with the coupon
            "Wiosenna wyprzedaż",
            "ZAM/7",
        )
    ]
    assert positions == sorted(positions)
    message = timeline[timeline.index("Wiosenna wyprzedaż") :]
    message = message[: message.index("</li>")]
    assert 'data-status="sent"' in message
    assert "data-opened=" in message
    assert "data-clicked=" in message
    # Polish quotes: the pages render in Polish.
    assert f"„{campaign.template.name}”" in message
    assert f'data-coupon="{coupon.code}" data-redeemed="true"' in message
    assert "ZAM/8" in message
    # Support reads deliveries, not campaigns: no link to the campaign page.
    assert reverse("campaigns:detail", args=[campaign.pk]) not in timeline


def test_the_campaign_is_linked_for_staff_who_may_see_it(
    client, make_staff, customer, segment
):
    client.force_login(make_staff("Manager"))
    campaign = CampaignFactory(segment=segment, name="Lato")
    delivery = sent(customer, campaign, ago(days=1))
    coupon_issue(delivery=delivery, prefix="LATO", validity_days=7)

    response = client.get(detail_url(customer, timeline="messages"))

    content = response.content.decode()
    url = reverse("campaigns:detail", args=[campaign.pk])
    assert f'<a class="feed__what" href="{url}">Lato</a>' in content
    assert 'data-redeemed="false"' in content
    assert "data-opened=" not in content


def test_a_failed_message_says_why(client, support, customer, segment):
    DeliveryFactory(
        customer=customer,
        campaign=CampaignFactory(segment=segment),
        status=Delivery.Status.FAILED,
        error="550 Mailbox unavailable",
    )

    response = client.get(
        detail_url(customer, timeline="messages"),
        headers={"HX-Request": "true", "HX-Target": "timeline"},
    )

    content = response.content.decode()
    assert 'class="badge badge--cancelled" data-status="failed"' in content
    assert "550 Mailbox unavailable" in content
    assert "data-coupon=" not in content


def page_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries.captured_queries), response


def test_customer_page_queries_stay_bounded_with_many_messages(
    client, support, store, segment, django_assert_max_num_queries
):
    def history(customer, messages):
        flow = FlowFactory(kind=Flow.Kind.WELCOME)
        OrderFactory(customer=customer, store=store, placed_at=ago(days=400))
        for i in range(messages):
            if i % 3:
                delivery = sent(
                    customer, CampaignFactory(segment=segment), ago(hours=i * 5)
                )
            else:
                delivery = DeliveryFactory(
                    customer=customer,
                    flow=flow,
                    trigger=f"welcome:{customer.pk}:{i}",
                    status=Delivery.Status.SKIPPED,
                    reason=Delivery.Reason.FREQUENCY_CAP,
                    created_at=ago(hours=i * 5),
                )
            coupon_issue(delivery=delivery, prefix="X", validity_days=10)

    small, big = CustomerFactory(), CustomerFactory()
    history(small, 1)
    history(big, 60)

    small_count, _ = page_queries(client, detail_url(small))
    with django_assert_max_num_queries(25):
        big_count, response = page_queries(client, detail_url(big))

    assert big_count == small_count
    assert {entry.source for entry in response.context["timeline"].entries} == {
        "messages"
    }
    messages_count, _ = page_queries(client, detail_url(big, timeline="messages"))
    assert messages_count <= big_count
