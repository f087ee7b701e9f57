"""Campaigns in the Django admin: writes through the services, the rest read-only."""

import datetime as dt
import re
from html import unescape

import pytest
from django.conf import settings as django_settings
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone, translation

from campaigns.flows import flows_ensure
from campaigns.models import (
    Campaign,
    CampaignEvent,
    Coupon,
    Delivery,
    DeliveryEvent,
    Flow,
    MessageTemplate,
)
from campaigns.services import (
    campaign_create,
    campaign_prepare,
    campaign_start,
    campaign_transition,
)
from consents.models import AccessLog
from customers import roles
from customers.paginators import EstimatedCountPaginator
from segments.models import Segment, SegmentMembership
from tests.factories.campaigns import (
    DeliveryFactory,
    EmailTemplateFactory,
    SmsTemplateFactory,
)
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db

UNSUBSCRIBE = '<p><a href="{{ unsubscribe_url }}">Wypisz się</a></p>'
MODELS = (
    "messagetemplate",
    "campaign",
    "campaignevent",
    "flow",
    "delivery",
    "deliveryevent",
    "coupon",
)


def url(name, *args):
    return reverse(f"admin:campaigns_{name}", args=args)


def messages_of(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def management(prefix, total=0, initial=0):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def action(name, *objects):
    return {"action": name, ACTION_CHECKBOX_NAME: [str(obj.pk) for obj in objects]}


def offered_actions(page):
    form = page.context["action_form"]
    return set() if form is None else set(dict(form.fields["action"].choices))


def errors_of(response):
    """The form's errors by field name ("__all__" for the others)."""
    form = response.context["adminform"].form
    return {name: list(errors) for name, errors in form.errors.items()}


@pytest.fixture(autouse=True)
def _english(client):
    """Texts are checked in English (Polish is the default language)."""
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def login(client, make_staff):
    def as_role(*role_names, username):
        user = make_staff(*role_names, username=username)
        client.force_login(user)
        client.user = user
        return client

    return as_role


@pytest.fixture
def marketing(login):
    return login(roles.MARKETING, username="marta")


@pytest.fixture
def dpo(login):
    return login(roles.DATA_PROTECTION_OFFICER, username="iod")


@pytest.fixture
def superuser(client, django_user_model):
    user = django_user_model.objects.create_superuser(
        username="root", password="test-pass-123", email="root@example.com"
    )
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def segment(db):
    segment = Segment.objects.create(name="Lista", kind=Segment.Kind.STATIC)
    SegmentMembership.objects.bulk_create(
        SegmentMembership(segment=segment, customer=c, entered_at=timezone.now())
        for c in CustomerFactory.create_batch(2)
    )
    return segment


@pytest.fixture
def template(db):
    return EmailTemplateFactory(name="Jesień")


@pytest.fixture
def draft(purposes, template, segment):
    return campaign_create(
        actor=None, name="Jesienna wyprzedaż", template=template, segment=segment
    )


@pytest.fixture
def sent(purposes, segment):
    """A campaign that went out: its deliveries, an open, a click and a coupon."""
    campaign = campaign_create(
        actor=None,
        name="Lato",
        template=EmailTemplateFactory(),
        segment=segment,
        coupon_prefix="LATO",
    )
    campaign_transition(campaign=campaign, status=Campaign.Status.SENDING)
    campaign_prepare(campaign=campaign)
    delivery = campaign.deliveries.first()
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENT, reason="", sent_at=timezone.now()
    )
    DeliveryEvent.objects.create(delivery=delivery, kind=DeliveryEvent.Kind.OPEN)
    DeliveryEvent.objects.create(
        delivery=delivery,
        kind=DeliveryEvent.Kind.CLICK,
        url="https://sklep.example.pl/promocja",
    )
    Coupon.objects.create(
        code="LATO-ABCDEFGH",
        customer=delivery.customer,
        delivery=delivery,
        valid_from=timezone.now(),
        valid_until=timezone.now() + dt.timedelta(days=30),
    )
    return campaign_transition(campaign=campaign, status=Campaign.Status.SENT)


@pytest.fixture
def flows(purposes):
    flows_ensure()
    return {flow.kind: flow for flow in Flow.objects.all()}


@pytest.fixture
def everything(draft, sent, flows):
    """One row of each model."""
    delivery = sent.deliveries.get(status=Delivery.Status.SENT)
    return {
        "messagetemplate": draft.template,
        "campaign": draft,
        "campaignevent": draft.events.first(),
        "flow": flows[Flow.Kind.ABANDONED_CART],
        "delivery": delivery,
        "deliveryevent": delivery.events.first(),
        "coupon": delivery.coupon,
    }


def template_data(**overrides):
    data = {
        "name": "Newsletter",
        "channel": "email",
        "subject": "Cześć {{ first_name }}",
        "html": "<p>Dzień dobry {{ first_name }}</p>" + UNSUBSCRIBE,
        "text": "",
    }
    data.update(overrides)
    return data


def campaign_change_data(campaign, **overrides):
    data = {
        "name": campaign.name,
        "template": campaign.template_id,
        "segment": campaign.segment_id,
        "purpose": campaign.purpose_id,
        "coupon_prefix": campaign.coupon_prefix,
        "coupon_validity_days": campaign.coupon_validity_days,
        **management(
            "events", total=campaign.events.count(), initial=campaign.events.count()
        ),
    }
    data.update(overrides)
    return data


def flow_data(flow, **overrides):
    data = {
        "is_active": "on" if flow.is_active else "",
        "template": flow.template_id or "",
        "delay_hours": flow.delay_hours,
        "purpose": flow.purpose_id,
        "coupon_prefix": flow.coupon_prefix,
        "coupon_validity_days": flow.coupon_validity_days,
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value != ""}


# --- Every page renders ------------------------------------------------------------


@pytest.mark.parametrize("who", ["superuser", "marketing"])
def test_every_page_renders(request, who, everything):
    client = request.getfixturevalue(who)
    for model in MODELS:
        assert client.get(url(f"{model}_changelist")).status_code == 200, model
        obj = everything[model]
        assert client.get(url(f"{model}_change", obj.pk)).status_code == 200, model
    for model in ("messagetemplate", "campaign"):
        assert client.get(url(f"{model}_add")).status_code == 200, model
    for model in ("campaignevent", "flow", "delivery", "deliveryevent", "coupon"):
        assert client.get(url(f"{model}_add")).status_code == 403, model


def test_the_dpo_reads_and_changes_nothing(dpo, everything):
    for model in MODELS:
        obj = everything[model]
        page = dpo.get(url(f"{model}_change", obj.pk))
        assert page.status_code == 200, model
        assert not page.context["has_change_permission"], model
    page = dpo.get(url("campaign_changelist"))
    assert offered_actions(page) == set()
    assert dpo.get(url("campaign_add")).status_code == 403


# --- Templates -----------------------------------------------------------------------


def test_a_template_is_saved_through_the_service_sanitised(marketing):
    html = '<p class="big">Dzień dobry {{ first_name }}</p>' + UNSUBSCRIBE
    response = marketing.post(url("messagetemplate_add"), template_data(html=html))
    assert response.status_code == 302
    template = MessageTemplate.objects.get()
    assert template.created_by == marketing.user
    assert 'class="big"' not in template.html
    assert 'rel="noopener"' in template.html  # what template_save stores
    assert LogEntry.objects.filter(object_id=str(template.pk)).exists()


def test_an_unknown_merge_tag_is_an_error_on_its_field(marketing):
    response = marketing.post(
        url("messagetemplate_add"),
        template_data(
            subject="Cześć {{ imie }}",
            html="<p>{{ customer.email }}</p>" + UNSUBSCRIBE,
        ),
    )
    assert response.status_code == 200
    errors = errors_of(response)
    assert 'Unknown merge tag "{{ imie }}"' in errors["subject"][0]
    assert "Template code is not allowed" in errors["html"][0]
    assert not MessageTemplate.objects.exists()


def test_a_used_templates_channel_cannot_change(marketing, draft):
    template = draft.template
    response = marketing.post(
        url("messagetemplate_change", template.pk),
        template_data(name=template.name, channel="sms", text="Hej {{ first_name }}"),
    )
    assert response.status_code == 200
    assert "channel cannot change" in errors_of(response)["channel"][0]
    template.refresh_from_db()
    assert template.channel == "email"


def test_the_change_page_previews_the_email_in_a_sandbox(marketing):
    template = EmailTemplateFactory(
        html="<p>Dzień dobry {{ first_name }} <b>&lt;script&gt;</b></p>" + UNSUBSCRIBE
    )
    page = marketing.get(url("messagetemplate_change", template.pk))
    html = page.content.decode()
    (frame,) = re.findall(r"<iframe [^>]*>", html)
    assert 'sandbox=""' in frame
    document = unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1))
    assert "Dzień dobry Anna" in document  # the sample values
    assert "&lt;script&gt;" in document  # the staff's text, still escaped inside
    assert "<script" not in html.split("<iframe", 1)[1].split("</iframe>")[0]
    assert "Cześć Anna!" in html  # the subject


def test_the_change_page_shows_the_sms_and_its_length(marketing):
    template = SmsTemplateFactory(text="Zażółć {{ first_name }}")
    page = marketing.get(url("messagetemplate_change", template.pk))
    html = page.content.decode()
    assert "Zażółć Anna" in html
    assert "11 / 70 · 1 SMS · UCS-2" in html
    assert 'data-sms-counter="id_text-sms-count"' in html
    assert "js/sms-counter.js" in html


# --- Campaigns -----------------------------------------------------------------------


def test_marketing_adds_a_campaign_through_the_service(
    marketing, template, segment, purposes
):
    response = marketing.post(
        url("campaign_add"),
        {
            "name": " Jesień ",
            "template": template.pk,
            "segment": segment.pk,
            "purpose": "",
            "coupon_prefix": "jesien",
            "coupon_validity_days": 14,
        },
    )
    assert response.status_code == 302
    campaign = Campaign.objects.get()
    assert (campaign.name, campaign.status, campaign.channel) == (
        "Jesień",
        "draft",
        "email",
    )
    assert campaign.purpose == purposes["email_marketing"]
    assert campaign.coupon_prefix == "JESIEN"
    event = campaign.events.get()
    assert (event.kind, event.actor) == ("created", marketing.user)


def test_the_services_refusals_show_on_the_fields(marketing, template, segment):
    sms = SmsTemplateFactory()
    response = marketing.post(
        url("campaign_add"),
        {
            "name": "Jesień",
            "template": sms.pk,
            "segment": segment.pk,
            "purpose": Flow._meta.get_field("purpose")
            .related_model.objects.get(code="email_marketing")
            .pk,
            "coupon_prefix": "ZŁY KOD",
            "coupon_validity_days": 14,
        },
    )
    assert response.status_code == 200
    errors = errors_of(response)
    assert "marketing consent for the SMS channel" in errors["purpose"][0]
    assert not Campaign.objects.exists()


def test_a_draft_is_changed_through_campaign_update(marketing, draft):
    sms = SmsTemplateFactory()
    response = marketing.post(
        url("campaign_change", draft.pk),
        campaign_change_data(draft, name="Zimowa wyprzedaż", template=sms.pk),
    )
    assert response.status_code == 302, errors_of(response)
    draft.refresh_from_db()
    assert draft.name == "Zimowa wyprzedaż"
    # The template changed channel: the service took the SMS consent along.
    assert (draft.channel, draft.purpose.code) == ("sms", "sms_marketing")
    event = draft.events.get(kind="updated")
    assert event.actor == marketing.user
    assert set(event.data) == {"name", "template", "purpose"}


def test_a_campaign_that_has_started_is_read_only(marketing, sent):
    page = marketing.get(url("campaign_change", sent.pk))
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert not page.context["has_delete_permission"]
    response = marketing.post(
        url("campaign_change", sent.pk), campaign_change_data(sent, name="Inna")
    )
    assert response.status_code == 403
    assert marketing.get(url("campaign_delete", sent.pk)).status_code == 403
    sent.refresh_from_db()
    assert sent.name == "Lato"


def test_the_change_page_links_to_the_campaign_page(marketing, sent):
    page = marketing.get(url("campaign_change", sent.pk))
    assert f'href="{reverse("campaigns:detail", args=[sent.pk])}"' in (
        page.content.decode()
    )


def test_the_status_is_never_a_form_field(marketing, draft):
    page = marketing.get(url("campaign_change", draft.pk))
    assert "status" not in page.context["adminform"].form.fields
    marketing.post(
        url("campaign_change", draft.pk),
        campaign_change_data(draft, status="sent"),
    )
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_marketing_deletes_a_draft_but_never_in_bulk(marketing, draft):
    page = marketing.get(url("campaign_changelist"))
    assert offered_actions(page) == {"", "send_now", "pause", "resume", "cancel"}
    page = marketing.get(url("campaign_delete", draft.pk))
    assert page.status_code == 200
    assert dict(page.context["model_count"]) == {"campaigns": 1, "campaign events": 1}
    response = marketing.post(url("campaign_delete", draft.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Campaign.objects.exists()
    assert not CampaignEvent.objects.exists()


def test_send_now_starts_sending_through_the_service(
    marketing, draft, campaigns_tasks_sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = marketing.post(url("campaign_changelist"), action("send_now", draft))
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == "sending"
    assert draft.started_at is not None
    event = draft.events.get(kind="status")
    assert (event.old_status, event.new_status, event.actor) == (
        "draft",
        "sending",
        marketing.user,
    )
    assert ("campaigns.tasks.campaign_prepare_task", (draft.pk,), {}) in (
        campaigns_tasks_sent
    )
    assert messages_of(response) == ["“Jesienna wyprzedaż”: sending started."]


def test_pause_resume_and_cancel(marketing, draft, django_capture_on_commit_callbacks):
    campaign_start(campaign=draft)
    for name, status in (
        ("pause", "paused"),
        ("resume", "sending"),
        ("cancel", "cancelled"),
    ):
        with django_capture_on_commit_callbacks(execute=True):
            response = marketing.post(url("campaign_changelist"), action(name, draft))
        draft.refresh_from_db()
        assert draft.status == status, name
        event = draft.events.order_by("-at", "-pk").first()
        assert (event.new_status, event.actor) == (status, marketing.user)
    assert messages_of(response) == [
        "“Jesienna wyprzedaż”: paused.",
        "“Jesienna wyprzedaż”: sending resumed.",
        "“Jesienna wyprzedaż”: cancelled.",
    ]


def test_each_refusal_is_reported_with_the_services_message(marketing, draft, sent):
    response = marketing.post(url("campaign_changelist"), action("pause", draft, sent))
    assert messages_of(response) == [
        "“Jesienna wyprzedaż”: A campaign that is draft cannot become paused.",
        "“Lato”: A campaign that is sent cannot become paused.",
    ]
    draft.refresh_from_db()
    sent.refresh_from_db()
    assert (draft.status, sent.status) == ("draft", "sent")
    assert not CampaignEvent.objects.filter(new_status="paused").exists()


def test_the_actions_need_the_send_permission(dpo, draft):
    response = dpo.post(url("campaign_changelist"), action("send_now", draft))
    assert response.status_code == 200  # the list again, nothing done
    draft.refresh_from_db()
    assert draft.status == "draft"
    assert not draft.events.filter(kind="status").exists()


def test_the_campaign_list_takes_a_fixed_number_of_queries(
    marketing, purposes, segment, django_assert_max_num_queries
):
    for n in range(15):
        campaign_create(
            actor=None, name=f"K{n}", template=EmailTemplateFactory(), segment=segment
        )
    with django_assert_max_num_queries(13):
        assert marketing.get(url("campaign_changelist")).status_code == 200


# --- Flows ---------------------------------------------------------------------------


def test_marketing_switches_a_flow_on_through_flow_update(marketing, flows, template):
    flow = flows[Flow.Kind.ABANDONED_CART]
    response = marketing.post(
        url("flow_change", flow.pk),
        flow_data(flow, is_active="on", template=template.pk, delay_hours=2),
    )
    assert response.status_code == 302, errors_of(response)
    flow.refresh_from_db()
    assert (flow.is_active, flow.template, flow.delay_hours) == (True, template, 2)
    assert flow.activated_at is not None
    # One history entry, the service's, naming what changed.
    (entry,) = LogEntry.objects.filter(object_id=str(flow.pk))
    assert entry.user == marketing.user
    message = entry.get_change_message().lower()
    assert "template" in message
    assert "delay" in message


def test_a_flow_without_a_template_stays_off(marketing, flows):
    flow = flows[Flow.Kind.WELCOME]
    response = marketing.post(
        url("flow_change", flow.pk), flow_data(flow, is_active="on")
    )
    assert response.status_code == 200
    assert "template" in errors_of(response)
    flow.refresh_from_db()
    assert not flow.is_active
    assert flow.activated_at is None


def test_flows_are_never_added_or_deleted(marketing, flows):
    flow = flows[Flow.Kind.WELCOME]
    assert marketing.get(url("flow_add")).status_code == 403
    assert marketing.get(url("flow_delete", flow.pk)).status_code == 403
    page = marketing.get(url("flow_changelist"))
    assert len(page.context["cl"].result_list) == 5
    assert "delete_selected" not in offered_actions(page)


# --- What was sent -------------------------------------------------------------------


def test_deliveries_are_read_only_and_opening_one_is_logged(marketing, sent):
    delivery = sent.deliveries.get(status=Delivery.Status.SENT)
    page = marketing.get(url("delivery_change", delivery.pk))
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    html = page.content.decode()
    assert "LATO-ABCDEFGH" in html
    assert "https://sklep.example.pl/promocja" in html  # the events inline
    entry = AccessLog.objects.get()
    assert (entry.customer, entry.action, entry.user) == (
        delivery.customer,
        "view",
        marketing.user,
    )
    assert marketing.post(url("delivery_change", delivery.pk), {}).status_code == 403
    assert marketing.get(url("delivery_delete", delivery.pk)).status_code == 403
    assert marketing.get(url("delivery_add")).status_code == 403


@pytest.mark.parametrize("model", ["deliveryevent", "coupon"])
def test_a_customers_events_and_coupons_are_logged_too(marketing, sent, model):
    delivery = sent.deliveries.get(status=Delivery.Status.SENT)
    obj = delivery.coupon if model == "coupon" else delivery.events.first()
    assert marketing.get(url(f"{model}_change", obj.pk)).status_code == 200
    assert AccessLog.objects.get().customer == delivery.customer


def test_the_delivery_list_never_counts_the_table(
    marketing, sent, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12) as few:
        marketing.get(url("delivery_changelist"))
    DeliveryFactory.create_batch(10, campaign=sent)
    with django_assert_max_num_queries(len(few)):
        page = marketing.get(url("delivery_changelist"))
    changelist = page.context["cl"]
    assert isinstance(changelist.paginator, EstimatedCountPaginator)
    assert changelist.show_full_result_count is False
    assert len(changelist.result_list) == 12
    assert not AccessLog.objects.exists()  # a list is not a customer's record


def test_the_delivery_list_filters_and_searches(marketing, sent):
    delivery = sent.deliveries.get(status=Delivery.Status.SENT)
    page = marketing.get(url("delivery_changelist"), {"status__exact": "sent"})
    assert [d.pk for d in page.context["cl"].result_list] == [delivery.pk]
    page = marketing.get(url("delivery_changelist"), {"q": delivery.customer.email})
    assert [d.pk for d in page.context["cl"].result_list] == [delivery.pk]
    page = marketing.get(url("delivery_changelist"), {"campaign__id__exact": sent.pk})
    assert len(page.context["cl"].result_list) == 2


def test_a_coupon_is_found_by_its_code(marketing, sent):
    page = marketing.get(url("coupon_changelist"), {"q": " lato-abcdefgh "})
    assert [c.code for c in page.context["cl"].result_list] == ["LATO-ABCDEFGH"]
    page = marketing.get(url("coupon_changelist"), {"q": "LATO"})
    assert list(page.context["cl"].result_list) == []
