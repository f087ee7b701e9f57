"""A newsletter sign-up in the browser: the shop's API starts it, the person gets
the email, confirms in the browser, later switches the newsletter off in the
preference centre, and a one-click unsubscribe repeated by a mail provider changes
nothing more."""

import re

import pytest
from django.core import mail
from django.test import Client, override_settings

from consents.links import preference_url, unsubscribe_url
from consents.models import ConsentEvent
from consents.services import consent_allows
from customers.models import Customer
from tests.conftest import ensure_purposes

pytestmark = pytest.mark.e2e


def test_sign_up_confirm_manage_and_unsubscribe(
    live_server, page, store, make_api_client
):
    ensure_purposes()  # the live server's flush removed the seeded purposes
    with override_settings(PUBLIC_URL=live_server.url):
        api = make_api_client(store, scopes=["write"])
        response = api.post(
            "/api/v1/newsletter/",
            {"email": "ola@example.pl", "first_name": "Ola", "ip": "83.1.2.3"},
            format="json",
        )
        assert response.status_code == 202, response.content

        # The email holds the confirmation link.
        [message] = mail.outbox
        link = re.search(rf"{re.escape(live_server.url)}/c/confirm/\S+/", message.body)
        assert link, message.body
        page.goto(link.group(0))
        customer = Customer.objects.get(email="ola@example.pl")
        assert not consent_allows(customer=customer, purpose="email_marketing")
        page.get_by_role("button").first.click()
        page.wait_for_load_state()
        assert consent_allows(customer=customer, purpose="email_marketing")
        grant = ConsentEvent.objects.get(customer=customer)
        assert grant.source == "double_opt_in"
        assert grant.ip_address == "127.0.0.1"  # the confirming browser's

        # Preference centre: the newsletter is on; one click turns it off.
        page.goto(preference_url(customer))
        form = page.locator("form", has=page.locator("input[value='email_marketing']"))
        form.get_by_role("button").click()
        page.wait_for_load_state()
        assert not consent_allows(customer=customer, purpose="email_marketing")
        assert ConsentEvent.objects.filter(customer=customer).count() == 2

        # A mail provider's one-click POST, repeated, without cookies: no change.
        provider = Client(enforce_csrf_checks=True)
        url = unsubscribe_url(customer, "email_marketing").removeprefix(live_server.url)
        for _ in range(3):
            answer = provider.post(url, {"List-Unsubscribe": "One-Click"})
            assert answer.status_code == 200
        assert ConsentEvent.objects.filter(customer=customer).count() == 2
