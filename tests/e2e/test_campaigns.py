"""Campaigns in the browser: Marketing writes an email template and watches the
preview follow the typing, sends a campaign to a static list, and reads the report
with its chart once the worker is done; the SMS counter switches to UCS-2 for a
Polish letter."""

import datetime as dt
import re
import tempfile
from pathlib import Path

import pytest
from django.utils import timezone

from campaigns.models import Campaign, MessageTemplate
from campaigns.tasks import campaign_prepare_task, campaign_send_task
from consents.services import consent_grant, consent_text_current
from segments.services import segment_create, segment_members_add
from tests.factories.customers import CustomerFactory
from tests.staff import press_sign_in

pytestmark = pytest.mark.e2e

SHOTS = str(Path(tempfile.gettempdir()) / "e2e-campaigns-{}.png")
UNSUBSCRIBE = '<p><a href="{{ unsubscribe_url }}">Wypisz się</a></p>'


@pytest.fixture
def targi(purposes):
    """A static list of three: two agreed to emails, one did not."""
    people = [
        CustomerFactory(first_name=name, email=f"{name.lower()}@example.pl")
        for name in ("Ala", "Bartek", "Cezary")
    ]
    for customer in people[:2]:
        consent_grant(
            customer=customer,
            purpose="email_marketing",
            text=consent_text_current(
                purpose=purposes["email_marketing"], language="pl"
            ),
            source="newsletter_form",
            occurred_at=timezone.now() - dt.timedelta(days=3),
        )
    segment = segment_create(name="Targi 2026", kind="static")
    segment_members_add(segment=segment, customers=people)
    return segment


@pytest.fixture
def signed_in(live_server, page, make_staff):
    user = make_staff("Marketing", username="magda")
    user.email = "magda@sklep.example.pl"
    user.save(update_fields=["email"])
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(live_server.url + "/login/?next=/campaigns/")
    page.get_by_label("Nazwa użytkownika").fill("magda")
    page.get_by_label("Hasło").fill("test-pass-123")
    press_sign_in(page, "magda")
    page.wait_for_url(re.compile(r"/campaigns/$"))
    page.get_by_role("button", name="EN").click()
    page.wait_for_load_state()
    return errors


def live_frame(page):
    return page.frame_locator("iframe[data-preview-frame='live']")


def test_marketing_writes_a_template_and_sends_a_campaign(
    live_server, page, signed_in, targi
):
    errors = signed_in
    page.get_by_role("link", name="Message templates").click()
    page.get_by_role("link", name="New template").click()
    page.wait_for_url(re.compile(r"/campaigns/templates/new/$"))

    page.get_by_label("Name", exact=True).fill("Wiosna")
    page.get_by_label("HTML body").fill(
        "<p>Dzień dobry, nowa kolekcja już jest.</p>" + UNSUBSCRIBE
    )
    # The subject gets a merge tag from the list, at the cursor.
    subject = page.get_by_label("Subject")
    subject.fill("Cześć !")
    subject.press("End")
    subject.press("ArrowLeft")
    page.locator("[data-merge-tag='first_name']").click()
    assert subject.input_value() == "Cześć {{ first_name }}!"

    preview = page.locator("#template-preview")
    preview.locator("[data-preview-subject]", has_text="Cześć Anna!").wait_for()
    live_frame(page).get_by_text("nowa kolekcja już jest").wait_for()

    # Typing more: the sandboxed frame follows.
    page.get_by_label("HTML body").fill(
        "<p>Dzień dobry, <strong>-20%</strong> na wiosnę.</p>" + UNSUBSCRIBE
    )
    live_frame(page).get_by_text("na wiosnę").wait_for()
    assert page.locator("iframe[data-preview-frame]").count() == 1
    sandbox = page.locator("iframe[data-preview-frame='live']").get_attribute("sandbox")
    assert sandbox == ""
    # Preview as a customer: looked up on Enter, which never saves the form.
    page.get_by_label("Preview as").fill("ala@example.pl")
    page.get_by_label("Preview as").press("Enter")
    preview.locator("[data-preview-subject]", has_text="Cześć Ala!").wait_for()
    live_frame(page).get_by_text("na wiosnę").wait_for()
    assert page.url.endswith("/campaigns/templates/new/")
    assert not MessageTemplate.objects.exists()
    page.screenshot(path=SHOTS.format("template"), full_page=True)
    page.locator("iframe[data-preview-frame='live']").screenshot(
        path=SHOTS.format("frame")
    )

    page.get_by_role("button", name="Create template").click()
    page.wait_for_url(re.compile(r"/campaigns/templates/\d+/$"))
    assert "“Wiosna” is saved." in page.locator(".messages").inner_text()
    template = MessageTemplate.objects.get(name="Wiosna")
    assert template.subject == "Cześć {{ first_name }}!"

    # The campaign: the estimate follows the segment chosen.
    page.goto(live_server.url + "/campaigns/new/")
    page.get_by_label("Name", exact=True).fill("Wiosenna wyprzedaż")
    page.get_by_label("Template", exact=True).select_option(label="Wiosna (Email)")
    page.get_by_label("Segment", exact=True).select_option(
        label="Targi 2026 (3 members)"
    )
    page.locator("[data-estimate-consented='2']").wait_for()
    page.locator("#campaign-preview [data-preview-subject]").wait_for()
    page.screenshot(path=SHOTS.format("campaign"), full_page=True)

    page.get_by_role("button", name="Send now…").click()
    page.wait_for_url(re.compile(r"/campaigns/\d+/send/$"))
    assert page.locator("[data-estimate-members='3']").is_visible()
    page.screenshot(path=SHOTS.format("confirm"), full_page=True)
    page.get_by_role("button", name="Send now", exact=True).click()
    page.wait_for_url(re.compile(r"/campaigns/\d+/$"))
    campaign = Campaign.objects.get(name="Wiosenna wyprzedaż")
    assert campaign.status == Campaign.Status.SENDING
    assert page.locator("h1 [data-status]").inner_text() == "Sending"
    page.locator("#campaign-progress[data-progress-status='sending']").wait_for()

    # No worker here: the test does its job; the page's poll notices and reloads.
    campaign_prepare_task(campaign.pk)
    campaign_send_task(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    page.locator("h1 [data-status='sent']").wait_for(timeout=15_000)
    assert page.locator("[data-report='sent']").inner_text() == "2"
    assert page.locator("[data-report='skipped']").inner_text() == "1"
    chart = page.locator("svg[data-report-chart]")
    assert chart.is_visible()
    assert chart.locator("polyline").count() == 3
    assert "Sent → " not in page.content()
    assert page.get_by_text("Sending → Sent").is_visible()
    page.screenshot(path=SHOTS.format("report"), full_page=True)
    assert errors == [], errors


def test_sms_counter_switches_to_ucs2_for_polish_letters(live_server, page, signed_in):
    errors = signed_in
    page.goto(live_server.url + "/campaigns/templates/new/")
    page.locator("input[data-template-channel][value='sms']").check()
    text = page.get_by_label("SMS text")
    assert text.is_visible()
    assert not page.get_by_label("Subject").is_visible()
    counter = page.locator("#sms-count")

    text.type("Promocja tylko dzis")
    page.locator("#sms-count[data-encoding='GSM-7']").wait_for()
    assert "19 / 160" in counter.inner_text()
    text.type(" – zniżka")
    page.locator("#sms-count[data-encoding='UCS-2']").wait_for()
    summary = counter.inner_text()
    assert "/ 70" in summary
    assert "UCS-2" in summary
    assert "ż" in summary  # the note names the letters outside GSM-7

    # The preview shows the SMS as the customer gets it.
    page.locator("[data-preview-sms]", has_text="zniżka").wait_for()
    page.screenshot(path=SHOTS.format("sms"), full_page=True)
    assert errors == [], errors
