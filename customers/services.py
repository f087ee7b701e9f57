"""Writes with business rules for customers. Every interface calls these."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from customers.models import (
    ApiKey,
    AttributeDefinition,
    Customer,
    CustomerIdentity,
    Store,
    Tag,
)
from customers.validators import normalize_email, normalize_nip, normalize_phone

# Fields customer_upsert sets from its keyword arguments, beyond the identity keys.
PROFILE_FIELDS = frozenset(
    {
        "first_name",
        "last_name",
        "birth_date",
        "gender",
        "language",
        "company",
        "nip",
        "preferred_channels",
        "acquisition_source",
        "acquisition_medium",
        "acquisition_campaign",
        "acquisition_keyword",
        "last_device",
        "last_os",
        "last_browser",
        "last_seen_at",
    }
)
_TEXT_LIMITS = {
    field.name: field.max_length
    for field in Customer._meta.get_fields()
    if getattr(field, "max_length", None) and field.name in PROFILE_FIELDS
}


def customer_attributes_clean(
    attributes: Mapping[str, Any],
    *,
    definitions: Iterable[AttributeDefinition] | None = None,
) -> dict[str, Any]:
    """Validate custom attribute values against their definitions; return JSON values.

    Unknown codes are errors; ``None`` or ``""`` means "no value" and drops the key.
    Numbers are stored as strings of their decimal value, dates as ISO dates, choices
    as the choice text (a list of them when the definition allows several).
    """
    if definitions is None:
        definitions = AttributeDefinition.objects.filter(is_active=True)
    by_code = {definition.code: definition for definition in definitions}
    cleaned: dict[str, Any] = {}
    errors: dict[str, ValidationError] = {}
    for code, value in attributes.items():
        definition = by_code.get(code)
        if definition is None:
            errors[code] = ValidationError(
                _("Unknown custom attribute “%(code)s”."),
                code="unknown_attribute",
                params={"code": code},
            )
            continue
        if value is None or value == "" or value == []:
            continue
        try:
            cleaned[code] = _clean_attribute_value(definition, value)
        except ValidationError as error:
            errors[code] = error
    if errors:
        raise ValidationError(errors)
    return cleaned


def _clean_attribute_value(definition: AttributeDefinition, value: Any) -> Any:
    kind = AttributeDefinition.Kind
    if definition.kind == kind.TEXT:
        text = str(value).strip()
        if len(text) > 500:
            raise ValidationError(_("At most 500 characters."), code="too_long")
        return text
    if definition.kind == kind.NUMBER:
        try:
            number = Decimal(str(value).replace(",", ".").replace(" ", ""))
        except InvalidOperation:
            raise ValidationError(_("Enter a number."), code="invalid_number") from None
        if not number.is_finite():
            raise ValidationError(_("Enter a number."), code="invalid_number")
        return str(number)
    if definition.kind == kind.DATE:
        parsed = value if isinstance(value, dt.date) else _parse(parse_date, value)
        if parsed is None:
            raise ValidationError(_("Enter a date as YYYY-MM-DD."), code="invalid_date")
        return parsed.isoformat()
    if definition.kind == kind.BOOLEAN:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "tak", "t", "y"}:
            return True
        if text in {"0", "false", "no", "nie", "n", "f"}:
            return False
        raise ValidationError(_("Enter yes or no."), code="invalid_boolean")
    # choice
    values = value if isinstance(value, list | tuple) else [value]
    if len(values) > 1 and not definition.multiple:
        raise ValidationError(_("Choose one value."), code="invalid_choice")
    values = [str(v).strip() for v in values]
    invalid = [v for v in values if v not in definition.choices]
    if invalid:
        raise ValidationError(
            _("“%(value)s” is not one of the allowed values: %(choices)s."),
            code="invalid_choice",
            params={"value": invalid[0], "choices": ", ".join(definition.choices)},
        )
    return values if definition.multiple else values[0]


def _clean_profile(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise and validate profile fields; collect every error before raising."""
    unknown = set(fields) - PROFILE_FIELDS - {"attributes", "tags", "status"}
    if unknown:
        raise TypeError(f"customer_upsert() got unexpected fields: {sorted(unknown)}")
    cleaned: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        try:
            cleaned[name] = _clean_profile_value(name, value)
        except ValidationError as error:
            if hasattr(error, "error_dict"):  # attributes: one error per code
                for code, errs in error.error_dict.items():
                    errors[f"{name}.{code}"] = errs
            else:
                errors[name] = error
    if errors:
        raise ValidationError(errors)
    return cleaned


def _parse(parser, value: Any) -> Any:
    """Run a dateparse parser; a well-formed but impossible date gives None."""
    try:
        return parser(str(value))
    except ValueError:
        return None


def _clean_profile_value(name: str, value: Any) -> Any:  # noqa: C901 - a flat dispatch
    if name == "nip":
        return normalize_nip(value) if str(value).strip() else ""
    if name == "birth_date":
        parsed = value if isinstance(value, dt.date) else _parse(parse_date, value)
        if parsed is None:
            raise ValidationError(_("Enter a date as YYYY-MM-DD."), code="invalid_date")
        if parsed > timezone.localdate() or parsed.year < 1900:
            raise ValidationError(_("Enter a real birth date."), code="invalid_date")
        return parsed
    if name == "last_seen_at":
        parsed = (
            value if isinstance(value, dt.datetime) else _parse(parse_datetime, value)
        )
        if parsed is None:
            raise ValidationError(
                _("Enter a date and time in ISO 8601."), code="invalid_datetime"
            )
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed)
        return parsed
    if name == "gender":
        if value not in Customer.Gender.values:
            raise ValidationError(
                _("Choose one of: %(choices)s."),
                code="invalid_choice",
                params={"choices": ", ".join(v for v in Customer.Gender.values if v)},
            )
        return value
    if name == "language":
        codes = [code for code, _label in settings.LANGUAGES]
        value = str(value).strip().lower()[:2]
        if value not in codes:
            raise ValidationError(
                _("Choose one of: %(choices)s."),
                code="invalid_choice",
                params={"choices": ", ".join(codes)},
            )
        return value
    if name == "status":
        if value not in Customer.Status.values:
            raise ValidationError(_("Choose lead or buyer."), code="invalid_choice")
        return value
    if name == "preferred_channels":
        channels = list(dict.fromkeys(value))
        invalid = [c for c in channels if c not in Customer.Channel.values]
        if invalid:
            raise ValidationError(
                _("Unknown channel “%(value)s”; choose from %(choices)s."),
                code="invalid_choice",
                params={
                    "value": invalid[0],
                    "choices": ", ".join(Customer.Channel.values),
                },
            )
        return channels
    if name == "attributes":
        return customer_attributes_clean(value)
    if name == "tags":
        names = [str(tag).strip() for tag in value if str(tag).strip()]
        too_long = [tag for tag in names if len(tag) > 64]
        if too_long:
            raise ValidationError(
                _("A tag has at most 64 characters."), code="too_long"
            )
        return names
    text = str(value).strip()
    limit = _TEXT_LIMITS.get(name)
    if limit and len(text) > limit:
        raise ValidationError(
            _("At most %(limit)d characters."), code="too_long", params={"limit": limit}
        )
    return text


def _clean_keys(
    *,
    store: Store | None,
    external_id: str | None,
    email: str | None,
    phone: str | None,
) -> tuple[str | None, str | None, str | None]:
    errors: dict[str, ValidationError] = {}
    external_id = (external_id or "").strip() or None
    if external_id and store is None:
        errors["store"] = ValidationError(
            _("An external id needs the store it comes from."), code="required"
        )
    if external_id and len(external_id) > 100:
        errors["external_id"] = ValidationError(
            _("At most %(limit)d characters."), code="too_long", params={"limit": 100}
        )
    if email is not None and email != "":
        try:
            email = normalize_email(email)
        except ValidationError as error:
            errors["email"] = error
    else:
        email = None
    if phone is not None and phone != "":
        try:
            phone = normalize_phone(phone)
        except ValidationError as error:
            errors["phone"] = error
    elif phone == "":
        phone = ""
    if not errors and not external_id and not email:
        errors["email"] = ValidationError(
            _("Give an email or the store's customer id to identify the customer."),
            code="required",
        )
    if errors:
        raise ValidationError(errors)
    return external_id, email, phone


def customer_upsert(
    *,
    store: Store | None = None,
    external_id: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    actor: Any = None,
    **fields: Any,
) -> tuple[Customer, bool]:
    """Create or update a customer keyed by (store, external id), else by email.

    Idempotent: the same input twice changes nothing the second time (no write at
    all). Arguments left as ``None`` keep their current value; ``attributes`` are
    merged key by key and ``tags`` are added. Invalid input raises ValidationError
    keyed by field and writes nothing. ``actor`` is the user or API key acting.
    """
    external_id, email, phone = _clean_keys(
        store=store, external_id=external_id, email=email, phone=phone
    )
    profile = _clean_profile(fields)
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _customer_upsert(
                    store=store,
                    external_id=external_id,
                    email=email,
                    phone=phone,
                    profile=profile,
                )
        except IntegrityError:
            # A concurrent upsert created the same customer or identity first: the
            # second pass finds it and updates it instead.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _customer_upsert(
    *,
    store: Store | None,
    external_id: str | None,
    email: str | None,
    phone: str | None,
    profile: dict[str, Any],
) -> tuple[Customer, bool]:
    customer = None
    identity_exists = False
    if external_id:
        customer = (
            Customer.objects.select_for_update(of=("self",))
            .filter(identities__store=store, identities__external_id=external_id)
            .first()
        )
        identity_exists = customer is not None
    if email:
        by_email = Customer.objects.select_for_update().by_email(email).first()
        if customer is None:
            customer = by_email
        elif by_email is not None and by_email.pk != customer.pk:
            raise ValidationError(
                {
                    "email": ValidationError(
                        _(
                            "This email belongs to another customer (#%(other)s); "
                            "merge the two customers first."
                        ),
                        code="email_taken",
                        params={"other": by_email.pk},
                    )
                }
            )

    tags = profile.pop("tags", None)
    attributes = profile.pop("attributes", None)
    created = customer is None
    if created:
        customer = Customer(email=email, phone=phone or "", **profile)
        if attributes:
            customer.attributes = attributes
        customer.save()
    else:
        changed = _apply_changes(customer, email=email, phone=phone, profile=profile)
        if attributes:
            merged = {**customer.attributes, **attributes}
            if merged != customer.attributes:
                customer.attributes = merged
                changed.append("attributes")
        if changed:
            customer.save(update_fields=[*changed, "updated_at"])

    if external_id and not identity_exists:
        CustomerIdentity.objects.create(
            store=store, external_id=external_id, customer=customer
        )
    if tags:
        _add_tags(customer, tags)
    return customer, created


def _apply_changes(
    customer: Customer, *, email: str | None, phone: str | None, profile: dict[str, Any]
) -> list[str]:
    changed = []
    values = dict(profile)
    if email is not None:
        values["email"] = email
    if phone is not None:
        values["phone"] = phone
    last_seen = values.pop("last_seen_at", None)
    if last_seen and (
        customer.last_seen_at is None or last_seen > customer.last_seen_at
    ):
        values["last_seen_at"] = last_seen
    for name, value in values.items():
        if getattr(customer, name) != value:
            setattr(customer, name, value)
            changed.append(name)
    return changed


def _add_tags(customer: Customer, names: list[str]) -> None:
    existing = {tag.name.upper(): tag for tag in Tag.objects.filter(name__in=names)}
    wanted = []
    for name in names:
        tag = existing.get(name.upper())
        if tag is None:
            tag = Tag.objects.filter(name__iexact=name).first() or Tag.objects.create(
                name=name
            )
            existing[name.upper()] = tag
        wanted.append(tag)
    present = set(customer.tags.values_list("pk", flat=True))
    missing = [tag for tag in wanted if tag.pk not in present]
    if missing:
        customer.tags.add(*missing)


def customer_mark_buyer(*, customer: Customer) -> bool:
    """Promote a lead to buyer once they have ordered; returns whether it changed."""
    return bool(
        Customer.objects.filter(pk=customer.pk, status=Customer.Status.LEAD).update(
            status=Customer.Status.BUYER, updated_at=timezone.now()
        )
    )


def api_key_create(
    *, store: Store, name: str, scopes: Iterable[str], actor: Any = None
) -> tuple[ApiKey, str]:
    """Create an API key for ``store``; return it with the only copy of the secret."""
    scopes = sorted(set(scopes))
    errors = {}
    if not scopes or set(scopes) - set(ApiKey.Scope.values):
        errors["scopes"] = ValidationError(
            _("Choose the scopes from: %(choices)s."),
            code="invalid_choice",
            params={"choices": ", ".join(ApiKey.Scope.values)},
        )
    name = (name or "").strip()
    if not name or len(name) > 100:
        errors["name"] = ValidationError(
            _("Give the key a name of at most 100 characters."), code="required"
        )
    if errors:
        raise ValidationError(errors)
    prefix = secrets.token_hex(4)
    raw_key = f"kt_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        store=store,
        name=name,
        prefix=prefix,
        key_hash=api_key_hash(raw_key),
        scopes=scopes,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    return api_key, raw_key


def api_key_hash(raw_key: str) -> str:
    """SHA-256 of a key as stored; keys are random, so no slow hash is needed."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_revoke(*, api_key: ApiKey, actor: Any = None) -> bool:
    """Revoke a key at once; returns whether it was active."""
    return bool(
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )
