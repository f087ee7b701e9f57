"""DPO pages (access log, register of processing); consents on the customer page."""

import datetime as dt
import re

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from consents import dpo_views
from consents.access_log import access_log_record
from consents.models import ConsentEvent, ConsentPurpose
from consents.services import consent_record, consent_text_current
from customers.services import api_key_create
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db


def in_english(client):
    """Staff pages follow the language cookie (set_language), not the browser."""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


@pytest.fixture
def dpo(client, make_staff):
    user = make_staff("Data protection officer", username="iod")
    client.force_login(user)
    return user


@pytest.fixture
def support_user(make_staff):
    return make_staff("Support", username="ania")


def customer_log_url(customer):
    return reverse("consents:access_log_customer", args=[customer.pk])


def user_log_url(user):
    return reverse("consents:access_log_user", args=[user.pk])


REGISTER = reverse("consents:register")


def purpose_row(content, code):
    match = re.search(rf'<tr data-purpose="{code}">(.*?)</tr>', content, re.S)
    assert match, code
    return match.group(1)


# ---------- Access ----------


def test_support_gets_403_on_the_access_log(client, support_user, customer):
    client.force_login(support_user)
    assert client.get(customer_log_url(customer)).status_code == 403
    assert client.get(user_log_url(support_user)).status_code == 403


def test_register_needs_the_purpose_view_permission(client, make_staff, purposes):
    client.force_login(make_staff())  # no role
    assert client.get(REGISTER).status_code == 403


def test_anonymous_is_sent_to_login(client, customer):
    for url in (customer_log_url(customer), REGISTER):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_unknown_customer_or_user_is_404(client, dpo):
    assert (
        client.get(reverse("consents:access_log_customer", args=[999999])).status_code
        == 404
    )
    assert (
        client.get(reverse("consents:access_log_user", args=[999999])).status_code
        == 404
    )


# ---------- Access log ----------


def test_dpo_sees_the_customer_log_newest_first(
    client, dpo, support_user, store, customer
):
    api_key, _raw = api_key_create(store=store, name="Sklep WWW", scopes=["read"])
    other = CustomerFactory()
    access_log_record(
        customers=customer, action="view", user=support_user, ip_address="83.1.1.1"
    )
    access_log_record(
        customers=[customer, other],
        action="api_read",
        api_key=api_key,
        ip_address="10.9.8.7",
        purpose="sync to the shop",
    )
    access_log_record(customers=other, action="view", user=dpo, ip_address="1.2.3.4")

    response = in_english(client).get(customer_log_url(customer))
    assert response.status_code == 200
    entries = response.context["entries"]
    assert [e.action for e in entries] == ["api_read", "view"]
    content = response.content.decode()
    assert "83.1.1.1" in content
    assert "10.9.8.7" in content
    assert "1.2.3.4" not in content  # the other customer's
    assert f"{api_key.prefix}…" in content
    assert "sync to the shop" in content
    assert "Read through the API" in content
    assert user_log_url(support_user) in content
    assert content.index("10.9.8.7") < content.index("83.1.1.1")


def test_dpo_sees_the_user_log(client, dpo, support_user):
    seen = CustomerFactory(first_name="Zofia", last_name="Widziana")
    unseen = CustomerFactory(first_name="Jan", last_name="Niewidziany")
    access_log_record(customers=seen, action="view", user=support_user)
    access_log_record(customers=unseen, action="view", user=dpo)

    response = client.get(user_log_url(support_user))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Zofia Widziana" in content
    assert "Niewidziany" not in content
    assert reverse("customers:detail", args=[seen.pk]) in content


def test_the_log_is_paged_without_counting(client, dpo, customer, monkeypatch):
    monkeypatch.setattr(dpo_views.AccessLogPageMixin, "per_page", 2)
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        access_log_record(customers=customer, action="view", user=dpo, ip_address=ip)
    with CaptureQueriesContext(connection) as queries:
        first = client.get(customer_log_url(customer))
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
    assert [e.ip_address for e in first.context["entries"]] == [
        "10.0.0.3",
        "10.0.0.2",
    ]
    assert first.context["page"].has_next
    second = client.get(customer_log_url(customer), {"page": 2})
    assert [e.ip_address for e in second.context["entries"]] == ["10.0.0.1"]


def test_viewing_the_customer_page_shows_up_in_the_dpo_log(
    client, dpo, support_user, customer
):
    client.force_login(support_user)
    client.get(reverse("customers:detail", args=[customer.pk]), REMOTE_ADDR="5.6.7.8")
    client.force_login(dpo)
    content = client.get(customer_log_url(customer)).content.decode()
    assert "5.6.7.8" in content
    assert "ania" in content


# ---------- Register of processing ----------


def test_register_lists_every_purpose_with_its_legal_basis(
    client, dpo, purposes, store
):
    ConsentPurpose.objects.filter(code="tracking").update(
        legal_basis=ConsentPurpose.LegalBasis.LEGITIMATE_INTEREST
    )
    response = in_english(client).get(REGISTER)
    assert response.status_code == 200
    content = response.content.decode()
    sections = dict(
        re.findall(
            r'<section class="card register__purpose" data-purpose="(\w+)">(.*?)'
            r"</section>",
            content,
            re.S,
        )
    )
    assert set(sections) == set(ConsentPurpose.Code.values)
    assert len(sections) == 6
    for purpose in ConsentPurpose.objects.all():
        section = sections[purpose.code]
        expected = (
            "Legitimate interest (Art. 6(1)(f))"
            if purpose.code == "tracking"
            else "Consent (Art. 6(1)(a))"
        )
        assert expected in section, purpose.code
        assert purpose.retention in section
        for category in purpose.data_categories:
            assert category in section
    assert "Sklep Główny" in content  # the controller, from the stores
    assert "css/register.css" in content  # the print layout
    assert "data-print" in content
    assert "js/print_button.js" in content


def test_support_may_read_the_register(client, support_user, purposes):
    # Support sees the purposes anyway (consents.view_consentpurpose).
    client.force_login(support_user)
    assert client.get(REGISTER).status_code == 200


# ---------- Consents on the customer page ----------


def grant(customer, code, **kwargs):
    purpose = ConsentPurpose.objects.get(code=code)
    kwargs.setdefault("source", ConsentEvent.Source.NEWSLETTER_FORM)
    return consent_record(
        customer=customer,
        purpose=code,
        action="grant",
        text=consent_text_current(purpose=purpose, language="pl"),
        **kwargs,
    )[0]


def withdraw(customer, code, **kwargs):
    kwargs.setdefault("source", ConsentEvent.Source.UNSUBSCRIBE_LINK)
    return consent_record(customer=customer, purpose=code, action="withdraw", **kwargs)[
        0
    ]


def test_customer_page_shows_consent_state_and_ledger(
    client, support_user, customer, purposes
):
    now = timezone.now()
    grant(customer, "email_marketing", occurred_at=now - dt.timedelta(days=3))
    grant(customer, "sms_marketing", occurred_at=now - dt.timedelta(days=2))
    withdraw(customer, "sms_marketing", occurred_at=now - dt.timedelta(days=1))
    client.force_login(support_user)
    response = in_english(client).get(reverse("customers:detail", args=[customer.pk]))
    content = response.content.decode()
    assert "granted" in purpose_row(content, "email_marketing")
    assert "withdrawn" in purpose_row(content, "sms_marketing")
    assert "not given" in purpose_row(content, "profiling")
    assert len(re.findall(r'<tr data-purpose="', content)) == 6
    ledger = content[content.index("Consent history") :]
    assert "Newsletter form" in ledger
    assert "Unsubscribe link" in ledger
    assert "v1 (pl)" in ledger
    # newest first: the withdrawal, then the sms grant, then the email grant
    assert ledger.index("Unsubscribe link") < ledger.index("Newsletter form")
    assert [e.action for e in response.context["consent_events"]] == [
        "withdraw",
        "grant",
        "grant",
    ]
    assert response.context["consent_event_count"] == 3
    # Support has no access log permission: no link to it
    assert customer_log_url(customer) not in content


def test_customer_page_shows_the_rodo_flags(client, dpo, purposes):
    customer = CustomerFactory(
        restricted_at=timezone.now(), marketing_objection_at=timezone.now()
    )
    content = (
        in_english(client)
        .get(reverse("customers:detail", args=[customer.pk]))
        .content.decode()
    )
    assert "Processing restricted" in content
    assert "Objected to direct marketing" in content
    assert "Objected to profiling" not in content
    assert customer_log_url(customer) in content  # the DPO gets the link


def test_long_ledger_shows_the_newest_twenty_in_constant_queries(
    client, support_user, purposes
):
    short = CustomerFactory()
    grant(short, "email_marketing")
    long = CustomerFactory()
    start = timezone.now() - dt.timedelta(days=60)
    for day in range(25):
        record = grant if day % 2 == 0 else withdraw
        record(long, "email_marketing", occurred_at=start + dt.timedelta(days=day))
    client.force_login(support_user)

    def page(customer):
        with CaptureQueriesContext(connection) as queries:
            url = reverse("customers:detail", args=[customer.pk])
            response = in_english(client).get(url)
        return len(queries.captured_queries), response

    short_count, _ = page(short)
    long_count, response = page(long)
    assert long_count <= short_count + 1  # the count of a ledger longer than shown
    assert len(response.context["consent_events"]) == 20
    assert response.context["consent_event_count"] == 25
    assert "The newest 20 of 25 entries." in response.content.decode()
    assert response.context["consent_events"][0].occurred_at == start + dt.timedelta(
        days=24
    )
