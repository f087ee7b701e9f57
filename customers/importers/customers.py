"""Importing a customers CSV file: one service, set-based per batch.

:func:`customers_import` maps the header (:mod:`customers.importers.formats`), streams
the rows (:mod:`customers.importers.reading`), cleans each row with the same rules as
:func:`customers.services.customer_upsert` (its ``_clean_keys`` / ``_clean_profile``)
and writes each batch in SQL: COPY into temporary staging tables, then a handful of
set-based statements that match, insert and update.

Decisions, in one place:

* **One transaction per file.** Every batch is written inside one ``atomic`` block.
  ``on_error="abort"``: rows are written batch by batch until the first bad row;
  from then on the rest of the file is only validated (every error is reported) and
  the transaction is rolled back at the end, so nothing is written. ``dry_run``
  writes everything the same way and rolls back, so its counts are exactly those of
  a real run. ``on_error="skip"``: bad rows are left out, the rest is committed.
* **Matching** as ``customer_upsert``: the store's identity ``(store, external id)``
  first, else the email case-insensitively (``UPPER(email)``, the unique index). An
  email that belongs to another customer than the identity's is a row error
  (``email_taken``), as in ``customer_upsert``.
* **Repeated customers in a file are merged in file order**: a later row wins per
  field (blank cells keep the earlier value), tags and addresses add up. Within a
  batch rows are merged in Python; a row that would touch a customer already touched
  by another row of the batch under a different key is carried to the next batch,
  so rows always apply in file order.
* **Blank cells keep the stored value** (``customer_upsert``'s ``None``);
  ``last_seen_at`` only moves forward. Only columns whose value changes are written
  (``IS DISTINCT FROM``), so a repeated import rewrites no row.
* **Addresses**: street, postcode and city make an address (country defaults to PL);
  it is added unless an identical one (kind, street, street2, postcode, city,
  country) exists; a new default address takes over the default flag of its kind.
  Kind: billing when the file marks it the default billing and not the default
  shipping address, else shipping.
* **Counts** are per customer and batch: ``created`` customers inserted, ``updated``
  existing customers changed (profile, identity, address or tag), ``unchanged`` the
  rest; ``merged`` rows folded into an earlier row of their batch. A customer
  repeated in two batches is counted in each.
* Kept as the file has them: the ``note``, and the previous platform's
  ``orders_count`` and ``total_spent`` (``imported_orders_count``,
  ``imported_total_spent``: history the orders never imported would not show).
  Not imported: ``created_at``. Consent columns are not written here: they go to
  ``on_consents`` (or ``ImportResult.consent_rows``) for the consents app. No
  webhooks are sent (the data comes from the shop).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from psycopg import sql

from config import rawsql
from customers.importers.formats import (
    CUSTOMERS,
    Mapping,
    MissingColumns,
    UnknownFormat,
    map_header,
)
from customers.importers.reading import (
    CsvFormatError,
    CsvSource,
    clean_text,
    in_background,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_decimal,
)
from customers.models import Address, Customer, CustomerIdentity, Store, Tag
from customers.services import _clean_keys, _clean_profile
from customers.validators import normalize_country, normalize_postcode

CONSENT_FIELDS = (
    "accepts_email_marketing",
    "email_marketing_at",
    "accepts_sms_marketing",
    "sms_marketing_at",
    "accepts_partner_marketing",
    "ip",
)
_BOOL_CONSENTS = (
    "accepts_email_marketing",
    "accepts_sms_marketing",
    "accepts_partner_marketing",
)
_DATE_CONSENTS = ("email_marketing_at", "sms_marketing_at")
# Customer columns the import sets (blank in the file: keep the stored value).
PROFILE_COLUMNS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "nip",
    "birth_date",
    "gender",
    "language",
    "note",
    "imported_orders_count",
    "imported_total_spent",
)
# File columns kept on the customer as the previous platform reported them.
_TOTALS = {
    "orders_count": "imported_orders_count",
    "total_spent": "imported_total_spent",
}
_NOTE_LIMIT = 10_000
ADDRESS_PARTS = ("street", "street2", "postcode", "city", "region", "country")
# An address's columns in the staging table, after the record's place ("idx").
_STAGE_ADDRESS_COLUMNS = (
    "kind",
    "is_default",
    "first_name",
    "last_name",
    "company",
    *ADDRESS_PARTS,
    "phone",
)
_ADDRESS_LIMITS = {
    name: Address._meta.get_field(name).max_length
    for name in ("street", "street2", "postcode", "city", "region")
}
_EMAIL_LIMIT = Customer._meta.get_field("email").max_length
_GENDERS = {
    "female": "female",
    "f": "female",
    "k": "female",
    "kobieta": "female",
    "woman": "female",
    "male": "male",
    "m": "male",
    "mężczyzna": "male",
    "mezczyzna": "male",
    "man": "male",
    "other": "other",
    "inna": "other",
    "inne": "other",
}


@dataclass(frozen=True)
class RowError:
    """One problem in one row: the physical line, the column as written, why."""

    line: int
    column: str
    value: str
    reason: str
    code: str = "invalid"


@dataclass(frozen=True)
class ConsentRow:
    """Consent values of one imported row, for the consents step to record."""

    customer_id: int | None  # None in a dry run for a customer that would be created
    line: int
    values: dict[str, Any]
    raw: dict[str, str] | None = None  # the row as in the file: the consent's evidence
    evidence: Any = None  # what customers_import's ``evidence`` hook made of it


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0
    sha256: str = ""
    format: str = ""
    variant: str = ""
    encoding: str = ""
    delimiter: str = ""
    dry_run: bool = False
    aborted: bool = False
    consent_rows: list[ConsentRow] = field(default_factory=list)
    # Counts a kind adds beyond the common ones, e.g. {"consents": 120}.
    extra: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, source: CsvSource, mapping: Mapping, *, dry_run: bool) -> ImportResult:
        """An empty result for ``source`` read with ``mapping``."""
        return cls(
            sha256=source.sha256,
            format=mapping.format,
            variant=mapping.variant,
            encoding=source.encoding,
            delimiter=source.delimiter,
            dry_run=dry_run,
        )

    @property
    def bad_rows(self) -> int:
        return len({error.line for error in self.errors})


@dataclass
class _Record:
    """One customer of a batch: cleaned values of one row or several merged rows."""

    key: tuple[str, str]
    lines: list[int]
    external_id: str | None
    values: dict[str, Any]
    tags: list[str]
    addresses: list[dict[str, Any]]
    # (line, consent values, the row as in the file, the evidence hook's result)
    # per row with consent columns
    consents: list[tuple[int, dict[str, Any], dict[str, str] | None, Any]]
    # The staging tables' rows in COPY's text format, made in the reading thread
    # (see staged), without the record's place in its batch, which goes first.
    stage: str | None = None
    stage_addresses: list[str] | None = None

    def staged(self) -> _Record:
        """Make the staging rows now; returns self. Merging drops them."""
        v = self.values
        self.stage = rawsql.copy_line(
            (
                self.external_id,
                *(v.get(name) for name in PROFILE_COLUMNS),
                v.get("last_seen_at"),
                self.tags or None,
            )
        )
        self.stage_addresses = [
            rawsql.copy_line(a[name] for name in _STAGE_ADDRESS_COLUMNS)
            for a in self.addresses
        ]
        return self


def customers_import(
    *,
    source: CsvSource,
    store: Store,
    format: str = "auto",
    dry_run: bool = False,
    on_error: Literal["skip", "abort"] = "abort",
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    actor: Any = None,
    on_consents: Callable[[ImportResult, list[ConsentRow]], None] | None = None,
    exclude: Callable[[list[str]], set[str]] | None = None,
    evidence: Callable[[int, dict[str, Any], dict[str, str]], Any] | None = None,
) -> ImportResult:
    """Import a customers CSV into ``store``: match, create, update; see the module.

    ``on_consents`` is called after each batch is written, in the import's
    transaction, with the batch's rows that carry consent columns (customer ids
    known, the raw row as evidence); without it they are collected in
    ``result.consent_rows``. ``exclude`` gets each batch's emails and returns
    those (upper-cased) whose rows are left out, counted in
    ``result.extra["skipped_erased"]`` (the consents app leaves out people erased
    on request). ``evidence`` is called in the reading thread for each row with
    consent columns (line, consent values, the row as in the file); what it
    returns reaches ``on_consents`` as ``ConsentRow.evidence``, so the work of
    turning rows into evidence is done beside the writing, not after it.
    """
    if on_error not in ("skip", "abort"):
        raise ValueError("on_error must be 'skip' or 'abort'")
    started = time.monotonic()
    mapping = map_source(source, format, CUSTOMERS)
    result = ImportResult.of(source, mapping, dry_run=dry_run)
    writer = _BatchWriter(
        store=store,
        result=result,
        email_column=_column(mapping, "email"),
        on_consents=on_consents,
    )
    with transaction.atomic(), rawsql.immediate_constraints():
        writer.prepare()
        try:
            # Rows are read and cleaned in a thread of their own while this one
            # writes the previous batch: Python and the database work at once.
            batches = _batches(source, mapping, store, result, batch_size, evidence)
            for batch, rows_read in in_background(batches):
                if exclude is not None:
                    batch = _without_excluded(batch, exclude, result)
                if not (on_error == "abort" and result.errors):
                    writer.write(batch)  # else: validate the rest, write nothing
                if progress:
                    progress(rows_read)
        except CsvFormatError as error:
            raise ValidationError(
                {"source": ValidationError(error.message, code=error.code)}
            ) from None
        writer.drop()
        result.aborted = on_error == "abort" and bool(result.errors)
        if result.aborted:
            result.created = result.updated = result.unchanged = result.merged = 0
            result.consent_rows = []
        if result.aborted or dry_run:
            transaction.set_rollback(True)
    if dry_run:
        result.consent_rows = [
            row
            if row.customer_id not in writer.created_ids
            else ConsentRow(None, row.line, row.values, row.raw, row.evidence)
            for row in result.consent_rows
        ]
    result.errors.sort(key=lambda error: error.line)
    result.seconds = time.monotonic() - started
    return result


def _column(mapping: Mapping, name: str) -> str:
    """The header cell feeding a canonical field (the first one), for messages."""
    positions = mapping.positions.get(name)
    return mapping.header[positions[0]] if positions else name


def _without_excluded(
    batch: list[_Record],
    exclude: Callable[[list[str]], set[str]],
    result: ImportResult,
) -> list[_Record]:
    emails = [r.values["email"] for r in batch if r.values.get("email")]
    left_out = exclude(emails) if emails else set()
    if not left_out:
        return batch
    kept = []
    for record in batch:
        email = record.values.get("email")
        if email and email.upper() in left_out:
            result.extra["skipped_erased"] = result.extra.get(
                "skipped_erased", 0
            ) + len(record.lines)
        else:
            kept.append(record)
    return kept


def map_source(source: CsvSource, format: str, kind: str) -> Mapping:
    """The file's header mapped for ``kind``; a ValidationError keyed "source"."""
    try:
        return map_header(source.header, format, kind)
    except MissingColumns as error:
        raise ValidationError(
            {"source": ValidationError(str(error), code="missing_columns")}
        ) from None
    except UnknownFormat as error:
        raise ValidationError(
            {"source": ValidationError(str(error), code="unknown_format")}
        ) from None


# --- Reading and cleaning ------------------------------------------------------------


def _batches(
    source: CsvSource,
    mapping: Mapping,
    store: Store,
    result: ImportResult,
    batch_size: int,
    evidence: Callable[[int, dict[str, Any], dict[str, str]], Any] | None = None,
) -> Iterator[tuple[list[_Record], int]]:
    """Batches of cleaned records (at most ``batch_size`` rows each), in file order.

    Each comes with the number of rows read so far; the last one may be empty.
    """
    zone = timezone.get_default_timezone()
    columns = {name: _column(mapping, name) for name in mapping.positions}
    pending: list[_Record] = []
    for line, row in source.rows():
        result.rows += 1
        if not result.rows % 32:
            # Cleaning holds the GIL: yield it often, so the thread writing to the
            # database gets it back as soon as each statement returns, not after
            # the interpreter's 5 ms switch interval.
            time.sleep(0)
        values = mapping.apply(list(row.values()))
        record = _clean_row(line, values, columns, store, zone, result.errors, row)
        if record is not None:
            if evidence is not None and record.consents:
                record.consents = [
                    (at, given, raw, evidence(at, given, raw or {}))
                    for at, given, raw, _none in record.consents
                ]
            pending.append(record.staged())
        if result.rows % batch_size == 0:
            yield pending, result.rows
            pending = []
    yield pending, result.rows


def _merge_batch(
    records: list[_Record],
) -> tuple[list[_Record], list[_Record]]:
    """Merge ``records`` per customer: the batch, and the rows carried over.

    A row whose email is held by another customer key of the batch waits for the
    next batch, and so does every row after it, to keep file order.
    """
    batch: dict[tuple[str, str], _Record] = {}
    owner: dict[str, tuple[str, str]] = {}  # UPPER(email) -> key in this batch
    for position, record in enumerate(records):
        email = record.values.get("email")
        email_key = email.upper() if email else None
        held_by = owner.get(email_key) if email_key else None
        if held_by is not None and held_by != record.key:
            return list(batch.values()), records[position:]
        earlier = batch.get(record.key)
        if earlier is None:
            batch[record.key] = record
        else:
            _merge(earlier, record)
        if email_key:
            owner[email_key] = record.key
    return list(batch.values()), []


def _merge(earlier: _Record, later: _Record) -> None:
    earlier.stage = earlier.stage_addresses = None
    earlier.lines.extend(later.lines)
    earlier.values.update(later.values)
    earlier.external_id = later.external_id or earlier.external_id
    earlier.tags.extend(t for t in later.tags if t.upper() not in _upper(earlier.tags))
    for address in later.addresses:
        _add_address(earlier.addresses, address)
    earlier.consents.extend(later.consents)


def _upper(names: list[str]) -> set[str]:
    return {name.upper() for name in names}


def _add_address(addresses: list[dict[str, Any]], address: dict[str, Any]) -> None:
    same = [a for a in addresses if _address_key(a) == _address_key(address)]
    if same:
        same[0]["is_default"] = same[0]["is_default"] or address["is_default"]
        return
    if address["is_default"]:
        for other in addresses:
            if other["kind"] == address["kind"]:
                other["is_default"] = False
    addresses.append(address)


def _address_key(address: dict[str, Any]) -> tuple:
    return (address["kind"], *(address[part] for part in ADDRESS_PARTS))


def _clean_row(  # noqa: C901 - one pass over the row's fields
    line: int,
    values: dict[str, str],
    columns: dict[str, str],
    store: Store,
    zone: Any,
    errors: list[RowError],
    raw: dict[str, str] | None = None,
) -> _Record | None:
    """Clean one row with customer_upsert's rules; record its errors, or a record.

    ``raw`` is the row as in the file, kept with the consents it gives (evidence).
    """
    found: list[RowError] = []

    def fail(name: str, error: ValidationError | str, code: str = "invalid") -> None:
        if isinstance(error, ValidationError):
            reason = " ".join(error.messages)
            code = getattr(error, "code", None) or code
        else:
            reason = error
        found.append(
            RowError(
                line=line,
                column=columns.get(name, name),
                value=values.get(name, ""),
                reason=reason,
                code=code or "invalid",
            )
        )

    text = {name: clean_text(value) for name, value in values.items()}
    email = text.get("email") or None
    if email and len(email) > _EMAIL_LIMIT:
        fail("email", _("At most %(limit)d characters.") % {"limit": _EMAIL_LIMIT})
    try:
        external_id, email, phone = _clean_keys(
            store=store,
            external_id=text.get("external_id"),
            email=email,
            phone=text.get("phone") or None,
        )
    except ValidationError as error:
        for name, errs in error.error_dict.items():
            for err in errs:
                fail(name, err)
        external_id = email = phone = None

    profile: dict[str, Any] = {
        name: text[name]
        for name in ("first_name", "last_name", "company", "nip", "language")
        if text.get(name)
    }
    if text.get("full_name") and not (text.get("first_name") or text.get("last_name")):
        first, _space, last = text["full_name"].partition(" ")
        profile["first_name"], profile["last_name"] = first, last.strip()
    if text.get("gender"):
        profile["gender"] = _GENDERS.get(text["gender"].casefold(), text["gender"])
    for name, parse in (
        ("birth_date", parse_date),
        ("last_seen_at", lambda v: parse_datetime(v, default_tz=zone)),
    ):
        if text.get(name):
            try:
                profile[name] = parse(text[name])
            except ValueError as error:
                fail(name, str(error), "invalid_date")
    if text.get("tags"):
        profile["tags"] = [tag for tag in text["tags"].split(",") if tag.strip()]
    try:
        profile = _clean_profile(profile)
    except ValidationError as error:
        for name, errs in error.error_dict.items():
            for err in errs:
                fail(name.split(".")[0], err)
    profile.update(_clean_kept(text, fail))

    address = _clean_address(text, fail)
    consents = _clean_consents(text, zone, fail)
    if found:
        errors.extend(found)
        return None

    record_values = {
        name: profile[name] for name in PROFILE_COLUMNS if profile.get(name) is not None
    }
    if email:
        record_values["email"] = email
    if phone:
        record_values["phone"] = phone
    if profile.get("last_seen_at"):
        record_values["last_seen_at"] = profile["last_seen_at"]
    key = ("id", external_id) if external_id else ("email", email.upper())
    if address is not None:
        address.update(
            first_name=profile.get("first_name", ""),
            last_name=profile.get("last_name", ""),
            company=profile.get("company", ""),
            phone=phone or "",
        )
    return _Record(
        key=key,
        lines=[line],
        external_id=external_id,
        values=record_values,
        tags=list(dict.fromkeys(profile.get("tags", []))),
        addresses=[address] if address is not None else [],
        consents=[(line, consents, raw, None)] if consents else [],
    )


def _clean_kept(text: dict[str, str], fail: Callable) -> dict[str, Any]:
    """The note and the previous platform's totals, which customer_upsert never sets."""
    kept: dict[str, Any] = {}
    note = (text.get("note") or "").strip()
    if len(note) > _NOTE_LIMIT:
        fail("note", _("At most %(limit)d characters.") % {"limit": _NOTE_LIMIT})
    elif note:
        kept["note"] = note
    if text.get("orders_count"):
        try:
            count = parse_decimal(text["orders_count"])
        except ValueError as error:
            fail("orders_count", str(error))
        else:
            if count is None or count < 0 or count != count.to_integral_value():
                fail("orders_count", _("Give a whole number, 0 or more."))
            else:
                kept["imported_orders_count"] = int(count)
    if text.get("total_spent"):
        try:
            spent = parse_decimal(text["total_spent"])
        except ValueError as error:
            fail("total_spent", str(error))
        else:
            if spent is None or spent < 0 or spent >= 10**12:
                fail("total_spent", _("Give an amount of 0 or more."))
            else:
                kept["imported_total_spent"] = spent.quantize(Decimal("0.01"))
    return kept


def _clean_address(text: dict[str, str], fail: Callable) -> dict[str, Any] | None:
    """The row's address, or None when street, postcode or city is missing."""
    if not all(text.get(part) for part in ("street", "postcode", "city")):
        return None
    address: dict[str, Any] = {part: text.get(part, "") for part in ADDRESS_PARTS}
    ok = True
    country, error = _country(text.get("country") or "PL")
    if error is not None:
        fail("country", error)
        ok = False
    address["country"] = country
    if ok:
        try:
            address["postcode"] = normalize_postcode(
                address["postcode"], address["country"]
            )
        except ValidationError as error:
            fail("postcode", error)
            ok = False
    for part, limit in _ADDRESS_LIMITS.items():
        if len(address[part]) > limit:
            fail(part, _("At most %(limit)d characters.") % {"limit": limit})
            ok = False
    flags = {}
    for name in ("is_default_billing", "is_default_shipping"):
        try:
            flags[name] = parse_bool(text.get(name))
        except ValueError as error:
            fail(name, str(error))
            ok = False
    if not ok:
        return None
    billing, shipping = flags["is_default_billing"], flags["is_default_shipping"]
    address["kind"] = (
        Address.Kind.BILLING.value
        if billing and not shipping
        else Address.Kind.SHIPPING.value
    )
    address["is_default"] = bool(billing or shipping) or (
        billing is None and shipping is None
    )
    return address


@lru_cache(maxsize=1024)
def _country(value: str) -> tuple[str, ValidationError | None]:
    """normalize_country, remembered: a name lookup scans every country's name."""
    try:
        return normalize_country(value), None
    except ValidationError as error:
        return value, error


def _clean_consents(text: dict[str, str], zone: Any, fail: Callable) -> dict[str, Any]:
    consents: dict[str, Any] = {}
    for name in _BOOL_CONSENTS:
        if text.get(name):
            try:
                consents[name] = parse_bool(text[name])
            except ValueError as error:
                fail(name, str(error))
    for name in _DATE_CONSENTS:
        if text.get(name):
            try:
                consents[name] = parse_datetime(text[name], default_tz=zone)
            except ValueError as error:
                fail(name, str(error), "invalid_date")
    if text.get("ip"):
        try:
            consents["ip"] = str(ipaddress.ip_address(text["ip"]))
        except ValueError:
            fail("ip", _("Not an IP address: %(value)s") % {"value": text["ip"]})
    return consents


# --- Writing -------------------------------------------------------------------------

# The tables an import fills, analysed as it goes: see _BatchWriter.
_TARGETS = (Customer, CustomerIdentity, Address)
#: Customers created before the statistics are refreshed, and again each time the
#: count doubles.
STATISTICS_REFRESH_ROWS = 20_000
_STAGE = "import_customer_stage"
_STAGE_ADDRESS = "import_customer_stage_address"
_STAGE_KEY = "import_customer_stage_key"


class _BatchWriter:
    """Writes batches of records in SQL through temporary staging tables."""

    def __init__(
        self,
        *,
        store: Store,
        result: ImportResult,
        email_column: str,
        on_consents: Callable[[ImportResult, list[ConsentRow]], None] | None = None,
    ) -> None:
        self.store = store
        self.email_column = email_column
        self.result = result
        self.on_consents = on_consents
        self.analyzed_at = 0  # customers created when the statistics were refreshed
        self.created_ids: set[int] = set()
        # Records the last batch could not write (see same_customer).
        self.carried: list[_Record] = []

    def prepare(self) -> None:
        # Statistics the planner can trust before the first batch (a table filled
        # or emptied since it was last analysed is planned as the wrong size).
        if any(rawsql.statistics_stale(model) for model in _TARGETS):
            rawsql.analyze(_TARGETS)
        with rawsql.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} ("  # noqa: S608
                " idx int PRIMARY KEY, external_id text, email text, phone text,"
                " first_name text, last_name text, company text, nip text,"
                " birth_date date, gender text, language text, note text,"
                " imported_orders_count integer, imported_total_spent numeric,"
                " last_seen_at timestamptz, tags text[])"
            )
            # Each record's customer, apart from the wide rows: matching writes
            # only this narrow table.
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_KEY} ("  # noqa: S608
                " idx int PRIMARY KEY, customer_id bigint NOT NULL,"
                " is_new boolean NOT NULL, taken_by bigint)"
            )
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_ADDRESS} ("  # noqa: S608
                " idx int, kind text, is_default boolean, first_name text,"
                " last_name text, company text, street text, street2 text,"
                " postcode text, city text, region text, country text, phone text,"
                " fresh boolean NOT NULL DEFAULT false)"
            )
            cursor.execute(f"TRUNCATE {_STAGE}, {_STAGE_ADDRESS}, {_STAGE_KEY}")

    def drop(self) -> None:
        with rawsql.cursor() as cursor:
            cursor.execute(
                f"DROP TABLE IF EXISTS {_STAGE}, {_STAGE_ADDRESS}, {_STAGE_KEY}"
            )

    def write(self, records: list[_Record]) -> None:
        # Rows carried over (same customer under another key) are earlier in the
        # file than everything after them, so they go first.
        pending = records
        while pending:
            batch, pending = _merge_batch(pending)
            self._write(batch)
            if self.carried:
                pending, self.carried = [*self.carried, *pending], []

    def _write(self, records: list[_Record]) -> None:
        store_id = self.store.pk
        with rawsql.cursor() as cursor:
            cursor.execute(f"TRUNCATE {_STAGE}, {_STAGE_ADDRESS}, {_STAGE_KEY}")
            _copy(cursor, records)
            taken = cursor.execute(
                _statements()["match"], {"store": store_id}
            ).fetchall()
            if taken:
                self._email_taken(cursor, records, taken)
            again = [idx for (idx,) in cursor.execute(_statements()["same_customer"])]
            if again:
                cursor.execute(
                    f"DELETE FROM {_STAGE_KEY} WHERE idx = ANY(%s)",  # noqa: S608
                    [again],
                )
                self.carried.extend(records[idx] for idx in again)
            cursor.execute(_statements()["insert_customers"], _customer_defaults())
            changed = {idx for (idx,) in cursor.execute(_statements()["update"])}
            changed.update(
                idx
                for (idx,) in cursor.execute(
                    _statements()["identities"], {"store": store_id}
                )
            )
            cursor.execute(_statements()["fresh_addresses"])
            cursor.execute(_statements()["undefault_addresses"])
            changed.update(
                idx for (idx,) in cursor.execute(_statements()["insert_addresses"])
            )
            cursor.execute(_statements()["insert_tags"], {"color": _tag_color()})
            changed.update(idx for (idx,) in cursor.execute(_statements()["link_tags"]))
            outcome = cursor.execute(
                f"SELECT idx, customer_id, is_new FROM {_STAGE_KEY}"  # noqa: S608
            ).fetchall()
        result = self.result
        consent_rows = []
        for idx, customer_id, is_new in outcome:
            record = records[idx]
            result.merged += len(record.lines) - 1
            if is_new:
                result.created += 1
                self.created_ids.add(customer_id)
            elif idx in changed:
                result.updated += 1
            else:
                result.unchanged += 1
            consent_rows.extend(
                ConsentRow(customer_id, line, values, raw, evidence)
                for line, values, raw, evidence in record.consents
            )
        if result.created >= max(2 * self.analyzed_at, STATISTICS_REFRESH_ROWS):
            # The tables this import fills grow past what the planner knows.
            rawsql.analyze(_TARGETS)
            self.analyzed_at = result.created
        if self.on_consents is None:
            result.consent_rows.extend(consent_rows)
        elif consent_rows:
            consent_rows.sort(key=lambda row: row.line)
            self.on_consents(result, consent_rows)

    def _email_taken(self, cursor: Any, records: list[_Record], taken: list) -> None:
        for idx, other in taken:
            record = records[idx]
            self.result.errors.append(
                RowError(
                    line=record.lines[-1],
                    column=self.email_column,
                    value=record.values.get("email", ""),
                    reason=_(
                        "This email belongs to another customer (#%(other)s); "
                        "merge the two customers first."
                    )
                    % {"other": other},
                    code="email_taken",
                )
            )
        cursor.execute(
            f"DELETE FROM {_STAGE_KEY} WHERE idx = ANY(%s)",  # noqa: S608
            [[idx for idx, _other in taken]],
        )


def _copy(cursor: Any, records: list[_Record]) -> None:
    for record in records:
        if record.stage is None:  # merged in this thread
            record.staged()
    with cursor.copy(
        f"COPY {_STAGE} (idx, external_id, {', '.join(PROFILE_COLUMNS)},"  # noqa: S608
        " last_seen_at, tags) FROM STDIN"
    ) as copy:
        copy.write("".join(f"{idx}\t{r.stage}" for idx, r in enumerate(records)))
    if not any(record.stage_addresses for record in records):
        return
    with cursor.copy(
        f"COPY {_STAGE_ADDRESS} (idx, {', '.join(_STAGE_ADDRESS_COLUMNS)})"  # noqa: S608
        " FROM STDIN"
    ) as copy:
        copy.write(
            "".join(
                f"{idx}\t{line}"
                for idx, record in enumerate(records)
                for line in record.stage_addresses
            )
        )


def _tag_color() -> str:
    return Tag._meta.get_field("color").get_default()


def _customer_default_fields() -> list:
    """Customer columns the import does not set: model defaults on insert."""
    skip = {*PROFILE_COLUMNS, "last_seen_at", "id"}
    return [
        f
        for f in Customer._meta.concrete_fields
        if f.name not in skip
        and not getattr(f, "auto_now", False)
        and not getattr(f, "auto_now_add", False)
    ]


def _customer_defaults() -> list:
    language = Customer._meta.get_field("language").get_default()
    return [
        language,
        *(
            f.get_db_prep_save(f.get_default(), connection)
            for f in _customer_default_fields()
        ),
    ]


@cache
def _statements() -> dict[str, str]:  # noqa: C901 - the batch's SQL, in order
    customers = rawsql.table(Customer)
    identities = rawsql.table(CustomerIdentity)
    addresses = rawsql.table(Address)
    tags = rawsql.table(Tag)
    links = rawsql.table(Customer.tags.through)
    stage = sql.Identifier(_STAGE)
    stage_address = sql.Identifier(_STAGE_ADDRESS)
    text_columns = (
        "phone",
        "first_name",
        "last_name",
        "company",
        "nip",
        "gender",
        "note",
    )
    defaults = _customer_default_fields()
    auto = [
        f.column
        for f in Customer._meta.concrete_fields
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
    ]
    changes = sql.SQL(" OR ").join(
        sql.SQL("(s.{c} IS NOT NULL AND s.{c} IS DISTINCT FROM c.{c})").format(
            c=sql.Identifier(name)
        )
        for name in PROFILE_COLUMNS
    )
    statements = {
        # Each record's customer: the store's identity first, else the email (the
        # same expression as the unique index), else a new id. Returned: records
        # whose identity's customer is not the one holding their email. LATERAL
        # ... LIMIT 1 (both keys are unique) keeps the plan an index probe per
        # record: the stage has no statistics, and a hash join would read the
        # whole table for every batch.
        "match": sql.SQL(
            "WITH matched AS (INSERT INTO {stage_key}"
            " (idx, customer_id, is_new, taken_by)"
            " SELECT s.idx, COALESCE(i.customer_id, c.id, nextval({sequence})),"
            " i.customer_id IS NULL AND c.id IS NULL,"
            " CASE WHEN c.id <> i.customer_id THEN c.id END"
            " FROM {stage} s LEFT JOIN LATERAL (SELECT customer_id FROM {identities}"
            " WHERE store_id = %(store)s AND external_id = s.external_id LIMIT 1) i"
            " ON true LEFT JOIN LATERAL (SELECT id FROM {customers}"
            " WHERE UPPER(email) = UPPER(s.email) LIMIT 1) c ON true"
            " ORDER BY s.idx RETURNING idx, taken_by)"
            " SELECT idx, taken_by FROM matched WHERE taken_by IS NOT NULL"
        ),
        # Two records of the batch reaching one customer by different keys: the
        # later one waits for the next batch, so the rows apply in file order.
        "same_customer": sql.SQL(
            "SELECT idx FROM (SELECT idx, row_number() OVER"
            " (PARTITION BY customer_id ORDER BY idx) AS n FROM {stage_key}"
            " WHERE NOT is_new) t WHERE n > 1"
        ),
        "insert_customers": sql.SQL(
            "INSERT INTO {customers} (id, email, {texts}, birth_date, language,"
            " imported_orders_count, imported_total_spent,"
            " last_seen_at, {defaults}, {auto})"
            " SELECT k.customer_id, s.email, {text_values}, s.birth_date,"
            " COALESCE(s.language, %s), s.imported_orders_count,"
            " s.imported_total_spent, s.last_seen_at, {default_values}, {now}"
            " FROM {stage} s JOIN {stage_key} k USING (idx) WHERE k.is_new"
            " ORDER BY s.idx"
        ),
        "update": sql.SQL(
            "UPDATE {customers} c SET {sets},"
            " last_seen_at = CASE WHEN s.last_seen_at > c.last_seen_at"
            " OR c.last_seen_at IS NULL THEN COALESCE(s.last_seen_at, c.last_seen_at)"
            " ELSE c.last_seen_at END, updated_at = now()"
            " FROM {stage} s JOIN {stage_key} k USING (idx)"
            " WHERE k.customer_id = c.id AND NOT k.is_new AND ({changes}"
            " OR s.last_seen_at > c.last_seen_at"
            " OR (c.last_seen_at IS NULL AND s.last_seen_at IS NOT NULL))"
            " RETURNING s.idx"
        ),
        "identities": sql.SQL(
            "WITH added AS (INSERT INTO {identities}"
            " (store_id, external_id, customer_id, created_at)"
            " SELECT %(store)s, s.external_id, k.customer_id, now()"
            " FROM {stage} s JOIN {stage_key} k USING (idx)"
            " WHERE s.external_id IS NOT NULL ORDER BY s.idx"
            " ON CONFLICT (store_id, external_id) DO NOTHING RETURNING customer_id)"
            " SELECT DISTINCT k.idx FROM added JOIN {stage_key} k USING (customer_id)"
            " WHERE NOT k.is_new"
        ),
        # A new customer's addresses are all new; an existing customer's only
        # where no identical one is stored.
        "fresh_addresses": sql.SQL(
            "UPDATE {stage_address} n SET fresh = true FROM {stage_key} k"
            " WHERE k.idx = n.idx AND NOT k.is_new"
            " AND NOT EXISTS (SELECT 1 FROM {addresses} a"
            " WHERE a.customer_id = k.customer_id AND a.kind = n.kind"
            " AND a.street = n.street AND a.street2 = n.street2"
            " AND a.postcode = n.postcode AND a.city = n.city"
            " AND a.country = n.country)"
        ),
        "undefault_addresses": sql.SQL(
            "UPDATE {addresses} a SET is_default = false, updated_at = now()"
            " FROM {stage_address} n JOIN {stage_key} k ON k.idx = n.idx"
            " WHERE n.fresh AND n.is_default AND NOT k.is_new"
            " AND a.customer_id = k.customer_id"
            " AND a.kind = n.kind AND a.is_default"
        ),
        "insert_addresses": sql.SQL(
            "WITH added AS (INSERT INTO {addresses} (customer_id, kind, is_default,"
            " first_name, last_name, company, street, street2, postcode, city,"
            " region, country, phone, created_at, updated_at)"
            " SELECT k.customer_id, n.kind, n.is_default, n.first_name, n.last_name,"
            " n.company, n.street, n.street2, n.postcode, n.city, n.region,"
            " n.country, n.phone, now(), now()"
            " FROM {stage_address} n JOIN {stage_key} k ON k.idx = n.idx"
            " WHERE n.fresh OR k.is_new"
            " RETURNING customer_id)"
            " SELECT DISTINCT k.idx FROM added JOIN {stage_key} k USING (customer_id)"
            " WHERE NOT k.is_new"
        ),
        "insert_tags": sql.SQL(
            "INSERT INTO {tags} (name, color, created_at)"
            " SELECT DISTINCT ON (UPPER(t.name)) t.name, %(color)s, now()"
            " FROM {stage} s JOIN {stage_key} k USING (idx)"
            " CROSS JOIN LATERAL unnest(s.tags) AS t(name)"
            " WHERE NOT EXISTS (SELECT 1 FROM {tags} g"
            " WHERE UPPER(g.name) = UPPER(t.name))"
            " ORDER BY UPPER(t.name), s.idx"
            " ON CONFLICT ((UPPER(name))) DO NOTHING"
        ),
        "link_tags": sql.SQL(
            "WITH added AS (INSERT INTO {links} (customer_id, tag_id)"
            " SELECT DISTINCT k.customer_id, g.id"
            " FROM {stage} s JOIN {stage_key} k USING (idx)"
            " CROSS JOIN LATERAL unnest(s.tags) AS t(name)"
            " JOIN {tags} g ON UPPER(g.name) = UPPER(t.name)"
            " ON CONFLICT DO NOTHING RETURNING customer_id)"
            " SELECT DISTINCT k.idx FROM added JOIN {stage_key} k USING (customer_id)"
            " WHERE NOT k.is_new"
        ),
    }
    params = {
        "stage": stage,
        "stage_address": stage_address,
        "stage_key": sql.Identifier(_STAGE_KEY),
        "sequence": sql.SQL("pg_get_serial_sequence({}, 'id')").format(
            sql.Literal(Customer._meta.db_table)
        ),
        "customers": customers,
        "identities": identities,
        "addresses": addresses,
        "tags": tags,
        "links": links,
        "texts": sql.SQL(", ").join(sql.Identifier(c) for c in text_columns),
        "text_values": sql.SQL(", ").join(
            sql.SQL("COALESCE(s.{}, '')").format(sql.Identifier(c))
            for c in text_columns
        ),
        "defaults": sql.SQL(", ").join(sql.Identifier(f.column) for f in defaults),
        "default_values": sql.SQL(", ").join(
            sql.SQL("%s::{}").format(sql.SQL(f.db_type(connection))) for f in defaults
        ),
        "auto": sql.SQL(", ").join(sql.Identifier(c) for c in auto),
        "now": sql.SQL(", ").join(sql.SQL("now()") for _c in auto),
        "sets": sql.SQL(", ").join(
            sql.SQL("{c} = COALESCE(s.{c}, c.{c})").format(c=sql.Identifier(c))
            for c in PROFILE_COLUMNS
        ),
        "changes": changes,
    }
    return {
        name: rawsql.compiled(statement.format(**params))
        for name, statement in statements.items()
    }
