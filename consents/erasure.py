"""The person's rights that change what we may do with their data (Art. 17, 18, 21).

``customer_erase`` anonymises a customer: their contacts go on the suppression list
first, then every personal field, address, identity, behaviour trace, support
conversation's text and attachment, and piece of consent evidence is removed.
Orders stay (accounting, ACCOUNTING_HOLD_YEARS) with their addresses emptied, and
the consent ledger keeps its proof (which text, when, how; the evidence hash)
without the person's data. The shops hear about it through the ``customer.erased``
webhook, with the external ids they need to do the same.
"""

from __future__ import annotations

import copy
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from consents.models import (
    AccessLog,
    ConsentEvent,
    ConsentPurpose,
    DataSubjectRequest,
    DoubleOptIn,
)
from consents.services import consent_withdraw_all, suppression_add
from customers.merging import merges_scrub
from customers.models import (
    Address,
    ApiKey,
    Customer,
    CustomerIdentity,
    Event,
    IdempotencyRecord,
    Interaction,
    InteractionAttachment,
    InteractionChange,
    Visitor,
    WebhookDelivery,
)
from customers.signals import customer_activity_changed_send
from customers.webhooks import EventType, webhook_emit
from orders.models import Cart, Order

Source = ConsentEvent.Source

# Customer fields emptied on erasure, with their empty value. Kept: id, status,
# language, created_at and the RODO timestamps (they are the record of the erasure).
ERASED_VALUES: dict[str, Any] = {
    "first_name": "",
    "last_name": "",
    "email": None,
    "phone": "",
    "birth_date": None,
    "gender": "",
    "company": "",
    "nip": "",
    "preferred_channels": [],
    "acquisition_source": "",
    "acquisition_medium": "",
    "acquisition_campaign": "",
    "acquisition_keyword": "",
    "last_device": "",
    "last_os": "",
    "last_browser": "",
    "attributes": {},
    "last_seen_at": None,
}
# Personal keys in the customer part of webhook payloads already queued or sent.
WEBHOOK_PERSONAL_KEYS = ("email", "phone", "first_name", "last_name")

OBJECTION_FIELDS = {
    "marketing": "marketing_objection_at",
    "profiling": "profiling_objection_at",
}


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None


def _locked(customer: Customer) -> Customer:
    return Customer.objects.select_for_update().get(pk=customer.pk)


def _refresh(customer: Customer, locked: Customer, fields: list[str]) -> None:
    for name in fields:
        setattr(customer, name, getattr(locked, name))


def _not_erased(customer: Customer) -> None:
    if customer.erased_at is not None:
        raise ValidationError(
            {"customer": ValidationError(_("The customer was erased."), "erased")}
        )


def _access_log(*, customer: Customer, action: str, actor: Any, purpose: str) -> None:
    AccessLog.objects.create(
        customer=customer,
        action=action,
        user=_user(actor),
        api_key=actor if isinstance(actor, ApiKey) else None,
        purpose=purpose[:200],
    )


# --- Erasure (Art. 17) -------------------------------------------------------------


def customer_erase(
    *, customer: Customer, actor: Any, request: DataSubjectRequest | None = None
) -> None:
    """Anonymise a customer for good, keeping orders and the ledger's proof.

    One transaction: a failure anywhere leaves the customer as they were. Erasing
    an erased customer does nothing.
    """
    if request is not None and request.customer_id != customer.pk:
        raise ValidationError(
            {
                "request": ValidationError(
                    _("The request is another customer's."), code="invalid"
                )
            }
        )
    with transaction.atomic():
        locked = _locked(customer)
        if locked.erased_at is not None:
            _refresh(customer, locked, [*ERASED_VALUES, "erased_at", "restricted_at"])
            return
        now = timezone.now()
        # Taken before the identities go: the shops need them to mirror the erasure.
        identities = list(
            CustomerIdentity.objects.filter(customer=locked)
            .select_related("store")
            .order_by("store__code", "external_id")
        )
        contacts = [value for value in (locked.email, locked.phone) if value]

        # (a) First of all: an import or API call must not bring the person back.
        suppression_add(email=locked.email, phone=locked.phone)
        # Their consents end with the erasure; the ledger records it.
        consent_withdraw_all(
            customer=locked, source=Source.DATA_SUBJECT_REQUEST, occurred_at=now
        )

        # (b) The customer row keeps only what is not about the person.
        for name, value in ERASED_VALUES.items():
            setattr(locked, name, copy.copy(value))
        locked.erased_at = now
        locked.restricted_at = locked.restricted_at or now
        locked.save(
            update_fields=[*ERASED_VALUES, "erased_at", "restricted_at", "updated_at"]
        )
        customer_activity_changed_send(sender=Customer, customer_ids={locked.pk})
        locked.tags.clear()

        # (c) Addresses and the shops' ids: the API answers 404 from now on.
        address_ids = list(
            Address.objects.filter(customer=locked).values_list("pk", flat=True)
        )
        identity_ids = [identity.pk for identity in identities]
        Address.objects.filter(customer=locked).delete()
        CustomerIdentity.objects.filter(customer=locked).delete()

        # (d) Behaviour is not accounting data: events, visitors and carts go, also
        # the anonymous ones of the person's visitor ids.
        visitors = Q()
        for store_id, anonymous_id in Visitor.objects.filter(
            customer=locked
        ).values_list("store_id", "anonymous_id"):
            visitors |= Q(store_id=store_id, anonymous_id=anonymous_id)
        Event.objects.filter(customer=locked).delete()
        Cart.objects.filter(customer=locked).delete()
        if visitors:
            Event.objects.filter(visitors, customer__isnull=True).delete()
            Cart.objects.filter(visitors, customer__isnull=True).delete()
        Visitor.objects.filter(customer=locked).delete()

        # (d') The support log: what was said goes, with the files; that there
        # was a complaint and how it ended stays (the shop may have to show it).
        interactions = Interaction.objects.filter(customer=locked)
        interaction_ids = list(interactions.values_list("pk", flat=True))
        attachments = InteractionAttachment.objects.filter(interaction__customer=locked)
        files = [(a.file.storage, a.file.name) for a in attachments]
        attachments.delete()
        # The files go once the erasure is committed (a rollback keeps them).
        transaction.on_commit(lambda: _files_delete(files))
        interactions.exclude(subject="", body="", external_id="").update(
            subject="", body="", external_id="", updated_at=now
        )
        InteractionChange.objects.filter(interaction__customer=locked).exclude(
            note=""
        ).update(note="")

        # (e) Orders stay for the tax authority and still count as revenue.
        Order.objects.filter(customer=locked).update(
            billing_address={}, shipping_address={}, updated_at=now
        )

        # (f) The ledger keeps what was agreed to, when and how; not the person's
        # traces (the only UPDATE its trigger allows). Pending sign-ups go.
        ConsentEvent.objects.filter(customer=locked).filter(
            Q(ip_address__isnull=False) | ~Q(user_agent="") | ~Q(evidence={})
        ).update(ip_address=None, user_agent="", evidence={})
        DoubleOptIn.objects.filter(customer=locked).delete()
        DataSubjectRequest.objects.filter(customer=locked).exclude(requester="").update(
            requester=""
        )

        # Copies elsewhere: webhook payloads, API replay records, the admin history.
        _webhook_payloads_redact(locked.pk)
        _idempotency_records_forget(contacts)
        _admin_history_redact(
            {
                Customer: [locked.pk],
                Address: address_ids,
                CustomerIdentity: identity_ids,
                Interaction: interaction_ids,
            }
        )

        # (g) The audit row, (h) the shops mirror the erasure.
        _access_log(
            customer=locked,
            action=AccessLog.Action.ERASURE,
            actor=actor,
            purpose=str(request) if request is not None else _("erasure"),
        )
        webhook_emit(
            event=EventType.CUSTOMER_ERASED,
            store_ids=sorted({identity.store_id for identity in identities}),
            payload={
                "customer": {
                    "id": locked.pk,
                    "erased_at": now,
                    "identities": [
                        {"store": i.store.code, "external_id": i.external_id}
                        for i in identities
                    ],
                }
            },
        )
        # (i) Records merged into this one are the same person: erased too, and
        # the merge records lose their snapshots of the person.
        for merged in Customer.objects.filter(merged_into=locked, erased_at=None):
            customer_erase(customer=merged, actor=actor)
        merges_scrub(customer_ids=[locked.pk])
    _refresh(customer, locked, [*ERASED_VALUES, "erased_at", "restricted_at"])


def _files_delete(files: list[tuple[Any, str]]) -> None:
    for storage, name in files:
        storage.delete(name)


def _webhook_payloads_redact(customer_id: int) -> None:
    """Blank the person's contacts in deliveries about them, sent or pending."""
    deliveries = WebhookDelivery.objects.filter(
        payload__data__customer__id=customer_id
    ).only("payload")
    for delivery in deliveries:
        described = delivery.payload["data"]["customer"]
        if not any(described.get(key) for key in WEBHOOK_PERSONAL_KEYS):
            continue
        for key in WEBHOOK_PERSONAL_KEYS:
            if key in described:
                described[key] = None
        delivery.save(update_fields=["payload"])


def _idempotency_records_forget(contacts: list[str]) -> None:
    """Drop stored API responses that show the person (they only serve replays)."""
    if not contacts:
        return
    condition = Q()
    for value in contacts:
        condition |= Q(response_body__icontains=value)
    IdempotencyRecord.objects.filter(condition).delete()


def _admin_history_redact(objects: dict[type, list[int]]) -> None:
    """The admin's change history names objects by their str(): a name, a street."""
    condition = Q()
    for model, ids in objects.items():
        if ids:
            condition |= Q(
                content_type=ContentType.objects.get_for_model(model),
                object_id__in=[str(pk) for pk in ids],
            )
    if condition:
        LogEntry.objects.filter(condition).update(object_repr="—", change_message="")


# --- Restriction (Art. 18) ---------------------------------------------------------


def customer_restrict(*, customer: Customer, actor: Any) -> bool:
    """Restrict processing: out of campaigns, segments, scoring and exports.

    Returns whether anything changed (an already restricted customer: nothing).
    """
    with transaction.atomic():
        locked = _locked(customer)
        _not_erased(locked)
        if locked.restricted_at is not None:
            return False
        locked.restricted_at = timezone.now()
        locked.save(update_fields=["restricted_at", "updated_at"])
        customer_activity_changed_send(sender=Customer, customer_ids={locked.pk})
    _refresh(customer, locked, ["restricted_at"])
    return True


def customer_restriction_lift(*, customer: Customer, actor: Any) -> bool:
    """Lift a restriction; an erased customer stays restricted for good."""
    with transaction.atomic():
        locked = _locked(customer)
        _not_erased(locked)
        if locked.restricted_at is None:
            return False
        locked.restricted_at = None
        locked.save(update_fields=["restricted_at", "updated_at"])
        customer_activity_changed_send(sender=Customer, customer_ids={locked.pk})
    _refresh(customer, locked, ["restricted_at"])
    return True


# --- Objection (Art. 21) -----------------------------------------------------------


def _objection_field(to: str) -> str:
    if to not in OBJECTION_FIELDS:
        raise ValidationError(
            {
                "to": ValidationError(
                    _("Choose one of: %(choices)s."),
                    code="invalid_choice",
                    params={"choices": ", ".join(OBJECTION_FIELDS)},
                )
            }
        )
    return OBJECTION_FIELDS[to]


def customer_object(*, customer: Customer, to: str, actor: Any) -> bool:
    """Record an objection to direct marketing or to profiling.

    Marketing (Art. 21(3)): every marketing purpose is withdrawn in the ledger.
    Profiling (Art. 21(1)): the profiling purpose is. Returns whether anything
    changed; an objection already recorded writes nothing.
    """
    field = _objection_field(to)
    with transaction.atomic():
        locked = _locked(customer)
        _not_erased(locked)
        if getattr(locked, field) is not None:
            return False
        now = timezone.now()
        setattr(locked, field, now)
        locked.save(update_fields=[field, "updated_at"])
        customer_activity_changed_send(sender=Customer, customer_ids={locked.pk})
        purposes = (
            ConsentPurpose.objects.filter(is_marketing=True)
            if to == "marketing"
            else ConsentPurpose.objects.filter(code=ConsentPurpose.Code.PROFILING)
        )
        consent_withdraw_all(
            customer=locked,
            source=Source.DATA_SUBJECT_REQUEST,
            purposes=purposes,
            occurred_at=now,
            evidence={"objection": to},
        )
    _refresh(customer, locked, [field])
    return True


def customer_objection_lift(*, customer: Customer, to: str, actor: Any) -> bool:
    """Clear an objection; withdrawn consents stay withdrawn until given again."""
    field = _objection_field(to)
    with transaction.atomic():
        locked = _locked(customer)
        _not_erased(locked)
        if getattr(locked, field) is None:
            return False
        setattr(locked, field, None)
        locked.save(update_fields=[field, "updated_at"])
        customer_activity_changed_send(sender=Customer, customer_ids={locked.pk})
    _refresh(customer, locked, [field])
    return True
