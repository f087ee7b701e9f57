"""The consent ledger: evidence required, append-only in the database, state derived."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from consents.models import ConsentEvent, ConsentState, ConsentText
from consents.services import (
    consent_allows,
    consent_record,
    consent_states,
    consent_text_current,
    consent_text_publish,
    customers_reachable,
    suppression_add,
)
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def text(purposes):
    return consent_text_current(purpose=purposes["email_marketing"], language="pl")


def grant(customer, text, **kwargs):
    kwargs.setdefault("source", ConsentEvent.Source.NEWSLETTER_FORM)
    return consent_record(
        customer=customer,
        purpose="email_marketing",
        action="grant",
        text=text,
        **kwargs,
    )


def test_grant_records_event_and_state(customer, text):
    event, created = grant(customer, text, ip_address="83.1.2.3", user_agent="UA")
    assert created
    assert event.text == text
    assert event.ip_address == "83.1.2.3"
    assert consent_states(customer)["email_marketing"] is True
    assert consent_allows(customer=customer, purpose="email_marketing")


def test_bare_yes_is_refused(customer, purposes):
    with pytest.raises(ValidationError) as error:
        consent_record(
            customer=customer, purpose="email_marketing", action="grant", source="api"
        )
    assert set(error.value.error_dict) == {"text_version", "api_key"}
    assert not ConsentEvent.objects.exists()


def test_import_needs_the_file_hash(customer, text):
    with pytest.raises(ValidationError) as error:
        grant(customer, text, source="import")
    assert "import_file_hash" in error.value.error_dict


def test_unknown_text_version_is_a_field_error(customer, purposes):
    with pytest.raises(ValidationError) as error:
        grant(customer, {"version": 99, "language": "pl"})
    assert error.value.error_dict["text_version"][0].code == "unknown_text"


def test_repeat_appends_nothing(customer, text):
    moment = timezone.now() - dt.timedelta(hours=1)
    first, _ = grant(customer, text, occurred_at=moment)
    again, created = grant(customer, text, occurred_at=moment)
    assert again == first
    assert not created
    assert ConsentEvent.objects.count() == 1


def test_newest_event_wins_even_when_recorded_late(customer, text):
    now = timezone.now()
    grant(customer, text, occurred_at=now - dt.timedelta(days=1))
    consent_record(
        customer=customer,
        purpose="email_marketing",
        action="withdraw",
        source="unsubscribe_link",
        occurred_at=now - dt.timedelta(hours=1),
    )
    # an older grant arriving late (an import of history) does not win
    grant(
        customer, text, occurred_at=now - dt.timedelta(days=30), source="checkout_form"
    )
    state = ConsentState.objects.get(customer=customer)
    assert state.granted is False
    assert not consent_allows(customer=customer, purpose="email_marketing")


def test_raw_update_and_delete_fail(customer, text):
    event, _ = grant(customer, text)
    for statement in (
        "UPDATE consents_consentevent SET action = 'withdraw' WHERE id = %s",
        "UPDATE consents_consentevent SET ip_address = '10.0.0.1' WHERE id = %s",
        "DELETE FROM consents_consentevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(statement, [event.pk])
    event.refresh_from_db()
    assert event.action == "grant"


def test_erasure_path_may_blank_personal_data(customer, text):
    event, _ = grant(
        customer, text, ip_address="83.1.2.3", user_agent="UA", evidence={"e": "x"}
    )
    ConsentEvent.objects.filter(pk=event.pk).update(
        ip_address=None, user_agent="", evidence={}
    )
    event.refresh_from_db()
    assert (event.ip_address, event.user_agent, event.evidence) == (None, "", {})
    assert event.evidence_hash  # the proof stays


def test_texts_are_immutable_and_versioned(purposes):
    purpose = purposes["email_marketing"]
    first = consent_text_current(purpose=purpose, language="pl")
    second = consent_text_publish(purpose=purpose, language="pl", text="Nowa treść.")
    assert second.version == first.version + 1
    assert consent_text_current(purpose=purpose, language="pl") == second
    with pytest.raises(DatabaseError), transaction.atomic():
        ConsentText.objects.filter(pk=first.pk).update(text="changed")


def test_objection_and_restriction_override_consent(customer, text):
    grant(customer, text)
    customer.marketing_objection_at = timezone.now()
    customer.save(update_fields=["marketing_objection_at"])
    assert not consent_allows(customer=customer, purpose="email_marketing")
    assert not customers_reachable("email_marketing").filter(pk=customer.pk).exists()


def test_suppressed_contact_cannot_be_granted_by_import(purposes, text):
    customer = CustomerFactory(email="wrocila@example.pl")
    suppression_add(email="Wrocila@Example.pl")
    with pytest.raises(ValidationError) as error:
        grant(customer, text, source="import", import_file_hash="a" * 64)
    assert error.value.error_dict["customer"][0].code == "suppressed"
    # the person themselves may
    event, _ = grant(customer, text, source="double_opt_in")
    assert event.pk


def test_consent_set_records_only_changes(customer, text):
    from consents.services import consent_set

    def switch(granted):
        return consent_set(
            customer=customer,
            purpose="email_marketing",
            granted=granted,
            text=text if granted else None,
            source="preference_centre",
        )

    assert switch(True)[1]
    assert switch(True) == (None, False)
    assert switch(False)[1]
    assert switch(False) == (None, False)
    assert ConsentEvent.objects.count() == 2
