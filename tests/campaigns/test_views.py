"""The campaigns staff pages: lists, template editor and preview, campaign editor,
actions along the status table, progress, report and history."""

import datetime as dt
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from campaigns import views
from campaigns.models import Campaign, CampaignEvent, Delivery, MessageTemplate
from campaigns.services import campaign_create, campaign_schedule, campaign_start
from campaigns.tasks import campaign_prepare_task, campaign_send_task
from consents.models import AccessLog
from consents.services import consent_grant, consent_text_current
from segments.models import Segment
from segments.services import segment_create, segment_members_add
from tests.factories.campaigns import (
    CampaignFactory,
    DeliveryFactory,
    EmailTemplateFactory,
    SmsTemplateFactory,
)
from tests.factories.customers import CustomerFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db

LIST = reverse("campaigns:list")
CREATE = reverse("campaigns:create")
TEMPLATES = reverse("campaigns:template_list")
TEMPLATE_CREATE = reverse("campaigns:template_create")
PREVIEW = reverse("campaigns:template_preview")
FRAME = reverse("campaigns:template_frame")
AUDIENCE = reverse("campaigns:audience")
UNSUBSCRIBE = '<p><a href="{{ unsubscribe_url }}">Wypisz się</a></p>'


@pytest.fixture(autouse=True)
def _english(client):
    """Texts are checked in English (Polish is the default language)."""
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def marketing(client, make_staff, purposes):
    user = make_staff("Marketing", username="magda")
    user.email = "magda@sklep.example.pl"
    user.save(update_fields=["email"])
    client.force_login(user)
    return user


def grant(customer, purposes, code="email_marketing"):
    consent_grant(
        customer=customer,
        purpose=code,
        text=consent_text_current(purpose=purposes[code], language="pl"),
        source="newsletter_form",
        occurred_at=timezone.now() - dt.timedelta(days=3),
    )


@pytest.fixture
def audience(purposes):
    """A static segment of four: three agreed to emails, one did not."""
    consenting = [
        CustomerFactory(first_name=name, email=f"{name.lower()}@example.pl")
        for name in ("Ala", "Basia", "Celina")
    ]
    for customer in consenting:
        grant(customer, purposes)
    refused = CustomerFactory(first_name="Darek", email="darek@example.pl")
    segment = segment_create(name="Targi", kind="static")
    segment_members_add(segment=segment, customers=[*consenting, refused])
    segment.refresh_from_db()
    return {"segment": segment, "consenting": consenting, "refused": refused}


@pytest.fixture
def segment(audience):
    return audience["segment"]


@pytest.fixture
def template(db):
    return EmailTemplateFactory(name="Wiosna")


@pytest.fixture
def campaign(template, segment):
    return campaign_create(
        actor=None, name="Wiosenna", template=template, segment=segment
    )


def detail_url(campaign):
    return reverse("campaigns:detail", args=[campaign.pk])


def template_data(**fields):
    data = {
        "name": "Newsletter",
        "channel": "email",
        "subject": "Cześć {{ first_name }}!",
        "html": "<p>Dzień dobry {{ first_name }}</p>" + UNSUBSCRIBE,
        "text": "",
        "preview_as": "",
    }
    data.update(fields)
    return data


def campaign_data(template, segment, **fields):
    data = {
        "name": "Majowa",
        "template": template.pk,
        "segment": segment.pk,
        "purpose": "",
        "coupon_prefix": "",
        "coupon_validity_days": "30",
        "scheduled_at": "",
        "action": "save",
    }
    data.update(fields)
    return data


def run_worker(campaign):
    """What the worker does after the start: choose the audience, send batches."""
    campaign_prepare_task(campaign.pk)
    for _ in range(5):
        campaign_send_task(campaign.pk)
        campaign.refresh_from_db()
        if campaign.status != Campaign.Status.SENDING:
            break
    return campaign


# ---------- Who may do what ----------


@pytest.mark.parametrize(
    "url",
    [
        LIST,
        CREATE,
        TEMPLATES,
        TEMPLATE_CREATE,
        AUDIENCE,
        reverse("campaigns:detail", args=[1]),
        reverse("campaigns:progress", args=[1]),
        reverse("campaigns:template_edit", args=[1]),
        f"{PREVIEW}?template=1",
        f"{FRAME}?template=1",
    ],
)
def test_anonymous_users_are_sent_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{reverse('login')}?next=")


@pytest.mark.parametrize(
    ("role", "view_status", "write_status"),
    [
        ("Marketing", 200, 200),
        ("Manager", 200, 200),
        ("Data protection officer", 200, 403),
        ("Support", 403, 403),
    ],
)
def test_pages_per_role(client, make_staff, campaign, role, view_status, write_status):
    client.force_login(make_staff(role))
    template_edit = reverse("campaigns:template_edit", args=[campaign.template_id])
    for url in (
        LIST,
        TEMPLATES,
        detail_url(campaign),
        template_edit,
        f"{PREVIEW}?template={campaign.template_id}",
        f"{FRAME}?template={campaign.template_id}",
    ):
        assert client.get(url).status_code == view_status, url
    for url in (CREATE, TEMPLATE_CREATE, reverse("campaigns:edit", args=[campaign.pk])):
        assert client.get(url).status_code == write_status, url
    for name in ("send", "pause", "resume", "cancel", "unschedule"):
        response = client.post(reverse(f"campaigns:{name}", args=[campaign.pk]))
        assert response.status_code == (302 if write_status == 200 else 403), name
    assert client.post(template_edit, template_data()).status_code == (
        302 if write_status == 200 else 403
    )
    assert client.post(PREVIEW, template_data()).status_code == write_status


def test_staff_without_a_campaigns_role_get_403(client, make_staff):
    client.force_login(make_staff())
    assert client.get(LIST).status_code == 403
    assert client.get(TEMPLATES).status_code == 403


def test_main_navigation_and_buttons_follow_permissions(client, make_staff, campaign):
    client.force_login(make_staff("Data protection officer"))
    content = client.get(LIST).content.decode()
    assert f'href="{LIST}" aria-current="page"' in content
    assert f'href="{CREATE}"' not in content
    content = client.get(detail_url(campaign)).content.decode()
    assert reverse("campaigns:send", args=[campaign.pk]) not in content
    assert reverse("campaigns:edit", args=[campaign.pk]) not in content
    # The DPO reads a template without being able to change it.
    edit = client.get(reverse("campaigns:template_edit", args=[campaign.template_id]))
    assert edit.context["read_only"]
    assert 'name="action"' not in edit.content.decode()

    client.force_login(make_staff("Marketing"))
    content = client.get(LIST).content.decode()
    assert f'href="{CREATE}"' in content
    content = client.get(detail_url(campaign)).content.decode()
    assert reverse("campaigns:send", args=[campaign.pk]) in content

    client.force_login(make_staff("Support"))
    content = client.get(reverse("customers:list")).content.decode()
    assert f'href="{LIST}"' not in content


def test_without_the_send_permission_nothing_is_scheduled_or_sent(
    client, django_user_model, campaign
):
    user = django_user_model.objects.create_user("redaktor", password="x")
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="campaigns",
            codename__in=[
                "view_campaign",
                "add_campaign",
                "change_campaign",
                "view_messagetemplate",
            ],
        )
    )
    client.force_login(user)
    edit = reverse("campaigns:edit", args=[campaign.pk])
    page = client.get(edit).content.decode()
    assert 'value="schedule"' not in page
    assert "need the permission to send campaigns" in page
    later = (timezone.localtime() + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    data = campaign_data(
        campaign.template, campaign.segment, action="schedule", scheduled_at=later
    )
    assert client.post(edit, data).status_code == 403
    send = reverse("campaigns:send", args=[campaign.pk])
    assert client.get(send).status_code == 403
    assert client.post(send).status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    # Saving is allowed.
    assert (
        client.post(
            edit, campaign_data(campaign.template, campaign.segment)
        ).status_code
        == 302
    )


# ---------- Templates ----------


def test_template_list_shows_channel_and_use(client, marketing, campaign):
    SmsTemplateFactory(name="Przypomnienie")
    response = client.get(TEMPLATES)
    content = response.content.decode()
    assert [t.name for t in response.context["templates"]] == [
        "Przypomnienie",
        "Wiosna",
    ]
    row = content.split(f'data-template="{campaign.template_id}"')[1].split("</tr>")[0]
    assert "Email" in row
    assert "Cześć {{ first_name }}!" in row
    assert '<td class="num">1</td>' in row
    assert f'href="{TEMPLATE_CREATE}"' in content


def test_editor_has_merge_tags_counter_and_no_inline_script(client, marketing):
    content = client.get(TEMPLATE_CREATE).content.decode()
    assert 'data-merge-tag="first_name"' in content
    assert 'data-merge-tag="unsubscribe_url"' in content
    assert "The customer&#x27;s first name." in content
    assert 'data-sms-counter="sms-count"' in content
    assert 'id="sms-count"' in content
    assert "data-format-few=" in content
    assert "js/sms-counter.js" in content
    assert "js/campaigns.js" in content
    assert f'hx-post="{PREVIEW}"' in content
    assert f'formaction="{FRAME}"' in content
    assert "<script>" not in content
    assert " style=" not in content


def test_create_an_email_template(client, marketing):
    response = client.post(TEMPLATE_CREATE, template_data())
    template = MessageTemplate.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "campaigns:template_edit", args=[template.pk]
    )
    assert (template.name, template.channel, template.created_by) == (
        "Newsletter",
        "email",
        marketing,
    )
    assert template.subject == "Cześć {{ first_name }}!"
    page = client.get(response["Location"]).content.decode()
    assert "“Newsletter” is saved." in page


def test_an_sms_template_keeps_its_text_only(client, marketing):
    data = template_data(channel="sms", text="Hej {{ first_name }}, -20%!\r\nDo jutra.")
    assert client.post(TEMPLATE_CREATE, data).status_code == 302
    template = MessageTemplate.objects.get()
    assert (template.channel, template.subject, template.html) == ("sms", "", "")
    assert template.text == "Hej {{ first_name }}, -20%!\nDo jutra."


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"subject": "Cześć {{ imie }}"},
            "subject",
            "Unknown merge tag &quot;{{ imie }}&quot;",
        ),
        ({"html": "<p>Bez linku</p>"}, "html", "Every email needs an unsubscribe link"),
        ({"channel": "sms", "text": ""}, "text", "Write the text of the SMS."),
        ({"name": ""}, "name", "This field is required."),
    ],
)
def test_template_errors_are_shown_and_nothing_is_saved(
    client, marketing, fields, field, message
):
    response = client.post(TEMPLATE_CREATE, template_data(**fields))
    assert response.status_code == 200
    assert response.context["form"].errors[field]
    assert message in response.content.decode()
    assert not MessageTemplate.objects.exists()


def test_changing_a_template_in_use_keeps_its_channel(client, marketing, campaign):
    edit = reverse("campaigns:template_edit", args=[campaign.template_id])
    response = client.post(edit, template_data(channel="sms", text="Hej!"))
    assert response.status_code == 200
    assert response.context["form"].errors["channel"]
    assert "its channel cannot change" in response.content.decode()
    campaign.template.refresh_from_db()
    assert campaign.template.channel == "email"


# ---------- Preview and test sends ----------


def test_preview_never_runs_template_code(client, marketing):
    code = "{% debug %}{{ settings.SECRET_KEY }}"
    data = template_data(subject=code, html=f"<p>{code}</p>" + UNSUBSCRIBE)
    response = client.post(PREVIEW, data, HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert response.status_code == 200
    assert django_settings.SECRET_KEY not in content
    assert "data-preview-errors" in content
    assert "Template code is not allowed: {% debug %}" in content
    # The subject is shown as written, never evaluated.
    assert "{% debug %}{{ settings.SECRET_KEY }}</strong>" in content
    assert 'data-frame="post"' in content

    frame = client.post(FRAME, data)
    body = frame.content.decode()
    assert frame.status_code == 200
    assert django_settings.SECRET_KEY not in body
    assert "{% debug %}{{ settings.SECRET_KEY }}" in body
    assert "<script" not in body
    assert MessageTemplate.objects.count() == 0


def test_the_preview_frame_is_sandboxed_and_only_it_may_be_framed(
    client, marketing, template
):
    frame = client.get(FRAME, {"template": template.pk})
    assert frame["Content-Type"] == "text/html; charset=utf-8"
    policy = frame["Content-Security-Policy"]
    assert policy.startswith("sandbox;")
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    assert frame["X-Frame-Options"] == "SAMEORIGIN"
    assert frame["Cache-Control"] == "no-store"
    body = frame.content.decode()
    assert "Anna" in body  # sample values
    assert "/c/unsubscribe/preview/" in body
    # Every other page stays unframeable.
    assert client.get(TEMPLATES)["X-Frame-Options"] == "DENY"


def test_preview_of_a_saved_template_for_the_campaign_editor(
    client, marketing, template
):
    content = client.get(PREVIEW, {"template": template.pk}).content.decode()
    assert "<strong data-preview-subject>Cześć Anna!</strong>" in content
    assert f'src="{FRAME}?template={template.pk}"' in content
    assert 'sandbox=""' in content
    sms = SmsTemplateFactory(text="Hej {{ first_name }}!")
    content = client.get(PREVIEW, {"template": sms.pk}).content.decode()
    assert "Hej Anna!" in content
    assert "<iframe" not in content
    assert client.get(PREVIEW, {"template": "x"}).status_code == 404


def test_preview_as_a_customer_is_access_logged(client, marketing):
    zofia = CustomerFactory(first_name="Zofia", email="zofia@example.pl")
    data = template_data(preview_as="ZOFIA@example.pl")
    content = client.post(PREVIEW, data).content.decode()
    assert "<strong data-preview-subject>Cześć Zofia!</strong>" in content
    assert f"(#{zofia.pk})" in content
    log = AccessLog.objects.get(customer=zofia)
    assert (log.user, log.action, log.purpose) == (
        marketing,
        "view",
        "campaign preview",
    )

    body = client.post(FRAME, template_data(preview_as=f"#{zofia.pk}")).content
    assert "Zofia" in body.decode()

    content = client.post(PREVIEW, template_data(preview_as="nikt@example.pl"))
    assert "No customer matches “nikt@example.pl”." in content.content.decode()


def test_preview_as_needs_access_to_customers(client, django_user_model):
    user = django_user_model.objects.create_user("pisarz", password="x")
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="campaigns",
            codename__in=["view_messagetemplate", "add_messagetemplate"],
        )
    )
    client.force_login(user)
    zofia = CustomerFactory(first_name="Zofia", email="zofia@example.pl")
    content = client.post(
        PREVIEW, template_data(preview_as="zofia@example.pl")
    ).content.decode()
    assert "needs access to customers" in content
    assert "Zofia" not in content
    assert not AccessLog.objects.filter(customer=zofia).exists()
    assert 'name="preview_as"' not in client.get(TEMPLATE_CREATE).content.decode()


def test_send_me_a_test_of_what_is_typed(client, marketing):
    response = client.post(TEMPLATE_CREATE, template_data(action="test"))
    assert response.status_code == 200
    (message,) = mail.outbox
    assert message.to == ["magda@sklep.example.pl"]
    assert message.subject == "[Test] Cześć Anna!"
    assert "A test was sent to magda@sklep.example.pl." in response.content.decode()
    # Nothing saved, and the editor keeps what was typed.
    assert not MessageTemplate.objects.exists()
    assert response.context["form"]["name"].value() == "Newsletter"


def test_a_test_of_a_template_with_errors_is_not_sent(client, marketing):
    response = client.post(
        TEMPLATE_CREATE, template_data(action="test", html="<p>Brak linku</p>")
    )
    assert "Every email needs an unsubscribe link" in response.content.decode()
    assert mail.outbox == []


def test_a_test_needs_an_email_address(client, marketing):
    marketing.email = ""
    marketing.save(update_fields=["email"])
    response = client.post(TEMPLATE_CREATE, template_data(action="test"))
    assert "Your account has no email address" in response.content.decode()
    assert mail.outbox == []


def test_campaign_test_send_is_in_its_history(client, marketing, campaign):
    response = client.post(reverse("campaigns:test", args=[campaign.pk]), follow=True)
    (message,) = mail.outbox
    assert message.subject.startswith("[Test] ")
    assert "A test was sent to magda@sklep.example.pl." in response.content.decode()
    event = CampaignEvent.objects.get(campaign=campaign, kind="test_sent")
    assert event.actor == marketing
    assert "to magda@sklep.example.pl" in response.content.decode()


# ---------- The campaign editor ----------


def test_create_a_draft_campaign(client, marketing, template, segment, purposes):
    response = client.post(
        CREATE, campaign_data(template, segment, coupon_prefix="maj")
    )
    campaign = Campaign.objects.get()
    assert response.status_code == 302
    assert response["Location"] == detail_url(campaign)
    assert (campaign.status, campaign.purpose, campaign.created_by) == (
        "draft",
        purposes["email_marketing"],
        marketing,
    )
    assert campaign.coupon_prefix == "MAJ"
    assert list(campaign.events.values_list("kind", "actor")) == [
        ("created", marketing.pk)
    ]


def test_editor_lists_active_segments_with_their_size(client, marketing, segment):
    asleep = segment_create(name="Uśpiony", kind="static")
    Segment.objects.filter(pk=asleep.pk).update(is_active=False)
    content = client.get(CREATE).content.decode()
    assert "Targi (4 members)" in content
    assert "Uśpiony" not in content
    assert f'hx-get="{AUDIENCE}"' in content


def test_sms_template_on_an_email_consent_is_refused(
    client, marketing, segment, purposes
):
    sms = SmsTemplateFactory()
    response = client.post(
        CREATE,
        campaign_data(sms, segment, purpose=purposes["email_marketing"].pk),
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "Choose a marketing consent for the SMS channel." in errors["purpose"]
    assert "Nothing was saved" in response.content.decode()
    assert not Campaign.objects.exists()


def test_a_past_moment_schedules_nothing_and_saves_nothing(
    client, marketing, template, segment
):
    past = (timezone.localtime() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        CREATE,
        campaign_data(template, segment, action="schedule", scheduled_at=past),
    )
    assert response.status_code == 200
    assert response.context["form"].errors["scheduled_at"] == [
        "Choose a moment in the future."
    ]
    assert not Campaign.objects.exists()

    response = client.post(CREATE, campaign_data(template, segment, action="schedule"))
    assert response.context["form"].errors["scheduled_at"] == [
        "Choose when to send it."
    ]


def test_schedule_in_warsaw_time_and_back_to_draft(
    client, marketing, campaign, django_capture_on_commit_callbacks
):
    edit = reverse("campaigns:edit", args=[campaign.pk])
    data = campaign_data(
        campaign.template,
        campaign.segment,
        name="Wiosenna",
        action="schedule",
        scheduled_at="2099-01-15T10:30",
    )
    response = client.post(edit, data, follow=True)
    campaign.refresh_from_db()
    assert campaign.status == "scheduled"
    # 10:30 in Warsaw in January is 09:30 UTC.
    assert campaign.scheduled_at == dt.datetime(2099, 1, 15, 9, 30, tzinfo=dt.UTC)
    content = response.content.decode()
    assert "“Wiosenna” will be sent on" in content
    assert "Draft → Scheduled" in content

    # The editor offers "Back to draft" for a scheduled campaign.
    page = client.get(edit).content.decode()
    unschedule = reverse("campaigns:unschedule", args=[campaign.pk])
    assert f'formaction="{unschedule}"' in page
    assert 'value="2099-01-15T10:30"' in page
    response = client.post(unschedule, follow=True)
    campaign.refresh_from_db()
    assert (campaign.status, campaign.scheduled_at) == ("draft", None)
    assert "is a draft again" in response.content.decode()
    assert list(campaign.events.values_list("old_status", "new_status")) == [
        ("", "draft"),
        ("draft", "scheduled"),
        ("scheduled", "draft"),
    ]


def test_saving_a_scheduled_campaign_with_a_new_time_reschedules_it(
    client, marketing, campaign
):
    campaign_schedule(
        campaign=campaign,
        at=dt.datetime(2099, 1, 15, 9, 30, tzinfo=dt.UTC),
        actor=marketing,
    )
    edit = reverse("campaigns:edit", args=[campaign.pk])
    same = campaign_data(
        campaign.template,
        campaign.segment,
        name="Wiosenna",
        scheduled_at="2099-01-15T10:30",
    )
    client.post(edit, same)
    assert campaign.events.count() == 2  # created, scheduled: nothing changed
    later = {**same, "scheduled_at": "2099-01-16T08:00"}
    response = client.post(edit, later, follow=True)
    campaign.refresh_from_db()
    assert campaign.status == "scheduled"
    assert campaign.scheduled_at == dt.datetime(2099, 1, 16, 7, 0, tzinfo=dt.UTC)
    assert "will be sent on" in response.content.decode()


def test_edit_records_what_changed(client, marketing, campaign, template):
    other = EmailTemplateFactory(name="Lato")
    edit = reverse("campaigns:edit", args=[campaign.pk])
    response = client.post(
        edit, campaign_data(other, campaign.segment, name="Letnia"), follow=True
    )
    campaign.refresh_from_db()
    assert (campaign.name, campaign.template) == ("Letnia", other)
    content = response.content.decode()
    assert "name: Wiosenna → Letnia" in content
    assert "template: Wiosna → Lato" in content


def test_a_started_campaign_cannot_be_edited(client, marketing, campaign):
    campaign_start(campaign=campaign, actor=marketing)
    edit = reverse("campaigns:edit", args=[campaign.pk])
    response = client.get(edit, follow=True)
    assert response.redirect_chain == [(detail_url(campaign), 302)]
    assert "A campaign that has started cannot be changed." in response.content.decode()
    response = client.post(edit, campaign_data(campaign.template, campaign.segment))
    assert response.status_code == 200
    assert "A campaign that has started cannot be changed." in response.content.decode()


def test_audience_estimate_is_one_query(audience, purposes, django_assert_num_queries):
    with django_assert_num_queries(1):
        estimate = views.audience_estimate(
            segment=audience["segment"], purpose=purposes["email_marketing"]
        )
    assert (estimate.members, estimate.consented) == (4, 3)
    sms = views.audience_estimate(
        segment=audience["segment"], purpose=purposes["sms_marketing"]
    )
    assert (sms.members, sms.consented) == (4, 0)


def test_audience_fragment_uses_the_template_channel(
    client, marketing, segment, purposes
):
    sms = SmsTemplateFactory()
    content = client.get(
        AUDIENCE, {"segment": segment.pk, "template": sms.pk, "purpose": ""}
    ).content.decode()
    assert 'data-estimate-members="4"' in content
    assert 'data-estimate-consented="0"' in content
    assert "An estimate" in content
    content = client.get(
        AUDIENCE, {"segment": segment.pk, "purpose": purposes["email_marketing"].pk}
    ).content.decode()
    assert 'data-estimate-consented="3"' in content
    assert "Choose a template and a segment" in client.get(AUDIENCE).content.decode()


# ---------- Sending, progress and the report ----------


def test_send_now_asks_first_then_starts(
    client,
    marketing,
    template,
    segment,
    campaigns_tasks_sent,
    django_capture_on_commit_callbacks,
):
    response = client.post(CREATE, campaign_data(template, segment, action="send"))
    campaign = Campaign.objects.get()
    send = reverse("campaigns:send", args=[campaign.pk])
    assert response["Location"] == send
    assert campaign.status == "draft"

    page = client.get(send)
    content = page.content.decode()
    assert page.context["estimate"].consented == 3
    assert 'data-estimate-consented="3"' in content
    assert "data-confirm-send" in content

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(send, follow=True)
    campaign.refresh_from_db()
    assert campaign.status == "sending"
    assert [name for name, *_ in campaigns_tasks_sent] == [
        "campaigns.tasks.campaign_prepare_task"
    ]
    content = response.content.decode()
    assert "is being sent" in content
    # The progress fragment asks again every 2 s while sending.
    assert 'hx-trigger="every 2s"' in content
    assert f"{reverse('campaigns:progress', args=[campaign.pk])}?poll=1" in content
    assert "Draft → Sending" in content

    # Sending twice is refused.
    response = client.post(send, follow=True)
    assert "Only a draft or a scheduled campaign can be sent now." in (
        response.content.decode()
    )


def test_progress_polls_while_sending_then_reloads_the_page(
    client, marketing, campaign
):
    campaign_start(campaign=campaign, actor=marketing)
    progress = reverse("campaigns:progress", args=[campaign.pk])
    content = client.get(progress, {"poll": 1}).content.decode()
    assert "Choosing the audience" in content
    assert 'hx-trigger="every 2s"' in content

    campaign_prepare_task(campaign.pk)
    content = client.get(progress, {"poll": 1}).content.decode()
    assert '<dd data-count="pending">3</dd>' in content
    assert '<dd data-count="skipped">1</dd>' in content
    assert 'value="1"' in content  # the skipped one is done

    campaign_send_task(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == "sent"
    response = client.get(progress, {"poll": 1})
    assert response.status_code == 204
    assert response["HX-Refresh"] == "true"
    content = client.get(progress).content.decode()
    assert "every 2s" not in content
    assert '<dd data-count="sent">3</dd>' in content


def test_pause_resume_and_cancel_go_through_the_services(
    client,
    marketing,
    campaign,
    campaigns_tasks_sent,
    django_capture_on_commit_callbacks,
):
    campaign_start(campaign=campaign, actor=marketing)
    campaign_prepare_task(campaign.pk)
    content = client.get(detail_url(campaign)).content.decode()
    assert reverse("campaigns:pause", args=[campaign.pk]) in content
    assert reverse("campaigns:resume", args=[campaign.pk]) not in content

    response = client.post(reverse("campaigns:pause", args=[campaign.pk]), follow=True)
    campaign.refresh_from_db()
    assert campaign.status == "paused"
    assert "Sending is paused" in response.content.decode()
    assert reverse("campaigns:resume", args=[campaign.pk]) in response.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("campaigns:resume", args=[campaign.pk]))
    campaign.refresh_from_db()
    assert campaign.status == "sending"
    assert campaigns_tasks_sent[-1][0] == "campaigns.tasks.campaign_send_task"

    cancel = reverse("campaigns:cancel", args=[campaign.pk])
    page = client.get(cancel).content.decode()
    assert "3 recipients are still waiting." in page
    assert "data-confirm-cancel" in page
    response = client.post(cancel, follow=True)
    campaign.refresh_from_db()
    assert campaign.status == "cancelled"
    assert "is cancelled" in response.content.decode()
    assert not campaign.deliveries.filter(status="pending").exists()
    assert list(
        campaign.events.filter(kind="status").values_list(
            "old_status", "new_status", "actor"
        )
    ) == [
        ("draft", "sending", marketing.pk),
        ("sending", "paused", marketing.pk),
        ("paused", "sending", marketing.pk),
        ("sending", "cancelled", marketing.pk),
    ]
    # Nothing is allowed any more; a late click says why.
    response = client.post(reverse("campaigns:pause", args=[campaign.pk]), follow=True)
    assert "A campaign that is cancelled cannot become paused." in (
        response.content.decode()
    )
    assert client.get(cancel).status_code == 302


def test_pausing_a_draft_is_refused(client, marketing, campaign):
    response = client.post(reverse("campaigns:pause", args=[campaign.pk]), follow=True)
    assert "A campaign that is draft cannot become paused." in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == "draft"


def test_report_shows_rates_revenue_reasons_and_chart(
    client, marketing, campaign, audience, store
):
    campaign_start(campaign=campaign, actor=marketing)
    run_worker(campaign)
    assert campaign.status == "sent"
    ala, basia, _celina = audience["consenting"]
    now = timezone.now()
    Delivery.objects.filter(campaign=campaign, customer=ala).update(
        opened_at=now, clicked_at=now
    )
    Delivery.objects.filter(campaign=campaign, customer=basia).update(opened_at=now)
    OrderFactory(
        store=store,
        customer=ala,
        placed_at=now + dt.timedelta(minutes=1),
        total=Decimal("1234.50"),
        currency="PLN",
        status="paid",
    )

    response = client.get(detail_url(campaign))
    content = response.content.decode()
    report = response.context["report"]
    assert (report.audience, report.sent, report.opens, report.clicks) == (4, 3, 2, 1)
    assert '<p class="kpi__value" data-report="open-rate">66.7%</p>' in content
    assert '<p class="kpi__value" data-report="click-rate">33.3%</p>' in content
    assert '<p class="kpi__value" data-report="click-to-open">50.0%</p>' in content
    assert '<p class="kpi__value" data-report="conversions">1</p>' in content
    assert "1,234.50\u00a0PLN" in content
    skipped = content.split("table--compact skipped")[1].split("</table>")[0]
    assert '<th scope="row">No consent</th><td class="num">1</td>' in skipped
    assert "An order counts for a message when it is paid" in content
    assert '<svg class="reportchart"' in content
    assert content.count("<polyline") == 3
    table = content.split("Messages per day")[1].split("</table>")[0]
    assert "<td>3</td><td>2</td><td>1</td><td>1</td>" in table
    assert "every 2s" not in content

    with translation.override("pl"):
        client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "pl"
        content = client.get(detail_url(campaign)).content.decode()
    assert "1\u00a0234,50\u00a0zł" in content
    assert "66,7%" in content


def test_list_shows_status_dates_counts_and_rates(client, marketing, segment, template):
    sent = CampaignFactory(name="Wysłana", segment=segment, template=template)
    sent.status, sent.started_at = "sent", timezone.now()
    sent.save()
    customers = [CustomerFactory() for _ in range(4)]
    now = timezone.now()
    for index, customer in enumerate(customers):
        DeliveryFactory(
            campaign=sent,
            customer=customer,
            status="sent" if index < 2 else "skipped",
            sent_at=now if index < 2 else None,
            opened_at=now if index == 0 else None,
        )
    draft = CampaignFactory(name="Szkic", segment=segment, template=template)
    content = client.get(LIST).content.decode()
    row = content.split(f'data-campaign="{sent.pk}"')[1].split("</tr>")[0]
    assert "Sent" in row
    assert '<td class="num">4</td>' in row
    assert '<td class="num">2</td>' in row
    assert "50.0%" in row  # one of two opened
    assert "0.0%" in row  # nobody clicked
    row = content.split(f'data-campaign="{draft.pk}"')[1].split("</tr>")[0]
    assert "Draft" in row
    assert "50.0%" not in row

    response = client.get(LIST, {"status": "draft"})
    assert [row.campaign for row in response.context["rows"]] == [draft]
    assert client.get(LIST, {"status": "bogus"}).context["rows"]


def test_list_queries_do_not_grow_with_the_campaigns(
    client, marketing, segment, template, django_assert_max_num_queries
):
    def add(count):
        for _ in range(count):
            campaign = CampaignFactory(segment=segment, template=template)
            DeliveryFactory(campaign=campaign, status="sent", sent_at=timezone.now())

    add(5)
    with CaptureQueriesContext(connection) as five:
        assert len(client.get(LIST).context["rows"]) == 5
    add(45)
    with django_assert_max_num_queries(len(five)):
        assert len(client.get(LIST).context["rows"]) == 50


def test_scheduled_campaign_page_offers_send_and_back_to_draft(
    client, marketing, campaign
):
    campaign_schedule(
        campaign=campaign, at=timezone.now() + dt.timedelta(days=1), actor=marketing
    )
    content = client.get(detail_url(campaign)).content.decode()
    assert reverse("campaigns:unschedule", args=[campaign.pk]) in content
    assert reverse("campaigns:send", args=[campaign.pk]) in content
    assert reverse("campaigns:cancel", args=[campaign.pk]) in content
    assert reverse("campaigns:pause", args=[campaign.pk]) not in content
    assert 'data-estimate-consented="3"' in content
    assert "Reschedule" in content
