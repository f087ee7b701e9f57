"""The consents admin: texts are published as versions, staff consents go through
the service, and append-only rows offer no change or delete."""

import pytest
from django.urls import reverse

from consents.models import ConsentEvent, ConsentText
from customers import roles

pytestmark = pytest.mark.django_db


@pytest.fixture
def dpo_client(client, make_staff, purposes):
    client.force_login(make_staff(roles.DATA_PROTECTION_OFFICER))
    return client


def test_adding_a_text_publishes_the_next_version(dpo_client, purposes):
    purpose = purposes["email_marketing"]
    response = dpo_client.post(
        reverse("admin:consents_consenttext_add"),
        {"purpose": purpose.pk, "language": "pl", "text": "Nowa zgoda, wersja druga."},
    )
    assert response.status_code == 302
    newest = ConsentText.objects.filter(purpose=purpose, language="pl").first()
    assert newest.version == 2
    assert len(newest.content_hash) == 64


def test_staff_consent_is_recorded_with_the_staff_member(
    dpo_client, customer, purposes
):
    response = dpo_client.post(
        reverse("admin:consents_consentevent_add"),
        {
            "customer": customer.pk,
            "purpose": purposes["email_marketing"].pk,
            "action": "grant",
            "note": "Rozmowa telefoniczna 12.03, nr 4411",
        },
    )
    assert response.status_code == 302
    event = ConsentEvent.objects.get()
    assert event.source == "staff"
    assert event.staff_user.username.startswith("user-")
    assert event.evidence == {"note": "Rozmowa telefoniczna 12.03, nr 4411"}
    assert event.text is not None


def test_staff_consent_form_shows_service_errors(dpo_client, customer, purposes):
    customer.erased_at = customer.created_at
    customer.save(update_fields=["erased_at"])
    response = dpo_client.post(
        reverse("admin:consents_consentevent_add"),
        {
            "customer": customer.pk,
            "purpose": purposes["sms_marketing"].pk,
            "action": "grant",
            "note": "x",
        },
    )
    assert response.status_code == 200
    assert not ConsentEvent.objects.exists()


def test_ledger_rows_cannot_be_changed_or_deleted(dpo_client, customer, purposes):
    from consents.services import consent_grant, consent_text_current

    event, _ = consent_grant(
        customer=customer,
        purpose="email_marketing",
        text=consent_text_current(purpose=purposes["email_marketing"], language="pl"),
        source="newsletter_form",
    )
    change = dpo_client.get(
        reverse("admin:consents_consentevent_change", args=[event.pk])
    )
    assert change.status_code == 200  # view only
    assert b'name="_save"' not in change.content
    delete = dpo_client.get(
        reverse("admin:consents_consentevent_delete", args=[event.pk])
    )
    assert delete.status_code == 403
