"""Writes with business rules for customers. Every interface calls these."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.db.transaction import TransactionManagementError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _
from psycopg import sql

from config import rawsql
from customers.models import (
    ApiKey,
    AttributeDefinition,
    Customer,
    CustomerIdentity,
    Event,
    IdempotencyRecord,
    Store,
    Tag,
    Visitor,
    WebhookDelivery,
)
from customers.validators import normalize_email, normalize_nip, normalize_phone
from customers.webhooks import webhook_emit_customer_updated

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


def errors_prefixed(error: ValidationError, prefix: str) -> ValidationError:
    """The same errors with their fields under ``prefix`` (``customer.email``).

    For a service that upserts a customer on the way: its errors name where in
    the caller's input they are.
    """
    if hasattr(error, "error_dict"):
        return ValidationError(
            {f"{prefix}.{field}": errs for field, errs in error.error_dict.items()}
        )
    return ValidationError({prefix: error.error_list})


def customer_upsert(
    *,
    store: Store | None = None,
    external_id: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    actor: Any = None,
    savepoint: bool = True,
    **fields: Any,
) -> tuple[Customer, bool]:
    """Create or update a customer keyed by (store, external id), else by email.

    Idempotent: the same input twice changes nothing the second time (no write at
    all). Arguments left as ``None`` keep their current value; ``attributes`` are
    merged key by key and ``tags`` are added. Invalid input raises ValidationError
    keyed by field and writes nothing. ``actor`` is the user or API key acting.

    A concurrent upsert creating the same customer makes this one retry in a
    savepoint. ``savepoint=False`` is for a caller inside its own transaction that
    retries it on IntegrityError itself (order_upsert): no savepoint, no retry.
    """
    external_id, email, phone = _clean_keys(
        store=store, external_id=external_id, email=email, phone=phone
    )
    profile = _clean_profile(fields)
    write = functools.partial(
        _customer_write,
        store=store,
        external_id=external_id,
        email=email,
        phone=phone,
        profile=profile,
    )
    if not savepoint:
        if not connection.in_atomic_block:
            raise TransactionManagementError("savepoint=False needs a transaction.")
        return write()
    for attempt in range(2):
        try:
            with transaction.atomic():
                return write()
        except IntegrityError:
            # A concurrent upsert created the same customer or identity first: the
            # second pass finds it and updates it instead.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _customer_write(
    *,
    store: Store | None,
    external_id: str | None,
    email: str | None,
    phone: str | None,
    profile: dict[str, Any],
) -> tuple[Customer, bool]:
    since = timezone.now()
    customer, created, wrote = _customer_upsert(
        store=store,
        external_id=external_id,
        email=email,
        phone=phone,
        profile=dict(profile),
    )
    if wrote:
        # The shop mirrors the change; an idempotent repeat emits nothing.
        webhook_emit_customer_updated(
            customer=customer,
            created=created,
            since=since,
            store=store,
            external_id=external_id,
        )
    return customer, created


def _customer_find(
    *, store: Store | None, external_id: str | None, email: str | None
) -> tuple[Customer | None, bool, Customer | None]:
    """Lock the customers an upsert may touch, in one precompiled query.

    Returns the customer found by the store's external id, else by email (``None``
    if neither), whether it was found by the external id, and the customer holding
    ``email``. Every order upsert runs this; see config.rawsql for why it is SQL.
    """
    by_identity = bool(external_id)
    by_email = bool(email)
    params = {"store": store.pk if store else None, "external_id": external_id}
    params["email"] = email
    split = rawsql.column_count(Customer)
    customers = []
    with rawsql.cursor() as cursor:
        cursor.execute(_customer_find_query(by_identity, by_email), params)
        for row in cursor.fetchall():
            customer = rawsql.from_row(Customer, row[:split])
            customers.append((customer, *row[split:]))
    identity_match = next((c for c, by_id, _by_email in customers if by_id), None)
    email_match = next((c for c, _by_id, by_email in customers if by_email), None)
    return identity_match or email_match, identity_match is not None, email_match


@cache
def _customer_find_query(by_identity: bool, by_email: bool) -> str:
    identity = sql.SQL(
        "c.id = (SELECT i.customer_id FROM {identities} i"
        " WHERE i.store_id = %(store)s AND i.external_id = %(external_id)s)"
    ).format(identities=rawsql.table(CustomerIdentity))
    # The same expression as the unique index on Upper("email").
    email = sql.SQL("UPPER(c.email) = UPPER(%(email)s)")
    wanted = [(by_identity, identity), (by_email, email)]
    return rawsql.compiled(
        sql.SQL(
            "SELECT {columns}, {via_identity}, {via_email} FROM {customers} c"
            " WHERE {condition} LIMIT 2 FOR UPDATE OF c"
        ).format(
            columns=rawsql.columns(Customer, "c"),
            via_identity=identity if by_identity else sql.SQL("false"),
            via_email=email if by_email else sql.SQL("false"),
            customers=rawsql.table(Customer),
            condition=sql.SQL(" OR ").join(q for wanted_q, q in wanted if wanted_q),
        )
    )


def _customer_upsert(
    *,
    store: Store | None,
    external_id: str | None,
    email: str | None,
    phone: str | None,
    profile: dict[str, Any],
) -> tuple[Customer, bool, bool]:
    """The upsert's writes; returns the customer, whether created, whether written."""
    customer, identity_exists, by_email = _customer_find(
        store=store, external_id=external_id, email=email
    )
    if by_email is not None and by_email.pk != customer.pk:
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
    wrote = created
    if created:
        customer = Customer(email=email, phone=phone or "", **profile)
        if attributes:
            customer.attributes = attributes
        rawsql.insert(customer)
    else:
        changed = _apply_changes(customer, email=email, phone=phone, profile=profile)
        if attributes:
            merged = {**customer.attributes, **attributes}
            if merged != customer.attributes:
                customer.attributes = merged
                changed.append("attributes")
        if changed:
            customer.save(update_fields=[*changed, "updated_at"])
            wrote = True

    if external_id and not identity_exists:
        rawsql.insert(
            CustomerIdentity(store=store, external_id=external_id, customer=customer)
        )
        wrote = True
    if tags:
        wrote = _add_tags(customer, tags) or wrote
    return customer, created, wrote


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


def _add_tags(customer: Customer, names: list[str]) -> bool:
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
    return bool(missing)


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


# Every API request authenticates: each process keeps the keys it has seen for a
# few seconds, so most requests skip the lookup. A revoked key stops working in
# every process within this time.
API_KEY_CACHE_SECONDS = 5
API_KEY_LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
_api_keys: dict[str, tuple[float, ApiKey]] = {}


def api_key_cache_clear(**_kwargs: Any) -> None:
    """Forget the keys this process holds (a signal receiver, too)."""
    _api_keys.clear()


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The active key ``raw_key`` with its store, or None if wrong, revoked or expired.

    Records when the key was last used, to the minute.
    """
    key_hash = api_key_hash(raw_key)
    now = timezone.now()
    cached = _api_keys.get(key_hash)
    if cached is not None and cached[0] > time.monotonic():
        api_key = cached[1]
    else:
        api_key = _api_key_active(key_hash, now)
        if api_key is None:
            return None
        if len(_api_keys) > 1000:  # keys are few; this bounds a flood of wrong ones
            _api_keys.clear()
        _api_keys[key_hash] = (time.monotonic() + API_KEY_CACHE_SECONDS, api_key)
    if api_key.expires_at is not None and api_key.expires_at <= now:
        return None
    if (
        api_key.last_used_at is None
        or now - api_key.last_used_at > API_KEY_LAST_USED_RESOLUTION
    ):
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


@cache
def _api_key_active_query() -> str:
    return rawsql.compiled(
        sql.SQL(
            "SELECT {key}, {store} FROM {keys} k JOIN {stores} s ON s.id = k.store_id"
            " WHERE k.key_hash = %s AND k.revoked_at IS NULL"
            " AND (k.expires_at IS NULL OR k.expires_at > %s)"
        ).format(
            key=rawsql.columns(ApiKey, "k"),
            store=rawsql.columns(Store, "s"),
            keys=rawsql.table(ApiKey),
            stores=rawsql.table(Store),
        )
    )


def _api_key_active(key_hash: str, now: dt.datetime) -> ApiKey | None:
    """``ApiKey.objects.active().select_related("store")`` by hash, precompiled.

    Runs for most API requests; see config.rawsql for why it is hand-written.
    """
    with rawsql.cursor() as cursor:
        cursor.execute(_api_key_active_query(), [key_hash, now])
        row = cursor.fetchone()
    if row is None:
        return None
    split = rawsql.column_count(ApiKey)
    api_key = rawsql.from_row(ApiKey, row[:split])
    api_key.store = rawsql.from_row(Store, row[split:])
    return api_key


def api_key_revoke(*, api_key: ApiKey, actor: Any = None) -> bool:
    """Revoke a key; returns whether it was active.

    The process that revokes refuses the key at once; others, which may hold it
    in their cache, within API_KEY_CACHE_SECONDS.
    """
    api_key_cache_clear()
    return bool(
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )


def api_records_prune(*, now: dt.datetime | None = None, batch: int = 10_000) -> dict:
    """Delete what the API only needs for a while; return the counts by kind.

    Idempotency records (stored responses, which may carry personal data) older
    than IDEMPOTENCY_KEY_HOURS: a key is honoured at least that long. Webhook
    deliveries that succeeded or failed for good, older than
    WEBHOOK_DELIVERY_RETENTION_DAYS; pending ones stay whatever their age.
    Deleted in batches, each its own transaction, so no lock is held for long.
    """
    now = now or timezone.now()
    records = IdempotencyRecord.objects.filter(
        created_at__lt=now - dt.timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    )
    delivery_days = settings.WEBHOOK_DELIVERY_RETENTION_DAYS
    deliveries = WebhookDelivery.objects.filter(
        status__in=[WebhookDelivery.Status.SUCCEEDED, WebhookDelivery.Status.FAILED],
        created_at__lt=now - dt.timedelta(days=delivery_days),
    )
    return {
        "idempotency_records": _delete_in_batches(records, batch),
        "webhook_deliveries": _delete_in_batches(deliveries, batch),
    }


def _delete_in_batches(queryset: QuerySet, batch: int) -> int:
    deleted = 0
    while True:
        with transaction.atomic():
            keys = list(queryset.values_list("pk", flat=True)[:batch])
            if not keys:
                return deleted
            deleted += queryset.model.objects.filter(pk__in=keys).delete()[0]


# Behaviour events ----------------------------------------------------------------

EVENT_BATCH_LIMIT = 1000
# Free-text event fields and the most characters each may hold, as the model has it.
EVENT_TEXT_FIELDS = {
    name: Event._meta.get_field(name).max_length
    for name in (
        "external_id",
        "url",
        "referrer",
        "keyword",
        "product_sku",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "device",
        "os",
        "browser",
    )
}
EVENT_FIELDS = frozenset(
    {"kind", "occurred_at", "customer", "anonymous_id", "ip", *EVENT_TEXT_FIELDS}
)
_EVENT_KINDS = frozenset(Event.Kind.values)
_ANONYMOUS_ID_LIMIT = Visitor._meta.get_field("anonymous_id").max_length
_CUSTOMER_ID_LIMIT = CustomerIdentity._meta.get_field("external_id").max_length
# A clock a little ahead is tolerated; further ahead would pin "last seen" for good.
EVENT_FUTURE_TOLERANCE = dt.timedelta(days=1)
EVENT_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
# The order of a cleaned event's values: the staging table's and the insert's.
_EVENT_COLUMNS = (
    "external_id",
    "customer_id",
    "anonymous_id",
    "kind",
    "occurred_at",
    "url",
    "referrer",
    "keyword",
    "product_sku",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "device",
    "os",
    "browser",
    "ip_network",
)
_EVENT_STAGING = "kartoteka_event_staging"

# event_ingest's statements. Table names come from the models, values are bound.
# The batch is copied (COPY) into a temporary table kept per database session and
# emptied at commit; from there every write is one set-based statement.
_STAGING_CREATE = sql.SQL("""
    CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (
        n integer NOT NULL,
        external_id varchar NOT NULL,
        customer_id bigint,
        anonymous_id varchar NOT NULL,
        kind varchar NOT NULL,
        occurred_at timestamptz NOT NULL,
        url varchar NOT NULL,
        referrer varchar NOT NULL,
        keyword varchar NOT NULL,
        product_sku varchar NOT NULL,
        utm_source varchar NOT NULL,
        utm_medium varchar NOT NULL,
        utm_campaign varchar NOT NULL,
        device varchar NOT NULL,
        os varchar NOT NULL,
        browser varchar NOT NULL,
        ip_network inet
    ) ON COMMIT DELETE ROWS
""").format(staging=sql.Identifier(_EVENT_STAGING))
# A caller's outer transaction may have staged an earlier batch: start empty.
_STAGING_CLEAR = sql.SQL("DELETE FROM {staging}").format(
    staging=sql.Identifier(_EVENT_STAGING)
)
_STAGING_COPY = sql.SQL("COPY {staging} (n, {columns}) FROM STDIN").format(
    staging=sql.Identifier(_EVENT_STAGING),
    columns=sql.SQL(", ").join(map(sql.Identifier, _EVENT_COLUMNS)),
)
# Insert or widen visitors. A row changes only when it learns something (earlier
# first seen, later last seen, another customer), so a repeated batch writes
# nothing; rows go in sorted, so concurrent batches lock shared visitors in one
# order. Returns the ids identified (given a customer) by this statement.
_VISITORS_UPSERT = """
    INSERT INTO {visitor} AS v
        (store_id, anonymous_id, customer_id, first_seen_at, last_seen_at,
         identified_at)
    SELECT %(store)s, b.anonymous_id, b.customer_id, b.first_seen_at,
           b.last_seen_at,
           CASE WHEN b.customer_id IS NOT NULL THEN %(now)s::timestamptz END
    FROM ({source}) AS b
    ORDER BY b.anonymous_id
    ON CONFLICT (store_id, anonymous_id) DO UPDATE SET
        first_seen_at = LEAST(v.first_seen_at, EXCLUDED.first_seen_at),
        last_seen_at = GREATEST(v.last_seen_at, EXCLUDED.last_seen_at),
        customer_id = COALESCE(EXCLUDED.customer_id, v.customer_id),
        identified_at = CASE
            WHEN EXCLUDED.customer_id IS NOT NULL
                 AND EXCLUDED.customer_id IS DISTINCT FROM v.customer_id
            THEN EXCLUDED.identified_at ELSE v.identified_at END
    WHERE EXCLUDED.first_seen_at < v.first_seen_at
        OR EXCLUDED.last_seen_at > v.last_seen_at
        OR (EXCLUDED.customer_id IS NOT NULL
            AND EXCLUDED.customer_id IS DISTINCT FROM v.customer_id)
    RETURNING v.anonymous_id, v.identified_at = %(now)s::timestamptz
"""
# The batch's visitors (see _batch_visitors), one array per column.
_VISITORS_FROM_BATCH = sql.SQL(_VISITORS_UPSERT).format(
    visitor=sql.Identifier(Visitor._meta.db_table),
    source=sql.SQL(
        "SELECT * FROM UNNEST(%(anonymous_ids)s::varchar[], %(customers)s::bigint[],"
        " %(first_seen)s::timestamptz[], %(last_seen)s::timestamptz[])"
        " AS b (anonymous_id, customer_id, first_seen_at, last_seen_at)"
    ),
)
_VISITOR_ONE = sql.SQL(_VISITORS_UPSERT).format(
    visitor=sql.Identifier(Visitor._meta.db_table),
    source=sql.SQL(
        "SELECT %(anonymous_id)s::varchar AS anonymous_id, "
        "%(customer)s::bigint AS customer_id, %(at)s::timestamptz AS first_seen_at, "
        "%(at)s::timestamptz AS last_seen_at"
    ),
)
# One statement: insert the staged events (skipping external ids already stored;
# an anonymous event of an identified visitor gets the visitor's customer), then
# from each customer's newest new event set their last seen time and device. An
# older time changes nothing; an empty device, OS or browser keeps the stored one.
# Customers are locked in id order first, so concurrent batches cannot deadlock.
# ``updated_at`` stays: activity is not a profile change the sync feed must carry.
_EVENTS_INSERT = sql.SQL("""
    WITH inserted AS (
        INSERT INTO {event}
            (store_id, received_at, {columns})
        SELECT %(store)s, %(now)s, e.external_id,
               -- looked up (by the unique index) only for anonymous events: a
               -- join would read the whole visitor table when the plan hashes it
               COALESCE(
                   e.customer_id,
                   (SELECT v.customer_id FROM {visitor} v
                    WHERE v.store_id = %(store)s AND v.anonymous_id = e.anonymous_id)
               ),
               e.anonymous_id, e.kind, e.occurred_at, e.url, e.referrer, e.keyword,
               e.product_sku, e.utm_source, e.utm_medium, e.utm_campaign, e.device,
               e.os, e.browser, e.ip_network
        FROM {staging} e
        -- by external id: concurrent retries take the unique index's locks in order
        ORDER BY e.external_id, e.n
        ON CONFLICT (store_id, external_id) WHERE external_id <> '' DO NOTHING
        RETURNING customer_id, occurred_at, device, os, browser
    ),
    newest AS (
        SELECT DISTINCT ON (customer_id)
               customer_id, occurred_at, device, os, browser
        FROM inserted
        WHERE customer_id IS NOT NULL
        ORDER BY customer_id, occurred_at DESC
    ),
    locked AS (
        SELECT id FROM {customer}
        WHERE id IN (SELECT customer_id FROM newest)
        ORDER BY id
        FOR NO KEY UPDATE
    ),
    seen AS (
        UPDATE {customer} c SET
            last_seen_at = s.occurred_at,
            last_device = COALESCE(NULLIF(s.device, ''), c.last_device),
            last_os = COALESCE(NULLIF(s.os, ''), c.last_os),
            last_browser = COALESCE(NULLIF(s.browser, ''), c.last_browser)
        FROM locked JOIN newest s ON s.customer_id = locked.id
        WHERE c.id = locked.id
            AND (c.last_seen_at IS NULL OR c.last_seen_at < s.occurred_at)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM seen)
""").format(
    event=sql.Identifier(Event._meta.db_table),
    visitor=sql.Identifier(Visitor._meta.db_table),
    customer=sql.Identifier(Customer._meta.db_table),
    staging=sql.Identifier(_EVENT_STAGING),
    columns=sql.SQL(", ").join(map(sql.Identifier, _EVENT_COLUMNS)),
)


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def _ip_network(address: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network of an address: the host part is dropped.

    Raises ValueError for anything but an IP address. An IPv4 address mapped into
    IPv6 counts as IPv4.
    """
    if _IPV4.fullmatch(address):  # the common case, without ipaddress's objects
        return address[: address.rindex(".")] + ".0"
    ip = ipaddress.ip_address(address.strip())
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Address(int(ip) & 0xFFFFFF00))
    return str(ipaddress.IPv6Address(int(ip) >> 80 << 80))


def _event_text(value: Any, limit: int) -> str:
    """A stripped string of at most ``limit`` characters PostgreSQL can store."""
    if not isinstance(value, str):
        raise ValidationError(_("Enter text."), code="invalid")
    value = value.strip()
    if len(value) > limit:
        raise ValidationError(
            _("At most %(limit)d characters."), code="too_long", params={"limit": limit}
        )
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValidationError(
                _("The text holds characters that are not allowed."), code="invalid"
            ) from None
    if "\x00" in value:
        raise ValidationError(
            _("The text holds characters that are not allowed."), code="invalid"
        )
    return value


def _event_moment(value: Any, latest: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            moment = _parse(parse_datetime, value)
        if moment is None:
            raise ValidationError(
                _("Enter a date and time in ISO 8601, e.g. 2026-03-01T12:30:00+01:00."),
                code="invalid_datetime",
            )
    else:
        raise ValidationError(_("This field is required."), code="required")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if moment > latest or moment < EVENT_EARLIEST:
        raise ValidationError(
            _("The event cannot have happened then."), code="out_of_range"
        )
    return moment


def _event_clean(
    item: Any, latest: dt.datetime, zone: dt.tzinfo
) -> tuple[list[Any], dict[str, ValidationError]]:
    """One event's values in ``_EVENT_COLUMNS`` order, and its errors by field.

    The key ``""`` holds an error about the item as a whole.
    """
    if not isinstance(item, Mapping):
        error = ValidationError(_("Send each event as an object."), code="invalid")
        return [], {"": error}
    errors: dict[str, ValidationError] = {}
    for name in item.keys() - EVENT_FIELDS:
        errors[str(name)] = ValidationError(_("Unknown field."), code="unknown_field")
    kind = item.get("kind")
    if not isinstance(kind, str) or kind not in _EVENT_KINDS:
        errors["kind"] = (
            ValidationError(_("This field is required."), code="required")
            if kind is None or kind == ""
            else ValidationError(
                _("Choose one of: %(choices)s."),
                code="invalid_choice",
                params={"choices": ", ".join(Event.Kind.values)},
            )
        )
    try:
        occurred_at = _event_moment(item.get("occurred_at"), latest, zone)
    except ValidationError as error:
        errors["occurred_at"] = error
        occurred_at = None
    keys: dict[str, str] = {}
    for name, limit in (
        ("customer", _CUSTOMER_ID_LIMIT),
        ("anonymous_id", _ANONYMOUS_ID_LIMIT),
    ):
        value = item.get(name)
        if value is None:
            keys[name] = ""
            continue
        try:
            keys[name] = _event_text(value, limit)
        except ValidationError as error:
            errors[name] = error
            continue
        if not keys[name]:  # absent is null or missing, not an empty id
            errors[name] = ValidationError(
                _("This field may not be blank."), code="blank"
            )
    if (
        not keys.get("customer")
        and not keys.get("anonymous_id")
        and not ({"customer", "anonymous_id"} & errors.keys())
    ):
        errors["customer"] = ValidationError(
            _("Give the store's customer id, the anonymous visitor id, or both."),
            code="required",
        )
    texts: dict[str, str] = {}
    for name, limit in EVENT_TEXT_FIELDS.items():
        value = item.get(name)
        if value is None:
            texts[name] = ""
            continue
        if type(value) is str:  # the common case, inline: 1,000 events a request
            value = value.strip()
            if len(value) <= limit and value.isascii() and "\x00" not in value:
                texts[name] = value
                continue
        try:
            texts[name] = _event_text(value, limit)
        except ValidationError as error:
            errors[name] = error
    network = None
    address = item.get("ip")
    if address is not None and address != "":
        try:
            if not isinstance(address, str):
                raise ValueError(address)
            network = _ip_network(address)
        except ValueError:
            errors["ip"] = ValidationError(
                _("Enter an IPv4 or IPv6 address."), code="invalid_ip"
            )
    if errors:
        return [], errors
    return [
        texts["external_id"],
        keys["customer"],
        keys["anonymous_id"],
        kind,
        occurred_at,
        texts["url"],
        texts["referrer"],
        texts["keyword"],
        texts["product_sku"],
        texts["utm_source"],
        texts["utm_medium"],
        texts["utm_campaign"],
        texts["device"],
        texts["os"],
        texts["browser"],
        network,
    ], errors


def event_ingest(*, store: Store, events: Sequence[Any]) -> dict[str, int]:
    """Store a batch of behaviour events set-based; return accepted and duplicates.

    Every event is validated first and the whole batch is refused (ValidationError
    keyed ``events.<n>.<field>``) if any is invalid, so nothing is half-written.
    An event whose ``external_id`` the store already sent is a duplicate and is
    skipped: a retried batch changes nothing. IP addresses are cut to their /24 or
    /48 network before storage. An event carrying both the customer and the
    anonymous id identifies that visitor: their earlier anonymous events (and open
    carts) are attached to the customer, and so are their later ones on arrival.
    Customers' last seen time and device come from their newest event in the batch.
    """
    if len(events) > EVENT_BATCH_LIMIT:
        raise ValidationError(
            {
                "events": ValidationError(
                    _("At most %(limit)d events per request."),
                    code="too_many",
                    params={"limit": EVENT_BATCH_LIMIT},
                )
            }
        )
    zone = timezone.get_current_timezone()
    now = timezone.now()
    latest = now + EVENT_FUTURE_TOLERANCE
    rows: list[list[Any]] = []
    errors: dict[str, ValidationError] = {}
    for index, item in enumerate(events):
        row, item_errors = _event_clean(item, latest, zone)
        if item_errors:
            for name, error in item_errors.items():
                errors[f"events.{index}.{name}" if name else f"events.{index}"] = error
        else:
            rows.append(row)
    if errors:
        raise ValidationError(errors)
    if not rows:
        return {"accepted": 0, "duplicates": 0}

    # The store's customer ids, resolved in one query; an unknown one is an error
    # (another store's id is unknown here too).
    external_ids = {row[1] for row in rows if row[1]}
    customer_ids = dict(
        CustomerIdentity.objects.filter(
            store=store, external_id__in=external_ids
        ).values_list("external_id", "customer_id")
        if external_ids
        else ()
    )
    if len(customer_ids) < len(external_ids):
        for index, row in enumerate(rows):
            if row[1] and row[1] not in customer_ids:
                errors[f"events.{index}.customer"] = ValidationError(
                    _("The store has no customer with this id."),
                    code="unknown_customer",
                )
        raise ValidationError(errors)
    for index, row in enumerate(rows):
        row[1] = customer_ids[row[1]] if row[1] else None
        row.insert(0, index)

    params = {"store": store.pk, "now": now}
    visitors = _batch_visitors(rows)
    if visitors:
        # Concurrent batches share visitors: their rows are locked only for the
        # length of this short transaction, not while the events go in. Should
        # the events then fail, a retry changes nothing here and stores them.
        with transaction.atomic(), rawsql.cursor() as cursor:
            cursor.execute(_VISITORS_FROM_BATCH, {**params, **visitors})
            identified = [anonymous_id for anonymous_id, new in cursor if new]
            if identified:
                _visitors_attach(store=store, anonymous_ids=identified, now=now)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_STAGING_CREATE)
        cursor.execute(_STAGING_CLEAR)
        with cursor.cursor.copy(_STAGING_COPY) as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(_EVENTS_INSERT, params)
        accepted, _seen = cursor.fetchone()
    return {"accepted": accepted, "duplicates": len(events) - accepted}


def _batch_visitors(rows: list[list[Any]]) -> dict[str, list]:
    """The batch's anonymous visitors, as the arrays _VISITORS_FROM_BATCH takes.

    Per visitor, sorted by anonymous id: first and last seen, and the customer of
    their newest event that names one (the latest login wins).
    """
    seen: dict[str, list] = {}  # anonymous id: [first, last, customer, its time]
    for row in rows:
        customer_id, anonymous_id, occurred_at = row[2], row[3], row[5]
        if not anonymous_id:
            continue
        visitor = seen.get(anonymous_id)
        if visitor is None:
            seen[anonymous_id] = visitor = [occurred_at, occurred_at, None, None]
        visitor[0] = min(visitor[0], occurred_at)
        visitor[1] = max(visitor[1], occurred_at)
        # rows are in batch order: at the same time, the later one wins
        if customer_id is not None and (
            visitor[3] is None or occurred_at >= visitor[3]
        ):
            visitor[2], visitor[3] = customer_id, occurred_at
    if not seen:
        return {}
    ordered = sorted(seen.items())
    return {
        "anonymous_ids": [anonymous_id for anonymous_id, _v in ordered],
        "first_seen": [v[0] for _a, v in ordered],
        "last_seen": [v[1] for _a, v in ordered],
        "customers": [v[2] for _a, v in ordered],
    }


def visitor_identify(
    *,
    store: Store,
    anonymous_id: str,
    customer: Customer,
    at: dt.datetime | None = None,
) -> Visitor:
    """Record that an anonymous visitor is ``customer``; attach their earlier traces.

    The visitor's anonymous events and open carts in ``store`` join the customer in
    one UPDATE each; their later anonymous events join on arrival (event_ingest).
    ``at`` is when they identified (a login, an order), now if not given.
    """
    try:
        anonymous_id = _event_text(anonymous_id, _ANONYMOUS_ID_LIMIT)
    except ValidationError as error:
        raise ValidationError({"anonymous_id": error}) from None
    if not anonymous_id:
        raise ValidationError(
            {"anonymous_id": ValidationError(_("This field is required."), "required")}
        )
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _VISITOR_ONE,
            {
                "store": store.pk,
                "now": now,
                "anonymous_id": anonymous_id,
                "customer": customer.pk,
                "at": at or now,
            },
        )
        if any(new for _anonymous_id, new in cursor):
            _visitors_attach(store=store, anonymous_ids=[anonymous_id], now=now)
    return Visitor.objects.get(store=store, anonymous_id=anonymous_id)


def _visitors_attach(
    *, store: Store, anonymous_ids: list[str], now: dt.datetime
) -> None:
    """Give the visitors' anonymous events and open carts their customer, set-based."""
    visitor_customer = Subquery(
        Visitor.objects.filter(
            store=store, anonymous_id=OuterRef("anonymous_id")
        ).values("customer_id")[:1]
    )
    Event.objects.filter(
        store=store, customer__isnull=True, anonymous_id__in=anonymous_ids
    ).update(customer_id=visitor_customer)
    # Carts belong to orders, which sits to the right of customers: reached through
    # the reverse relation, never imported.
    carts = getattr(store, "carts", None)
    if carts is not None:
        carts.filter(
            customer__isnull=True,
            converted_at__isnull=True,
            anonymous_id__in=anonymous_ids,
        ).update(customer_id=visitor_customer, modified_at=now)
