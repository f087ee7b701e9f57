"""The public preference centre and one-click unsubscribe: signed links, no login."""

import re

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from consents.links import (
    preference_token,
    preference_url,
    read_preference_token,
    read_unsubscribe_token,
    unsubscribe_token,
    unsubscribe_url,
)
from consents.models import ConsentEvent, ConsentPurpose
from consents.services import (
    consent_allows,
    consent_grant,
    consent_states,
    consent_text_current,
    consent_text_publish,
)
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db

BROWSER = {"REMOTE_ADDR": "83.1.2.3", "HTTP_USER_AGENT": "Firefox/140"}


def grant(customer, purpose="email_marketing"):
    text = consent_text_current(
        purpose=ConsentPurpose.objects.get(code=purpose), language=customer.language
    )
    event, _created = consent_grant(
        customer=customer, purpose=purpose, text=text, source="newsletter_form"
    )
    return event


def path_of(url):
    return url.removeprefix("http://127.0.0.1:8000")


@pytest.fixture
def browser():
    """A browser: CSRF checks on, and it keeps the cookies it is given."""
    return Client(enforce_csrf_checks=True, **BROWSER)


def csrf_token(client, url):
    page = client.get(url)
    assert page.status_code == 200
    return page.cookies["csrftoken"].value if "csrftoken" in page.cookies else None


def state_of(page, code):
    html = page.content.decode()
    block = html[html.index(f'id="purpose-{code}"') :]
    return re.search(r'data-state="(on|off)"', block).group(1)


# --- Links ------------------------------------------------------------------------


def test_tokens_round_trip_and_urls_are_absolute(customer, purposes, settings):
    settings.PUBLIC_URL = "https://crm.sklep.pl"
    assert read_preference_token(preference_token(customer)) == customer
    token = unsubscribe_token(customer, "sms_marketing", reference="delivery-42")
    assert read_unsubscribe_token(token) == (
        customer,
        purposes["sms_marketing"],
        "delivery-42",
    )
    assert preference_url(customer).startswith("https://crm.sklep.pl/c/preferences/")
    assert unsubscribe_url(customer, purposes["email_marketing"]).startswith(
        "https://crm.sklep.pl/c/unsubscribe/"
    )


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "",
        "eyJjIjoxfQ:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_bad_tokens_are_invalid(token, purposes):
    for read in (read_preference_token, read_unsubscribe_token):
        with pytest.raises(ValidationError) as error:
            read(token)
        assert error.value.error_dict["token"][0].code == "invalid"


def test_a_token_opens_only_its_own_page(customer, purposes):
    other = CustomerFactory()
    token = preference_token(customer)
    tampered = token.replace(token.split(":")[0], preference_token(other).split(":")[0])
    with pytest.raises(ValidationError):
        read_preference_token(tampered)
    with pytest.raises(ValidationError):
        read_unsubscribe_token(token)
    with pytest.raises(ValidationError):
        read_preference_token(unsubscribe_token(customer, "email_marketing"))


def test_an_erased_customers_token_is_refused(customer, purposes):
    token = preference_token(customer)
    unsubscribe = unsubscribe_token(customer, "email_marketing")
    customer.erased_at = timezone.now()
    customer.save(update_fields=["erased_at"])
    with pytest.raises(ValidationError):
        read_preference_token(token)
    with pytest.raises(ValidationError):
        read_unsubscribe_token(unsubscribe)


# --- Preference centre -------------------------------------------------------------


def test_preference_centre_shows_every_purpose_off_by_default(
    browser, customer, purposes
):
    page = browser.get(path_of(preference_url(customer)))
    assert page.status_code == 200
    assert page["Content-Language"] == "pl"
    for code in purposes:
        assert state_of(page, code) == "off"
    text = consent_text_current(purpose=purposes["email_marketing"], language="pl")
    assert text.text in page.content.decode()
    assert "checked" not in page.content.decode()
    assert not ConsentEvent.objects.exists()


def test_preference_centre_speaks_the_customers_language(browser, purposes):
    customer = CustomerFactory(language="en")
    page = browser.get(path_of(preference_url(customer)))
    assert page["Content-Language"] == "en"
    text = consent_text_current(purpose=purposes["email_marketing"], language="en")
    assert text.text in page.content.decode()


def test_turning_a_purpose_on_records_the_shown_text_and_the_ip(
    browser, customer, purposes
):
    url = path_of(preference_url(customer))
    token = csrf_token(browser, url)
    text = consent_text_current(purpose=purposes["sms_marketing"], language="pl")
    response = browser.post(
        url,
        {
            "purpose": "sms_marketing",
            "granted": "1",
            "text_version": text.version,
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 302
    assert response["Location"] == url
    event = ConsentEvent.objects.get()
    assert (event.action, event.purpose.code) == ("grant", "sms_marketing")
    assert event.text == text
    assert event.source == "preference_centre"
    assert event.ip_address == "83.1.2.3"
    assert event.user_agent == "Firefox/140"
    assert event.evidence == {"page": "preference_centre"}
    assert consent_allows(customer=customer, purpose="sms_marketing")

    page = browser.get(url)
    assert state_of(page, "sms_marketing") == "on"
    assert state_of(page, "email_marketing") == "off"
    assert "message--success" in page.content.decode()

    # Clicking again (a second tab, a double submit) adds nothing.
    browser.post(
        url,
        {
            "purpose": "sms_marketing",
            "granted": "1",
            "text_version": text.version,
            "csrfmiddlewaretoken": token,
        },
    )
    assert ConsentEvent.objects.count() == 1


def test_turning_a_purpose_off_records_a_withdrawal(browser, customer, purposes):
    grant(customer)
    url = path_of(preference_url(customer))
    token = csrf_token(browser, url)
    browser.post(
        url,
        {"purpose": "email_marketing", "granted": "0", "csrfmiddlewaretoken": token},
    )
    withdrawal = ConsentEvent.objects.get(action="withdraw")
    assert withdrawal.source == "preference_centre"
    assert withdrawal.ip_address == "83.1.2.3"
    assert consent_states(customer)["email_marketing"] is False
    assert not consent_allows(customer=customer, purpose="email_marketing")


def test_a_changed_text_must_be_read_again(browser, customer, purposes):
    url = path_of(preference_url(customer))
    token = csrf_token(browser, url)
    shown = consent_text_current(purpose=purposes["email_marketing"], language="pl")
    consent_text_publish(
        purpose=purposes["email_marketing"], language="pl", text="Nowa treść zgody."
    )
    browser.post(
        url,
        {
            "purpose": "email_marketing",
            "granted": "1",
            "text_version": shown.version,
            "csrfmiddlewaretoken": token,
        },
    )
    assert not ConsentEvent.objects.exists()
    page = browser.get(url)
    assert "message--warning" in page.content.decode()
    assert "Nowa treść zgody." in page.content.decode()


def test_preference_centre_needs_the_csrf_token(browser, customer, purposes):
    url = path_of(preference_url(customer))
    response = browser.post(url, {"purpose": "email_marketing", "granted": "1"})
    assert response.status_code == 403
    assert not ConsentEvent.objects.exists()


def test_restricted_customer_can_still_withdraw(browser, customer, purposes):
    grant(customer)
    customer.restricted_at = timezone.now()
    customer.save(update_fields=["restricted_at"])
    url = path_of(preference_url(customer))
    token = csrf_token(browser, url)
    browser.post(
        url,
        {"purpose": "email_marketing", "granted": "0", "csrfmiddlewaretoken": token},
    )
    assert ConsentEvent.objects.filter(action="withdraw").count() == 1


def test_objections_are_shown_as_overriding_consent(browser, purposes):
    customer = CustomerFactory(language="en")
    grant(customer)
    page = browser.get(path_of(preference_url(customer)))
    assert "objected" not in page.content.decode()
    customer.marketing_objection_at = timezone.now()
    customer.save(update_fields=["marketing_objection_at"])
    page = browser.get(path_of(preference_url(customer)))
    html = page.content.decode()
    assert state_of(page, "email_marketing") == "on"
    assert "you objected to direct marketing" in html
    assert "Not used while your objection to direct marketing stands." in html
    assert not consent_allows(customer=customer, purpose="email_marketing")


def test_tampered_preference_token_is_a_clear_400(browser, customer, purposes):
    url = path_of(preference_url(customer))
    response = browser.get(url[:-6] + "xxxxx/")
    assert response.status_code == 400
    assert "consents/public/invalid_link.html" in [t.name for t in response.templates]


def test_tampered_token_post_is_refused_without_changes(customer, purposes):
    grant(customer)
    client = Client(enforce_csrf_checks=True)
    url = path_of(preference_url(customer))
    page = client.get(url)
    token = page.cookies["csrftoken"].value
    response = client.post(
        url.replace("/preferences/", "/preferences/x"),
        {"purpose": "email_marketing", "granted": "0", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 400
    assert ConsentEvent.objects.count() == 1


def test_erased_customer_gets_the_link_no_longer_works_page(browser, purposes):
    customer = CustomerFactory()
    url = path_of(preference_url(customer))
    customer.erased_at = timezone.now()
    customer.save(update_fields=["erased_at"])
    response = browser.get(url)
    assert response.status_code == 400
    assert "consents/public/invalid_link.html" in [t.name for t in response.templates]


# --- One-click unsubscribe --------------------------------------------------------


def test_one_click_post_without_cookies_withdraws_once(customer, purposes):
    grant(customer)
    url = path_of(unsubscribe_url(customer, "email_marketing", reference="d-17"))
    provider = Client(enforce_csrf_checks=True, REMOTE_ADDR="209.85.1.1")
    for _attempt in range(3):
        response = provider.post(
            url,
            "List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
        assert response.status_code == 200
        assert not response.cookies
        assert "consents/public/unsubscribed.html" in [
            t.name for t in response.templates
        ]
    withdrawal = ConsentEvent.objects.get(action="withdraw")
    assert withdrawal.source == "unsubscribe_link"
    assert withdrawal.evidence == {"reference": "d-17", "one_click": True}
    assert withdrawal.ip_address == "209.85.1.1"
    assert not consent_allows(customer=customer, purpose="email_marketing")
    assert ConsentEvent.objects.count() == 2


def test_one_click_accepts_any_body(customer, purposes):
    grant(customer)
    url = path_of(unsubscribe_url(customer, "email_marketing"))
    response = Client(enforce_csrf_checks=True).post(url)
    assert response.status_code == 200
    assert not consent_allows(customer=customer, purpose="email_marketing")


def test_unsubscribe_get_changes_nothing(customer, purposes):
    grant(customer)
    url = path_of(unsubscribe_url(customer, "email_marketing"))
    client = Client(enforce_csrf_checks=True)
    for method in (client.get, client.head):
        response = method(url)
        assert response.status_code == 200
        assert not response.cookies
    page = client.get(url)
    assert 'method="post"' in page.content.decode()
    assert ConsentEvent.objects.count() == 1
    assert consent_allows(customer=customer, purpose="email_marketing")


def test_unsubscribe_get_without_consent_writes_no_ledger_rows(customer, purposes):
    url = path_of(unsubscribe_url(customer, "email_marketing"))
    assert Client().get(url).status_code == 200
    assert not ConsentEvent.objects.exists()


def test_unsubscribe_only_touches_its_purpose(customer, purposes):
    grant(customer, "email_marketing")
    grant(customer, "sms_marketing")
    Client().post(path_of(unsubscribe_url(customer, "email_marketing")))
    assert not consent_allows(customer=customer, purpose="email_marketing")
    assert consent_allows(customer=customer, purpose="sms_marketing")


def test_unsubscribe_page_is_in_the_customers_language(purposes):
    customer = CustomerFactory(language="en")
    grant(customer)
    response = Client().post(path_of(unsubscribe_url(customer, "email_marketing")))
    assert response["Content-Language"] == "en"
    assert "Email marketing" in response.content.decode()


def test_tampered_unsubscribe_token_is_400_and_changes_nothing(customer, purposes):
    grant(customer)
    url = path_of(unsubscribe_url(customer, "email_marketing"))
    tampered = url[:-6] + "xxxxx/"
    client = Client(enforce_csrf_checks=True)
    for method in (client.get, client.post):
        response = method(tampered)
        assert response.status_code == 400
        assert "consents/public/invalid_link.html" in [
            t.name for t in response.templates
        ]
    assert ConsentEvent.objects.count() == 1
    assert consent_allows(customer=customer, purpose="email_marketing")


def test_erased_customers_unsubscribe_link_is_refused(purposes):
    customer = CustomerFactory()
    url = path_of(unsubscribe_url(customer, "email_marketing"))
    customer.erased_at = timezone.now()
    customer.save(update_fields=["erased_at"])
    assert Client().post(url).status_code == 400
    assert not ConsentEvent.objects.exists()


def test_preference_centre_query_count(
    browser, customer, purposes, django_assert_max_num_queries
):
    grant(customer)
    url = path_of(preference_url(customer))
    # The request's savepoint and its release; customer, states, purposes; and
    # the current text of each purpose.
    with django_assert_max_num_queries(5 + len(purposes)):
        browser.get(url)
