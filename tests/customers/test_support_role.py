"""What the Support role may do at the desk, and what it may not (issue 6, point 8).

Support searches, views and logs; every customer page it opens is in the access
log; it cannot export customer or order lists, the complaints queue, nor erase.
"""

import datetime as dt

import pytest
from django.urls import reverse

from consents.models import AccessLog
from customers.models import Interaction
from tests.factories.consents import DataSubjectRequestFactory
from tests.factories.customers import CustomerFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def support(client, make_staff):
    user = make_staff("Support", username="dorota")
    client.force_login(user)
    return user


@pytest.mark.django_db
def test_support_searches_views_and_logs(client, support):
    customer = CustomerFactory(last_name="Żółkiewska", phone="+48501234567")

    found = client.get(reverse("customers:search"), {"q": "zolkiewska"}, **HTMX)
    assert found.status_code == 200
    assert reverse("customers:detail", args=[customer.pk]) in found.text

    page = client.get(reverse("customers:detail", args=[customer.pk]))
    assert page.status_code == 200
    (entry,) = AccessLog.objects.filter(customer=customer)
    assert (entry.action, entry.user) == (AccessLog.Action.VIEW, support)

    logged = client.post(
        reverse("support:quick_log", kwargs={"pk": customer.pk}),
        {
            "kind": "complaint",
            "channel": "phone",
            "direction": "inbound",
            "subject": "Paczka nie doszła",
        },
    )
    assert logged.status_code == 302
    complaint = Interaction.objects.get(customer=customer)
    assert (complaint.kind, complaint.author, complaint.status) == (
        "complaint",
        support,
        "open",
    )
    assert client.get(reverse("support:queue")).status_code == 200


@pytest.mark.django_db
def test_support_cannot_export_or_erase(client, support):
    customer = CustomerFactory()
    erasure = DataSubjectRequestFactory(
        customer=customer, kind="erasure", due_on=dt.date(2026, 12, 31)
    )
    refused = [
        reverse("customers:export", kwargs={"file_format": "csv"}),
        reverse("customers:export", kwargs={"file_format": "xlsx"}),
        reverse("orders:export", kwargs={"file_format": "csv"}),
        reverse("support:queue_export"),
        reverse("consents:request_erase", kwargs={"pk": erasure.pk}),
    ]
    for url in refused:
        assert client.get(url).status_code == 403, url
    assert (
        client.post(
            reverse("consents:request_erase", kwargs={"pk": erasure.pk}),
            {"confirm": str(customer.pk)},
        ).status_code
        == 403
    )
    customer.refresh_from_db()
    assert customer.erased_at is None
    assert not AccessLog.objects.filter(action=AccessLog.Action.EXPORT).exists()
    assert not support.has_perm("customers.delete_customer")
