"""The flows staff pages: the list of the five flows, a flow's settings and report."""

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone, translation

from campaigns.flows import FLOW_DEFAULTS, flows_ensure
from campaigns.models import Delivery, Flow
from tests.factories.campaigns import DeliveryFactory, EmailTemplateFactory

pytestmark = pytest.mark.django_db

LIST = reverse("campaigns:flow_list")


@pytest.fixture(autouse=True)
def _english(client):
    """Texts are checked in English (Polish is the default language)."""
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def marketing(client, make_staff, purposes):
    user = make_staff("Marketing", username="magda")
    client.force_login(user)
    return user


@pytest.fixture
def flows(purposes):
    flows_ensure()
    return {flow.kind: flow for flow in Flow.objects.all()}


def edit_url(flow):
    return reverse("campaigns:flow_edit", args=[flow.pk])


def form_data(flow, **changes):
    data = {
        "template": flow.template_id or "",
        "delay_hours": flow.delay_hours,
        "purpose": flow.purpose_id,
        "coupon_prefix": flow.coupon_prefix,
        "coupon_validity_days": flow.coupon_validity_days,
    }
    if flow.is_active:
        data["is_active"] = "on"
    data.update(changes)
    return data


def sent(flow, *, days_ago=1, opened=False, clicked=False):
    moment = timezone.now() - dt.timedelta(days=days_ago)
    return DeliveryFactory(
        flow=flow,
        trigger=f"test:{Delivery.objects.count()}",
        status=Delivery.Status.SENT,
        sent_at=moment,
        opened_at=moment if opened or clicked else None,
        clicked_at=moment if clicked else None,
    )


def test_list_shows_the_five_flows_with_their_recent_figures(client, marketing):
    response = client.get(LIST)  # creates the flows
    assert response.status_code == 200
    html = response.content.decode()
    assert Flow.objects.count() == len(FLOW_DEFAULTS) == 5
    for label in ("Abandoned cart", "Replenishment reminder", "Win-back", "Welcome"):
        assert label in html
    assert "72 hours before running out" in html
    assert "4 hours after the trigger" in html

    cart = Flow.objects.get(kind=Flow.Kind.ABANDONED_CART)
    sent(cart)
    sent(cart, opened=True)
    sent(cart, clicked=True)
    sent(cart, days_ago=40, clicked=True)  # too long ago
    DeliveryFactory(flow=cart, trigger="test:waiting")  # not sent
    response = client.get(LIST)
    row = response.context["rows"][0]
    assert row.flow == cart
    assert (row.sent, row.opened, row.clicked) == (3, 2, 1)
    assert all(other.sent == 0 for other in response.context["rows"][1:])


def test_list_queries_do_not_grow_with_flows_and_messages(
    client, marketing, flows, django_assert_max_num_queries
):
    client.get(LIST)  # warm caches (content types, permissions)
    with django_assert_max_num_queries(10) as captured:
        client.get(LIST)
    baseline = len(captured)
    template = EmailTemplateFactory()
    for flow in flows.values():
        Flow.objects.filter(pk=flow.pk).update(
            template=template, is_active=True, activated_at=timezone.now()
        )
        for _ in range(3):
            sent(flow, clicked=True)
    with django_assert_max_num_queries(baseline):
        response = client.get(LIST)
    assert all(row.sent == 3 for row in response.context["rows"])


def test_anonymous_is_sent_to_log_in(client, flows):
    response = client.get(LIST)
    assert response.status_code == 302
    assert django_settings.LOGIN_URL in response["Location"]
    assert client.get(edit_url(flows[Flow.Kind.WELCOME])).status_code == 302


def test_support_without_view_flow_gets_403(client, make_staff, flows):
    client.force_login(make_staff("Support"))
    assert client.get(LIST).status_code == 403
    assert client.get(edit_url(flows[Flow.Kind.WELCOME])).status_code == 403


def test_flow_page_shows_settings_and_report(client, marketing, flows):
    cart = flows[Flow.Kind.ABANDONED_CART]
    sent(cart, clicked=True)
    response = client.get(edit_url(cart))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="delay_hours"' in html
    assert "Save changes" in html
    assert response.context["report"].sent == 1
    assert "data-attribution" in html


def test_switching_on_without_a_template_is_refused(client, marketing, flows):
    cart = flows[Flow.Kind.ABANDONED_CART]
    before = LogEntry.objects.count()
    response = client.post(edit_url(cart), form_data(cart, is_active="on"))
    assert response.status_code == 200
    assert (
        "Choose a template before switching the flow on."
        in (response.context["form"].errors["template"])
    )
    cart.refresh_from_db()
    assert not cart.is_active
    assert cart.activated_at is None
    assert LogEntry.objects.count() == before


def test_an_invalid_delay_writes_nothing(client, marketing, flows):
    cart = flows[Flow.Kind.ABANDONED_CART]
    template = EmailTemplateFactory()
    response = client.post(
        edit_url(cart),
        form_data(cart, is_active="on", template=template.pk, delay_hours=-5),
    )
    assert response.status_code == 200
    assert "delay_hours" in response.context["form"].errors
    cart.refresh_from_db()
    assert (cart.is_active, cart.template_id, cart.delay_hours) == (False, None, 4)


def test_switching_on_with_a_template(client, marketing, flows):
    cart = flows[Flow.Kind.ABANDONED_CART]
    template = EmailTemplateFactory()
    response = client.post(
        edit_url(cart),
        form_data(cart, is_active="on", template=template.pk, delay_hours=6),
    )
    assert response.status_code == 302
    assert response["Location"] == edit_url(cart)
    cart.refresh_from_db()
    assert cart.is_active
    assert cart.template == template
    assert cart.activated_at is not None
    assert cart.delay_hours == 6
    assert LogEntry.objects.filter(object_id=str(cart.pk)).exists()

    response = client.get(LIST)
    assert template.name in response.content.decode()
    assert response.context["rows"][0].delay == "6 hours after the trigger"


def test_dpo_reads_but_cannot_change(client, make_staff, flows):
    client.force_login(make_staff("Data protection officer"))
    welcome = flows[Flow.Kind.WELCOME]
    response = client.get(edit_url(welcome))
    assert response.status_code == 200
    assert response.context["read_only"]
    assert all(field.disabled for field in response.context["form"].fields.values())
    assert "Save changes" not in response.content.decode()
    template = EmailTemplateFactory()
    response = client.post(
        edit_url(welcome), form_data(welcome, is_active="on", template=template.pk)
    )
    assert response.status_code == 403
    welcome.refresh_from_db()
    assert not welcome.is_active
