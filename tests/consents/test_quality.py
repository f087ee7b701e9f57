"""The consents app's data quality checks: undeliverable emails and stale leads."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from consents.models import ConsentEvent
from consents.quality import REASON_LABELS, email_hash_expression
from consents.services import (
    consent_record,
    consent_text_current,
    suppression_add,
    suppression_hash,
)
from customers.models import Customer
from customers.quality import quality_check, quality_scan
from tests.factories.customers import CustomerFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db


def listed(code):
    return {row.pk for row in quality_check(code).found()}


@pytest.mark.parametrize("key", ["short-key", "k" * 100])  # longer than a block
def test_the_sql_hash_is_the_suppression_hash(settings, key):
    settings.SUPPRESSION_KEY = key
    customers = [
        CustomerFactory(email=email)
        for email in ("Anna.Nowak@example.pl", "jan@przykład.pl", "x+y@gmail.com")
    ]

    hashes = dict(
        Customer.objects.filter(pk__in=[c.pk for c in customers])
        .annotate(h=email_hash_expression())
        .values_list("pk", "h")
    )

    assert hashes == {c.pk: suppression_hash("email", c.email) for c in customers}


def test_bounced_and_complained_emails_are_undeliverable():
    bounced = CustomerFactory(email="Odbite@example.pl")
    complained = CustomerFactory(email="spam@example.pl")
    erased_contact = CustomerFactory(email="usuniety@example.pl")
    CustomerFactory(email="dobry@example.pl")
    suppression_add(email="odbite@example.pl", reason="bounce")
    suppression_add(email="spam@example.pl", reason="complaint")
    suppression_add(email="usuniety@example.pl", reason="erasure")

    scan = quality_scan()

    assert listed("undeliverable-email") == {bounced.pk, complained.pk}
    assert scan.counts["undeliverable-email"] == 2
    assert erased_contact.pk not in listed("undeliverable-email")


def test_no_suppression_means_nothing_to_hash():
    CustomerFactory(email="dobry@example.pl")
    assert quality_scan().counts["undeliverable-email"] == 0


def test_undeliverable_list_says_what_was_reported(client, make_staff):
    bounced = CustomerFactory(email="odbite@example.pl", first_name="Ola")
    suppression_add(email="odbite@example.pl", reason="bounce")
    quality_scan()
    client.force_login(make_staff("Data protection officer"))

    page = client.get(reverse("quality:list", args=["undeliverable-email"]))

    assert page.status_code == 200
    (row,) = page.context["rows"]
    assert row["object"] == bounced
    with translation.override("pl"):
        reported = str(REASON_LABELS["bounce"])
    assert reported in row["cells"]
    assert reported in page.content.decode()


def _created(when, **kwargs):
    customer = CustomerFactory(**kwargs)
    Customer.objects.filter(pk=customer.pk).update(created_at=when)
    return customer


def test_stale_leads_are_those_retention_would_erase(settings, purposes):
    settings.RETENTION = {**settings.RETENTION, "lead_months": 24}
    long_ago = timezone.now() - dt.timedelta(days=365 * 3)
    stale = _created(long_ago, status=Customer.Status.LEAD)
    _created(timezone.now() - dt.timedelta(days=30), status=Customer.Status.LEAD)
    buyer = _created(long_ago, status=Customer.Status.BUYER)
    OrderFactory(customer=buyer)
    consenting = _created(long_ago, status=Customer.Status.LEAD)
    consent_record(
        customer=consenting,
        purpose="email_marketing",
        action="grant",
        source=ConsentEvent.Source.NEWSLETTER_FORM,
        text=consent_text_current(purpose=purposes["email_marketing"], language="pl"),
        occurred_at=long_ago,
    )
    merged = _created(long_ago, status=Customer.Status.LEAD)
    Customer.objects.filter(pk=merged.pk).update(merged_into=stale)

    quality_scan()

    assert listed("stale-leads") == {stale.pk}
