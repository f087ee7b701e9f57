"""The support desk in the browser: find a customer by phone as you type, log a
complaint about their order without leaving the page, and find it in the
timeline and in the complaints queue with its due date 14 days ahead."""

import re
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import formats, timezone, translation

from customers.interactions import answer_due
from customers.models import Customer, Interaction
from tests.factories.customers import CustomerFactory
from tests.factories.orders import OrderFactory
from tests.staff import press_sign_in

pytestmark = pytest.mark.e2e

SHOTS = str(Path(tempfile.gettempdir()) / "e2e-support-{}.png")


@pytest.fixture
def caller(store):
    for index in range(12):
        CustomerFactory(last_name=f"Sąsiad{index}")
    customer = CustomerFactory(
        first_name="Halina",
        last_name="Żółkiewska",
        email="halina.zolkiewska@example.pl",
        phone="+48501234567",
        status=Customer.Status.BUYER,
    )
    for number, days in (("ZAM/2026/00310", 20), ("ZAM/2026/00377", 6)):
        OrderFactory(
            store=store,
            customer=customer,
            number=number,
            status="delivered",
            placed_at=timezone.now() - timedelta(days=days),
            total=Decimal("149.00"),
        )
    return customer


def test_support_logs_a_complaint_from_a_phone_call(
    live_server, page, make_staff, caller
):
    make_staff("Support", username="beata")
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.goto(live_server.url + "/login/")
    page.get_by_label("Nazwa użytkownika").fill("beata")
    page.get_by_label("Hasło").fill("test-pass-123")
    press_sign_in(page, "beata")
    page.wait_for_url(re.compile(r"/customers/$"))

    # The phone as the caller reads it out, not as it is stored (+48501234567):
    # the results come as the number is typed.
    search = page.get_by_role("searchbox", name="Szukaj klientów i zamówień")
    search.press_sequentially("501-234-567", delay=30)
    result = page.locator(".searchresult", has_text="Żółkiewska")
    result.wait_for()
    page.screenshot(path=SHOTS.format("search"), full_page=True)
    search.press("ArrowDown")
    search.press("Enter")
    page.wait_for_url(re.compile(rf"/customers/{caller.pk}/$"))
    assert "Halina Żółkiewska" in page.get_by_role("heading", level=1).inner_text()

    # Quick log: open with the keyboard, type, Enter; the page stays.
    page.locator("body").press("l")
    form = page.get_by_role("form", name=re.compile("Halina Żółkiewska"))
    form.get_by_label("Rodzaj").select_option("complaint")
    form.get_by_label("Kanał").select_option("phone")
    recent = caller.orders.get(number="ZAM/2026/00377")
    order_field = form.get_by_label("Powiązane zamówienie")
    assert "ZAM/2026/00377" in order_field.inner_text()
    order_field.select_option(value=str(recent.pk))
    form.get_by_label("Treść").fill("Kubek przyszedł pęknięty, prosi o wymianę.")
    form.get_by_label("Temat").fill("Pęknięty kubek")
    form.get_by_label("Temat").press("Enter")
    confirmation = page.get_by_role("status").filter(has_text="Reklamacja")
    confirmation.wait_for()
    assert page.url.endswith(f"/customers/{caller.pk}/")

    complaint = Interaction.objects.get(customer=caller)
    with translation.override("pl"):
        due = formats.date_format(
            timezone.localtime(complaint.due_at), "SHORT_DATE_FORMAT"
        )
    assert due in confirmation.inner_text()
    assert complaint.kind == "complaint"
    assert complaint.order.number == "ZAM/2026/00377"
    assert complaint.status == "open"
    assert complaint.due_at == answer_due(complaint.occurred_at)
    assert timezone.localtime(complaint.due_at).date() == (
        timezone.localtime(complaint.occurred_at).date() + timedelta(days=14)
    )

    timeline = page.locator("#customer-timeline-title").locator("xpath=../..")
    timeline.get_by_text("Pęknięty kubek").first.wait_for()
    page.screenshot(path=SHOTS.format("customer"), full_page=True)

    # The queue, reached from the main navigation, shows it with its due date.
    page.get_by_role("link", name="Reklamacje i zwroty").first.click()
    page.wait_for_url(re.compile(r"/support/"))
    row = page.locator(f"tr[data-interaction='{complaint.pk}']")
    assert due in row.inner_text()
    assert "Pęknięty kubek" in row.inner_text()
    assert "Halina Żółkiewska" in row.inner_text()
    page.screenshot(path=SHOTS.format("queue"), full_page=True)
    assert errors == []


def test_support_logs_from_a_search_result_without_leaving_the_page(
    live_server, page, make_staff, caller
):
    make_staff("Support", username="beata")
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.goto(live_server.url + "/login/?next=/orders/")
    page.get_by_label("Nazwa użytkownika").fill("beata")
    page.get_by_label("Hasło").fill("test-pass-123")
    press_sign_in(page, "beata")
    page.wait_for_url(re.compile(r"/orders/$"))

    search = page.get_by_role("searchbox", name="Szukaj klientów i zamówień")
    search.press_sequentially("zolkiew", delay=30)
    result = page.locator(".searchresult", has_text="Żółkiewska")
    result.get_by_role("link", name="Zapisz kontakt").click()

    dialog = page.get_by_role("dialog", name="Zapisz kontakt")
    dialog.wait_for()
    dialog.get_by_label("Rodzaj").select_option("inquiry")
    dialog.get_by_label("Temat").fill("Pyta o termin dostawy")
    dialog.get_by_label("Temat").press("Enter")
    dialog.get_by_role("status").filter(has_text="Zapytanie").wait_for()
    page.screenshot(path=SHOTS.format("dialog"), full_page=True)

    assert page.url.endswith("/orders/")
    inquiry = Interaction.objects.get(customer=caller)
    assert (inquiry.kind, inquiry.subject) == ("inquiry", "Pyta o termin dostawy")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert errors == []
