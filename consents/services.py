"""Consent writes and the one check every send makes. Every interface calls these.

A consent is a ledger event (ConsentEvent) with its evidence; the current state
(ConsentState) follows it through a database trigger. Nothing here updates or
deletes a ledger row: the database would refuse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from consents.models import (
    ConsentEvent,
    ConsentPurpose,
    ConsentState,
    ConsentText,
    Suppression,
)
from customers.models import ApiKey, Customer, CustomerIdentity, Store
from customers.validators import normalize_email, normalize_phone
from customers.webhooks import webhook_emit

Source = ConsentEvent.Source
Action = ConsentEvent.Action

# Sources where the person acts themselves, now, in our own pages: the only ones
# that may bring back the marketing consent of an erased (suppressed) contact.
SELF_SERVICE_SOURCES = frozenset({Source.DOUBLE_OPT_IN, Source.PREFERENCE_CENTRE})


# --- Purposes and texts ------------------------------------------------------------


def consent_purpose(code: str | ConsentPurpose) -> ConsentPurpose:
    """The active purpose with this code; ValidationError for an unknown one."""
    if isinstance(code, ConsentPurpose):
        return code
    purpose = ConsentPurpose.objects.filter(code=code, is_active=True).first()
    if purpose is None:
        raise ValidationError(
            {
                "purpose": ValidationError(
                    _("Choose one of: %(choices)s."),
                    code="invalid_choice",
                    params={"choices": ", ".join(ConsentPurpose.Code.values)},
                )
            }
        )
    return purpose


def consent_text_current(*, purpose: ConsentPurpose, language: str) -> ConsentText:
    """The newest text of ``purpose`` in ``language`` (Polish if it has none)."""
    texts = ConsentText.objects.filter(purpose=purpose).order_by("-version")
    text = (
        texts.filter(language=language).first()
        or texts.filter(language=settings.LANGUAGE_CODE).first()
    )
    if text is None:
        raise ValidationError(
            {"text": ValidationError(_("The purpose has no text yet."), "no_text")}
        )
    return text


def consent_text_publish(
    *, purpose: ConsentPurpose, language: str, text: str, actor: Any = None
) -> ConsentText:
    """Publish a new version of a purpose's text; earlier versions stay as they are."""
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": ValidationError(_("Write the text."), "blank")})
    if language not in dict(settings.LANGUAGES):
        raise ValidationError(
            {"language": ValidationError(_("Unknown language."), "invalid_choice")}
        )
    with transaction.atomic():
        # Locks the purpose: two publishers cannot take the same version number.
        ConsentPurpose.objects.select_for_update().get(pk=purpose.pk)
        latest = (
            ConsentText.objects.filter(purpose=purpose, language=language)
            .order_by("-version")
            .first()
        )
        if latest is not None and latest.text == text:
            return latest
        return ConsentText.objects.create(
            purpose=purpose,
            language=language,
            version=(latest.version + 1) if latest else 1,
            text=text,
            content_hash=hashlib.sha256(text.encode()).hexdigest(),
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )


def _text_lookup(
    purpose: ConsentPurpose, text: ConsentText | Mapping | None
) -> ConsentText | None:
    """The text given as an object or as ``{"version", "language"}``."""
    if text is None or isinstance(text, ConsentText):
        if text is not None and text.purpose_id != purpose.pk:
            raise ValidationError(
                {
                    "text": ValidationError(
                        _("The text is another purpose's."), "invalid"
                    )
                }
            )
        return text
    found = ConsentText.objects.filter(
        purpose=purpose,
        version=text.get("version"),
        language=text.get("language") or settings.LANGUAGE_CODE,
    ).first()
    if found is None:
        raise ValidationError(
            {
                "text_version": ValidationError(
                    _("No such version of this purpose's text."), code="unknown_text"
                )
            }
        )
    return found


# --- Suppression of erased contacts ---------------------------------------------


def suppression_hash(kind: str, value: str) -> str:
    """A keyed hash (HMAC-SHA256) of a normalised email or phone.

    Keyed with SUPPRESSION_KEY, so the list cannot be reversed by hashing guesses.
    """
    normalised = normalize_email(value) if kind == Suppression.Kind.EMAIL else value
    if kind == Suppression.Kind.PHONE:
        try:
            normalised = normalize_phone(value)
        except ValidationError:
            normalised = value.strip()
    key = settings.SUPPRESSION_KEY.encode()
    return hmac.new(key, (normalised or "").lower().encode(), "sha256").hexdigest()


def _contacts(email: str | None, phone: str | None) -> list[tuple[str, str | None]]:
    return [(Suppression.Kind.EMAIL, email), (Suppression.Kind.PHONE, phone)]


def suppression_add(
    *, email: str | None = None, phone: str | None = None, reason: str = "erasure"
) -> None:
    """Put contacts on the suppression list (idempotent; the first reason stays).

    ``reason``: "erasure" (an erased person), "bounce" or "complaint" (the mail
    provider's hard bounce or spam complaint). Erasure replaces an earlier reason:
    it is the one that must never be lifted.
    """
    for kind, value in (
        (Suppression.Kind.EMAIL, email),
        (Suppression.Kind.PHONE, phone),
    ):
        if value:
            suppression, created = Suppression.objects.get_or_create(
                kind=kind,
                value_hash=suppression_hash(kind, value),
                defaults={"reason": reason},
            )
            if not created and reason == "erasure" and suppression.reason != reason:
                suppression.reason = reason
                suppression.save(update_fields=["reason"])


def is_suppressed(*, email: str | None = None, phone: str | None = None) -> bool:
    """Whether the email or the phone belongs to a person erased on request."""
    hashes = [
        (kind, suppression_hash(kind, value))
        for kind, value in (
            (Suppression.Kind.EMAIL, email),
            (Suppression.Kind.PHONE, phone),
        )
        if value
    ]
    if not hashes:
        return False
    query = Suppression.objects.none()
    for kind, value_hash in hashes:
        query |= Suppression.objects.filter(kind=kind, value_hash=value_hash)
    return query.exists()


# --- Recording -------------------------------------------------------------------


def _evidence_json(evidence: Mapping[str, Any]) -> str:
    """Evidence serialised as it is hashed: sorted keys, text as is."""
    return json.dumps(evidence, sort_keys=True, ensure_ascii=False, default=str)


def _evidence_hash(evidence: Mapping[str, Any], body: str | None = None) -> str:
    """SHA-256 of the serialised evidence (``body``, if already made); "" if none."""
    if not evidence:
        return ""
    body = _evidence_json(evidence) if body is None else body
    return hashlib.sha256(body.encode()).hexdigest()


def consent_record(  # noqa: C901 - one check per piece of evidence
    *,
    customer: Customer,
    purpose: str | ConsentPurpose,
    action: str,
    source: str,
    text: ConsentText | Mapping | None = None,
    occurred_at: dt.datetime | None = None,
    store: Store | None = None,
    api_key: ApiKey | None = None,
    staff_user: Any = None,
    import_file_hash: str = "",
    evidence: Mapping[str, Any] | None = None,
    ip_address: str | None = None,
    user_agent: str = "",
) -> tuple[ConsentEvent, bool]:
    """Append a grant or withdrawal with its evidence; return it and whether new.

    A grant needs the text version the person agreed to and where it came from
    (source, and the API key, staff member or import file hash that source
    implies): a bare "yes" is refused with a ValidationError keyed by field. A
    marketing grant for an erased person's email or phone is refused unless the
    person gives it themselves (double opt-in, preference centre). Repeating the
    newest event (same action, text, source and time) appends nothing.
    """
    errors: dict[str, ValidationError] = {}
    if customer.erased_at is not None:
        raise ValidationError(
            {"customer": ValidationError(_("The customer was erased."), "erased")}
        )
    purpose = consent_purpose(purpose)
    if action not in Action.values:
        errors["action"] = ValidationError(
            _("Choose grant or withdraw."), code="invalid_choice"
        )
    if source not in Source.values:
        errors["source"] = ValidationError(
            _("Choose one of: %(choices)s."),
            code="invalid_choice",
            params={"choices": ", ".join(Source.values)},
        )
    try:
        text = _text_lookup(purpose, text)
    except ValidationError as error:
        errors.update(error.error_dict)
        text = None
    if action == Action.GRANT and text is None and "text_version" not in errors:
        errors["text_version"] = ValidationError(
            _("A consent needs the version of the text the person agreed to."),
            code="required",
        )
    if source == Source.STAFF and not getattr(staff_user, "is_authenticated", False):
        errors["staff_user"] = ValidationError(
            _("Staff consent needs the staff member."), "required"
        )
    if source == Source.API and api_key is None:
        errors["api_key"] = ValidationError(_("API consent needs the key."), "required")
    import_file_hash = (import_file_hash or "").strip().lower()
    if source == Source.IMPORT and len(import_file_hash) != 64:
        errors["import_file_hash"] = ValidationError(
            _("An imported consent needs the file's SHA-256."), code="required"
        )
    now = timezone.now()
    occurred_at = occurred_at or now
    if timezone.is_naive(occurred_at):
        occurred_at = timezone.make_aware(occurred_at)
    if occurred_at > now + dt.timedelta(minutes=5):
        errors["occurred_at"] = ValidationError(
            _("A consent cannot be given in the future."), code="out_of_range"
        )
    if (
        action == Action.GRANT
        and purpose.is_marketing
        and source not in SELF_SERVICE_SOURCES
        and is_suppressed(email=customer.email, phone=customer.phone)
    ):
        errors["customer"] = ValidationError(
            _(
                "This person asked to be erased: only they can consent again, "
                "through a double opt-in or the preference centre."
            ),
            code="suppressed",
        )
    if errors:
        raise ValidationError(errors)

    evidence = dict(evidence or {})
    with transaction.atomic():
        # One writer per customer at a time: "repeat of the newest" is then exact.
        Customer.objects.select_for_update().filter(pk=customer.pk).exists()
        newest = (
            ConsentEvent.objects.filter(customer=customer, purpose=purpose)
            .order_by("-occurred_at", "-id")
            .first()
        )
        if (
            newest is not None
            and newest.action == action
            and newest.text_id == (text.pk if text else None)
            and newest.source == source
            and newest.occurred_at == occurred_at
        ):
            return newest, False
        event = ConsentEvent.objects.create(
            customer=customer,
            purpose=purpose,
            action=action,
            text=text,
            occurred_at=occurred_at,
            recorded_at=now,
            source=source,
            store=store,
            api_key=api_key,
            staff_user=staff_user if source == Source.STAFF else None,
            import_file_hash=import_file_hash,
            evidence=evidence,
            evidence_hash=_evidence_hash(evidence),
            ip_address=ip_address or None,
            user_agent=(user_agent or "")[:500],
        )
        _emit_consent_changed(customer=customer, event=event)
    return event, True


def consent_grant(**kwargs: Any) -> tuple[ConsentEvent, bool]:
    """``consent_record`` of a grant: the text version and evidence are required."""
    return consent_record(action=Action.GRANT, **kwargs)


def consent_withdraw(**kwargs: Any) -> tuple[ConsentEvent, bool]:
    """``consent_record`` of a withdrawal: it takes effect at once, for every send."""
    return consent_record(action=Action.WITHDRAW, **kwargs)


def consent_set(
    *,
    customer: Customer,
    purpose: str | ConsentPurpose,
    granted: bool,
    source: str,
    text: ConsentText | None = None,
    **evidence: Any,
) -> tuple[ConsentEvent | None, bool]:
    """Make the consent what the person chose; append only if that changes it.

    For switches and links people click more than once (preference centre,
    unsubscribe): a grant of the text already granted, or a withdrawal of a
    consent already withdrawn, records nothing. A withdrawal of a consent never
    given is recorded once, as proof the person asked. Returns the event (None if
    nothing was recorded) and whether it is new.
    """
    purpose = consent_purpose(purpose)
    with transaction.atomic():
        # Concurrent clicks queue on the customer row, then see each other's event.
        Customer.objects.select_for_update().filter(pk=customer.pk).exists()
        state = (
            ConsentState.objects.filter(customer=customer, purpose=purpose)
            .select_related("event")
            .first()
        )
        if granted and state is not None and state.granted:
            if text is None or state.event.text_id == text.pk:
                return None, False
        if not granted and state is not None and not state.granted:
            return None, False
        return consent_record(
            customer=customer,
            purpose=purpose,
            action=Action.GRANT if granted else Action.WITHDRAW,
            source=source,
            text=text if granted else None,
            **evidence,
        )


def _emit_consent_changed(*, customer: Customer, event: ConsentEvent) -> None:
    stores = CustomerIdentity.objects.filter(customer=customer).select_related("store")
    identities = list(stores)
    if not identities:
        return
    webhook_emit(
        event="consent.changed",
        store_ids=[identity.store_id for identity in identities],
        payload={
            "customer": {
                "id": customer.pk,
                "email": customer.email,
                "identities": [
                    {"store": i.store.code, "external_id": i.external_id}
                    for i in identities
                ],
            },
            "consent": {
                "purpose": event.purpose.code,
                "granted": event.action == Action.GRANT,
                "occurred_at": event.occurred_at,
                "source": event.source,
                "text_version": event.text.version if event.text else None,
            },
        },
    )


def consent_withdraw_all(
    *, customer: Customer, source: str, purposes: QuerySet | None = None, **evidence
) -> list[ConsentEvent]:
    """Withdraw every purpose currently granted (or those in ``purposes``)."""
    granted = ConsentState.objects.filter(customer=customer, granted=True)
    if purposes is not None:
        granted = granted.filter(purpose__in=purposes)
    events = []
    for state in granted.select_related("purpose"):
        event, _new = consent_record(
            customer=customer,
            purpose=state.purpose,
            action=Action.WITHDRAW,
            source=source,
            **evidence,
        )
        events.append(event)
    return events


# --- Reading -----------------------------------------------------------------------


def consent_states(customer: Customer) -> dict[str, bool]:
    """Every active purpose's code and whether the customer has it granted now."""
    granted = set(
        ConsentState.objects.filter(customer=customer, granted=True).values_list(
            "purpose__code", flat=True
        )
    )
    return {
        code: code in granted
        for code in ConsentPurpose.objects.filter(is_active=True).values_list(
            "code", flat=True
        )
    }


def consent_allows(*, customer: Customer, purpose: str) -> bool:
    """May we process ``customer``'s data for ``purpose`` right now?

    The one check every send makes, right before sending: the consent is granted
    now, the customer is neither erased nor restricted, and has not objected to
    direct marketing (for marketing purposes) or profiling (for profiling).
    Transactional messages (order confirmations) do not ask this.
    """
    customer = Customer.objects.filter(pk=customer.pk).only(
        "erased_at",
        "restricted_at",
        "marketing_objection_at",
        "profiling_objection_at",
    )[0]
    if customer.erased_at or customer.restricted_at:
        return False
    purpose_obj = ConsentPurpose.objects.filter(code=purpose, is_active=True).first()
    if purpose_obj is None:
        return False
    if purpose_obj.is_marketing and customer.marketing_objection_at:
        return False
    if purpose == ConsentPurpose.Code.PROFILING and customer.profiling_objection_at:
        return False
    return ConsentState.objects.filter(
        customer=customer, purpose=purpose_obj, granted=True
    ).exists()


def customers_reachable(purpose: str) -> QuerySet:
    """Customers ``consent_allows`` for ``purpose``, as a queryset (audiences)."""
    purpose_obj = consent_purpose(purpose)
    customers = Customer.objects.processable().filter(
        Exists(
            ConsentState.objects.filter(
                customer=OuterRef("pk"), purpose=purpose_obj, granted=True
            )
        )
    )
    if purpose_obj.is_marketing:
        customers = customers.filter(marketing_objection_at__isnull=True)
    if purpose_obj.code == ConsentPurpose.Code.PROFILING:
        customers = customers.filter(profiling_objection_at__isnull=True)
    return customers
