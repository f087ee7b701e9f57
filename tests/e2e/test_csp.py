"""The Content Security Policy in the browser: a superuser walks through the main
staff pages and the admin, and a customer through the public pages (double opt-in,
preference centre, unsubscribe); Chromium refuses nothing (no "Refused to ..." in
the console, no securitypolicyviolation event) while every page is sent the policy
itself, not a report-only one. One browser context, pages one after another."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule

from consents.double_opt_in import double_opt_in_link, newsletter_sign_up
from consents.links import preference_url, unsubscribe_url
from consents.models import DataSubjectRequest
from segments.metrics import metrics_recompute
from tests.conftest import ensure_purposes
from tests.factories.campaigns import EmailTemplateFactory
from tests.factories.consents import DataSubjectRequestFactory
from tests.factories.customers import CustomerFactory, TagFactory
from tests.factories.orders import OrderFactory, OrderLineFactory
from tests.staff import press_sign_in

pytestmark = pytest.mark.e2e

# Installed before any page script runs (through DevTools, so the policy does not
# apply to it): every violation the page raises, with what was refused and why.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolations.push(
    event.violatedDirective + " " + (event.blockedURI || "inline") + " " +
    (event.sourceFile || "") + ":" + event.lineNumber
  );
});
"""


@pytest.fixture
def shop(store, purposes):
    """A customer with coloured tags, an order, a request and an email template."""
    customer = CustomerFactory(first_name="Anna", email="anna@example.pl")
    customer.tags.add(TagFactory(name="VIP", color="#7c3aed"), TagFactory(name="Hurt"))
    order = OrderFactory(store=store, customer=customer, total=Decimal("120.00"))
    OrderLineFactory(order=order)
    for index in range(3):
        OrderFactory(store=store, customer=CustomerFactory(first_name=f"Klient{index}"))
    metrics_recompute()
    request = DataSubjectRequestFactory(
        customer=customer,
        kind=DataSubjectRequest.Kind.RESTRICTION,
        due_on=timezone.localdate() + timedelta(days=30),
    )
    template = EmailTemplateFactory()
    return {
        "customer": customer,
        "order": order,
        "request": request,
        "template": template,
    }


def visit(page, console: list[str], urls: list[str]) -> list[str]:
    """Open each address; what the policy refused on it, as "url: message"."""
    problems: list[str] = []
    for url in urls:
        console.clear()
        response = page.goto(url)
        assert response is not None, url
        assert response.status == 200, (url, response.status)
        # Deferred scripts, htmx loads and the preview frame have run.
        page.wait_for_load_state("networkidle")
        headers = response.headers
        assert "content-security-policy-report-only" not in headers, url
        assert "script-src 'self'" in headers.get("content-security-policy", ""), url
        violations = page.evaluate("window.__cspViolations || []")
        refused = [
            text
            for text in console
            if "Content Security Policy" in text
            or "Refused to" in text
            or text.startswith("page error")
        ]
        problems += [f"{url}: {text}" for text in violations + refused]
    return problems


def watch(page) -> list[str]:
    """The console's messages (and uncaught errors) from now on."""
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.on("pageerror", lambda error: console.append(f"page error: {error}"))
    page.add_init_script(RECORD_VIOLATIONS)
    return console


def test_staff_pages_and_admin_break_no_content_security_policy(
    live_server, page, django_user_model, shop
):
    django_user_model.objects.create_superuser(
        username="szef", email="szef@example.pl", password="test-pass-123"
    )
    console = watch(page)
    page.goto(live_server.url + "/login/")
    page.get_by_label("Nazwa użytkownika").fill("szef")
    page.get_by_label("Hasło").fill("test-pass-123")
    press_sign_in(page, "szef")
    page.wait_for_url(re.compile(r"^(?!.*/login/)"))

    customer, order = shop["customer"], shop["order"]
    paths = [
        "/customers/",
        f"/customers/{customer.pk}/",
        "/orders/",
        f"/orders/{order.pk}/",
        "/segments/",
        "/segments/new/",
        "/segments/rfm/",
        "/campaigns/",
        f"/campaigns/templates/{shop['template'].pk}/",
        "/dashboard/",
        "/quality/",
        "/support/",
        "/rodo/requests/",
        f"/rodo/requests/{shop['request'].pk}/",
        "/rodo/register/",
        "/imports/",
        "/admin/",
        "/admin/customers/customer/",
        f"/admin/customers/customer/{customer.pk}/change/",
        "/admin/auth/user/add/",
        "/admin/django_celery_beat/periodictask/add/",
        "/admin/customers/customer/import/",
        "/admin/customers/customer/export/",
        "/merges/",
        "/status/",
        "/api/docs/",
        "/account/",
        "/account/two-factor/setup/",
        "/account/two-factor/recovery-codes/",
        "/account/password/",
        "/admin/auth/user/",
    ]
    assert visit(page, console, [live_server.url + path for path in paths]) == []

    # The export page's "select all" box, bound from a file now, still works.
    page.goto(live_server.url + "/admin/customers/customer/export/")
    fields = page.locator(".selectable-field-export-row input[type=checkbox]")
    assert fields.count() > 1
    page.locator(".select-toggle").uncheck()
    assert fields.evaluate_all("boxes => boxes.some(box => box.checked)") is False

    # The periodic task form shows the chosen crontab in words (from a file now).
    crontab = CrontabSchedule.objects.create(minute="15", hour="3")
    page.goto(live_server.url + "/admin/django_celery_beat/periodictask/add/")
    page.locator("#id_crontab").select_option(str(crontab.pk))
    help_text = page.locator(".field-crontab .help")
    assert crontab.human_readable in help_text.inner_text()

    # The chips took their tag's colour from the data attribute.
    page.goto(live_server.url + f"/customers/{customer.pk}/")
    chip = page.locator(".chip", has_text="VIP")
    assert chip.evaluate("el => el.style.getPropertyValue('--chip')") == "#7c3aed"


def test_public_pages_break_no_content_security_policy(live_server, page, store):
    ensure_purposes()  # the live server's flush removed the seeded purposes
    with override_settings(PUBLIC_URL=live_server.url):
        signup = newsletter_sign_up(
            store=store, api_key=None, email="ola@example.pl", first_name="Ola"
        )
        customer = signup.customer
        urls = [
            double_opt_in_link(signup),
            preference_url(customer),
            unsubscribe_url(customer, "email_marketing"),
            live_server.url + "/login/",
            live_server.url + "/account/password/reset/",
            live_server.url + "/account/password/reset/sent/",
        ]
    console = watch(page)
    assert visit(page, console, urls) == []
    # The stylesheet that replaced the <style> element applies.
    page.goto(urls[1])
    card = page.locator(".public__card")
    assert card.evaluate("el => getComputedStyle(el).display") == "grid"
