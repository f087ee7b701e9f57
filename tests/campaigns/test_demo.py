"""The campaigns' demo data: seeded through the services, realistic, seeded once."""

import datetime as dt

import pytest
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from campaigns.demo import (
    CART,
    DRAFT,
    NEWSLETTER,
    SENT_DAYS_AGO,
    SMS,
    TEMPLATES,
    WELCOME,
)
from campaigns.models import (
    Campaign,
    CampaignEvent,
    Channel,
    Coupon,
    Delivery,
    DeliveryEvent,
    Flow,
    MessageTemplate,
)
from campaigns.rendering import template_check, template_links
from consents.models import ConsentState
from customers.demo import demo_seed
from segments.models import SegmentMembership
from segments.rfm import rfm_grid_ensure
from tests.conftest import ensure_purposes, ensure_roles

CUSTOMERS = 600


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (
            MessageTemplate,
            Campaign,
            CampaignEvent,
            Delivery,
            DeliveryEvent,
            Coupon,
            Flow,
        )
    }


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """Seed twice for the module (the second run adds a few customers); roll back.

    Yields the campaigns' row counts after the first run and after the second.
    """
    with django_db_blocker.unblock(), transaction.atomic():
        # A transactional test before this module flushes what the migrations seed.
        ensure_roles()
        ensure_purposes()
        rfm_grid_ensure()
        demo_seed(customers=CUSTOMERS, seed=11)
        first = counts()
        flows = list(Flow.objects.values_list("kind", "is_active", "activated_at"))
        demo_seed(customers=30, seed=12)
        yield {"first": first, "second": counts(), "flows": flows}
        transaction.set_rollback(True)


@pytest.fixture
def data(seeded, db):
    return seeded


@pytest.fixture
def newsletter(data):
    return Campaign.objects.get(name=NEWSLETTER)


def test_templates_pass_the_services_checks(data):
    templates = {t.name: t for t in MessageTemplate.objects.all()}
    assert set(templates) == set(TEMPLATES)
    for template in templates.values():
        template_check(
            channel=template.channel,
            subject=template.subject,
            html=template.html,
            text=template.text,
        )
    sms = templates[SMS]
    assert sms.channel == Channel.SMS
    assert {"ę", "ż"} <= set(sms.text)
    assert "{{ unsubscribe_url }}" in sms.text
    newsletter = templates[NEWSLETTER]
    assert "{{ recommendations }}" in newsletter.html
    assert "{{ coupon }}" in newsletter.html
    assert template_links(newsletter.html)


def test_seeding_again_adds_nothing_here(data):
    first, second = data["first"], data["second"]
    assert second == first
    assert first["Campaign"] == 2
    assert first["Flow"] == 5
    assert first["Delivery"] > 0
    # The flows switched on stay as they were: not switched on again later.
    assert set(Flow.objects.values_list("kind", "is_active", "activated_at")) == set(
        data["flows"]
    )


def test_the_newsletter_went_to_its_segments_consenting_members(newsletter):
    assert newsletter.status == Campaign.Status.SENT
    assert newsletter.coupon_prefix == "NOWOSCI"
    deliveries = Delivery.objects.filter(campaign=newsletter)
    assert newsletter.audience_size == deliveries.count()
    members = SegmentMembership.objects.filter(segment=newsletter.segment)
    assert set(deliveries.values_list("customer_id", flat=True)) <= set(
        members.values_list("customer_id", flat=True)
    )
    sent = deliveries.filter(status=Delivery.Status.SENT)
    assert sent.count() > 20
    # Everyone sent to had the consent; everyone else has the reason.
    consenting = ConsentState.objects.filter(
        purpose=newsletter.purpose, granted=True
    ).values("customer_id")
    assert not sent.exclude(customer_id__in=consenting).exists()
    skipped = deliveries.filter(status=Delivery.Status.SKIPPED)
    assert skipped.filter(reason=Delivery.Reason.NO_CONSENT).exists()
    assert not skipped.filter(reason="").exists()
    assert not deliveries.filter(status=Delivery.Status.PENDING).exists()


def test_the_newsletter_went_out_weeks_ago_within_an_hour(newsletter):
    sent = Delivery.objects.filter(
        campaign=newsletter, status=Delivery.Status.SENT
    ).order_by("sent_at")
    first, last = sent.first().sent_at, sent.last().sent_at
    assert newsletter.started_at <= first <= last < newsletter.finished_at
    assert last - first <= dt.timedelta(hours=1)
    ago = timezone.now() - newsletter.started_at
    assert (
        dt.timedelta(days=SENT_DAYS_AGO - 1)
        < ago
        < dt.timedelta(days=SENT_DAYS_AGO + 1)
    )
    assert timezone.localtime(newsletter.started_at).hour == 10
    assert not sent.exclude(customer__created_at__lte=newsletter.started_at).exists()
    assert len(set(sent.values_list("message_id", flat=True))) == sent.count()
    # The audit trail tells the same story, in order.
    trail = list(
        newsletter.events.order_by("at").values_list("kind", "new_status", "at")
    )
    assert [(kind, status) for kind, status, _at in trail] == [
        ("created", "draft"),
        ("status", "sending"),
        ("status", "sent"),
    ]
    assert trail[1][2] == newsletter.started_at
    assert trail[2][2] == newsletter.finished_at
    assert newsletter.events.get(kind="created").actor.username == "marketing"


def test_opens_and_clicks_only_where_tracking_was_granted(newsletter):
    sent = Delivery.objects.filter(campaign=newsletter, status=Delivery.Status.SENT)
    opened = sent.filter(opened_at__isnull=False)
    clicked = sent.filter(clicked_at__isnull=False)
    tracked = ConsentState.objects.filter(
        purpose__code="tracking", granted=True
    ).values("customer_id")
    assert opened.exists()
    assert not opened.exclude(customer_id__in=tracked).exists()
    assert not clicked.filter(opened_at__isnull=True).exists()
    assert not opened.filter(opened_at__lte=F("sent_at")).exists()
    assert not clicked.filter(clicked_at__lt=F("opened_at")).exists()
    assert not opened.filter(opened_at__gt=timezone.now()).exists()
    # About a third of the tracked recipients opened, a few clicked.
    tracked_sent = sent.filter(customer_id__in=tracked).count()
    assert 0.15 < opened.count() / tracked_sent < 0.55
    assert clicked.count() < opened.count()
    # Each first open and click has its event; clicks went to the message's links.
    events = DeliveryEvent.objects.filter(delivery__campaign=newsletter)
    for delivery in opened:
        assert events.filter(
            delivery=delivery, kind="open", at=delivery.opened_at
        ).exists()
    assert events.filter(kind="click").count() == clicked.count()
    links = set(template_links(newsletter.template.html))
    assert set(events.filter(kind="click").values_list("url", flat=True)) <= links
    assert not events.filter(kind="open", at__lt=F("delivery__opened_at")).exists()


def test_every_recipient_got_a_coupon_valid_from_their_message(newsletter):
    sent = Delivery.objects.filter(campaign=newsletter, status=Delivery.Status.SENT)
    coupons = Coupon.objects.filter(delivery__campaign=newsletter)
    assert coupons.count() == sent.count()
    assert not coupons.exclude(valid_from=F("delivery__sent_at")).exists()
    assert not coupons.exclude(customer_id=F("delivery__customer_id")).exists()
    assert not coupons.exclude(code__regex=r"^NOWOSCI-[2-9A-HJKMNP-Z]{8}$").exists()
    coupon = coupons.first()
    assert coupon.valid_until - coupon.valid_from == dt.timedelta(days=14)


def test_the_draft_and_the_flows(data):
    draft = Campaign.objects.get(name=DRAFT)
    assert draft.status == Campaign.Status.DRAFT
    assert not draft.deliveries.exists()
    assert draft.coupon_prefix == "WRACAJ"
    flows = {flow.kind: flow for flow in Flow.objects.select_related("template")}
    assert set(flows) == set(Flow.Kind.values)
    on = {kind for kind, flow in flows.items() if flow.is_active}
    assert on == {Flow.Kind.ABANDONED_CART, Flow.Kind.WELCOME}
    assert flows[Flow.Kind.ABANDONED_CART].template.name == CART
    assert flows[Flow.Kind.WELCOME].template.name == WELCOME
    for kind in on:
        assert flows[kind].activated_at is not None
