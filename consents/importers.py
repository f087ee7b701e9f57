"""Imported consents: the consent columns of a customers file, and consents files.

Two import kinds, registered in :class:`consents.apps.ConsentsConfig`:

* ``customers`` -- :func:`customers_consents_import` runs
  :func:`customers.importers.customers.customers_import`, which hands over each
  written batch's consent columns (``on_consents``); they go to the ledger there and
  then, in the import's transaction.
* ``consents`` -- :func:`consents_import` reads a Mailchimp audience export
  (subscribed, unsubscribed or cleaned file) or the generic consents layout, creates
  the people not yet known as leads and records their consents.

Both write the ledger set-based: per batch a few queries (the customers, the
suppression list, the current state, this file's earlier events) and one COPY into
ConsentEvent; the ledger's statement-level trigger keeps ConsentState right.
:func:`consents.services.consent_record` is never called per row, but its rules hold.

Decisions, in one place:

* **Only where the file says consent was given.** A "yes" becomes a grant with source
  ``import``, the file's SHA-256, the row as evidence (``{"file", "line", "row":
  {header: value}}``), the row's consent time (else the import's time) and its IP.
  A "no" in a customers file records nothing: the file proves consent only where it
  says it was given. An explicit withdrawal (Mailchimp's unsubscribed file) does
  record one, at ``UNSUB_TIME``.
* **Text.** A grant gets the purpose's current text in the customer's language, as
  :func:`consents.services.consent_text_current` resolves it (Polish if none); a
  purpose without any text stops the import with an error, nothing written.
* **Refused, as consent_record refuses them:** grants of marketing purposes to a
  contact on the erasure suppression list (``consents_skipped_suppressed``), anything
  for an erased customer (``consents_skipped_erased``), consents of inactive
  purposes, and a consent time in the future (a row error).
* **Restricted customers** (Art. 18) get their consents recorded: the ledger is
  proof, storing proof is allowed under restriction, and ``consent_allows`` refuses
  every send to them anyway. consent_record does the same.
* **Idempotent.** An event is not appended when this file already recorded it (same
  customer, purpose, action and time; for a row without a time, any time), or when
  the current state already is that action since the row's time or later (for a
  row without a time: already that action). So a re-import appends nothing, and an
  old file re-imported does not undo a later withdrawal.
* **No webhooks** (consent.changed) are sent for imported consents, as the customers
  import sends none: the data comes from the shop or its old tools, and a million
  deliveries would flood the shops.
* **Partner offers** (PrestaShop's ``accepts_partner_marketing``) are not recorded:
  "offers from partners" is not the ``partner_sharing`` purpose (handing contact data
  to partners), and recording a broader consent than given is worse than none.
  Counted in ``consents_skipped_no_purpose``.
* **Mailchimp.** Subscribed rows grant email marketing at ``CONFIRM_TIME`` (the
  double opt-in confirmation), else ``OPTIN_TIME``, with ``CONFIRM_IP`` else
  ``OPTIN_IP``; when the audience has GDPR marketing permissions, only rows whose
  ``Email`` permission is yes grant (``consents_skipped_no_permission``). Times are
  UTC, as Mailchimp writes them. Unsubscribed rows withdraw at ``UNSUB_TIME``.
  Cleaned rows (addresses that bounced) record nothing and create nobody: a bounce
  says the mailbox is gone, not that the person withdrew, and a withdrawal would be
  false proof; a dead address is no lead worth storing. They are counted
  (``consents_cleaned``). A contact on the suppression list is neither created nor
  updated; if a customer still holds that email (created again since), only
  withdrawals are recorded for them.
* **Counts** in ``ImportResult.extra``: ``consents`` events recorded (that would be,
  in a dry run), ``consents_unchanged`` already in the ledger, and the ``skipped``
  counts above. An aborted import reports zeros, as the customers import does.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, Literal, NamedTuple

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from psycopg import sql

from config import rawsql
from consents.models import ConsentEvent, ConsentPurpose, ConsentState, Suppression
from consents.services import (
    _evidence_hash,
    _evidence_json,
    consent_text_current,
    suppression_hash,
)
from customers.importers.customers import (
    ConsentRow,
    ImportResult,
    RowError,
    _BatchWriter,
    _clean_row,
    customers_import,
    map_source,
)
from customers.importers.formats import (
    CONSENTS,
    CUSTOMERS,
    Mapping,
    map_header,
)
from customers.importers.reading import (
    CsvFormatError,
    CsvSource,
    clean_text,
    parse_bool,
    parse_datetime,
)
from customers.models import Customer, Store

# Plain strings: psycopg writes an Enum member by its name, not its value.
GRANT = ConsentEvent.Action.GRANT.value
WITHDRAW = ConsentEvent.Action.WITHDRAW.value
IMPORT = ConsentEvent.Source.IMPORT.value
EMAIL_MARKETING = ConsentPurpose.Code.EMAIL_MARKETING.value
SMS_MARKETING = ConsentPurpose.Code.SMS_MARKETING.value

# consent_record's limit: a consent cannot be given in the future.
FUTURE_TOLERANCE = dt.timedelta(minutes=5)

#: ``ImportResult.extra`` counts of both kinds (present, maybe 0, after an import).
COUNTS = (
    "consents",
    "consents_unchanged",
    "consents_skipped_suppressed",
    "consents_skipped_erased",
    "consents_skipped_no_purpose",
)
#: Further counts of the consents kind.
CONSENTS_FILE_COUNTS = ("consents_skipped_no_permission", "consents_cleaned")

# Consent columns of a customers file: the yes/no field, its time, the purpose.
CUSTOMER_CONSENTS = (
    ("accepts_email_marketing", "email_marketing_at", EMAIL_MARKETING),
    ("accepts_sms_marketing", "sms_marketing_at", SMS_MARKETING),
    ("accepts_partner_marketing", None, None),  # no purpose: see the module
)

SUBSCRIBED, UNSUBSCRIBED, CLEANED = "subscribed", "unsubscribed", "cleaned"
# Mailchimp's file gives the status; the generic layout writes it in a column.
STATUSES = {
    "subscribed": SUBSCRIBED,
    "unsubscribed": UNSUBSCRIBED,
    "cleaned": CLEANED,
    "zapisany": SUBSCRIBED,
    "zapisana": SUBSCRIBED,
    "wypisany": UNSUBSCRIBED,
    "wypisana": UNSUBSCRIBED,
}
# What the consents kind passes to the customers importer's rules: a lead's
# identity and names, nothing that could fail a consent over a phone's format.
LEAD_FIELDS = ("email", "first_name", "last_name", "full_name")


class _Evidence:
    """A row's evidence, serialised once for all its events (and only if needed)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @cached_property
    def json(self) -> str:
        return _evidence_json(self.data)

    @cached_property
    def hash(self) -> str:
        return _evidence_hash(self.data, self.json)  # as consent_record hashes it

    @cached_property
    def copy_json(self) -> str:
        """The JSON as a field of the ledger's COPY."""
        return rawsql.copy_text(self.json)

    def serialised(self) -> _Evidence:
        """Make the JSON, its hash and its COPY field now (in the reading thread)."""
        self.hash  # noqa: B018 - computes and caches json and hash
        self.copy_json  # noqa: B018
        return self


@dataclass
class _Consent:
    """One event a row asks for, before the ledger's rules have their say."""

    line: int
    customer_id: int
    purpose: str
    action: str
    occurred_at: dt.datetime | None  # None: the row gives no time
    ip: str | None
    evidence: _Evidence


class _Customer(NamedTuple):
    email: str | None
    phone: str
    language: str
    erased_at: dt.datetime | None


def _row_evidence(file_name: str, line: int, raw: dict[str, str]) -> _Evidence:
    return _Evidence({"file": file_name, "line": line, "row": dict(raw)})


# --- The customers kind ------------------------------------------------------------


def customers_consents_import(
    *,
    source: CsvSource,
    store: Store,
    format: str = "auto",
    dry_run: bool = False,
    on_error: Literal["skip", "abort"] = "abort",
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    actor: Any = None,
) -> ImportResult:
    """Import a customers file and record its consent columns, in one transaction.

    ``customers_import`` hands over each written batch's consent columns (with the
    customers' ids and the rows as evidence), which become ledger events there and
    then (see the module): one pass over the file, memory bounded by the batch. A
    dry run writes everything and rolls back, so its counts, consents included,
    are those of a real run.
    """
    recorder = _CustomerConsents(store=store, source=source)
    result = customers_import(
        source=source,
        store=store,
        format=format,
        dry_run=dry_run,
        on_error=on_error,
        batch_size=batch_size,
        progress=progress,
        actor=actor,
        on_consents=recorder,
        exclude=_ErasedContacts(),
        evidence=recorder.evidence,
    )
    for name in COUNTS:
        result.extra.setdefault(name, 0)
    _conclude(result, on_error)
    return result


class _CustomerConsents:
    """customers_import's ``on_consents``: records a batch's grants in the ledger."""

    def __init__(self, *, store: Store, source: CsvSource) -> None:
        self.store = store
        self.source = source
        self.ledger: _Ledger | None = None
        self.columns: dict[str, str] = {}

    def evidence(
        self, line: int, values: dict[str, Any], raw: dict[str, str]
    ) -> _Evidence | None:
        """customers_import's ``evidence`` hook: a granting row's evidence, made."""
        if not any(values.get(flag) for flag, _when, _purpose in CUSTOMER_CONSENTS):
            return None
        return _row_evidence(self.source.name, line, raw).serialised()

    def __call__(self, result: ImportResult, rows: list[ConsentRow]) -> None:
        if self.ledger is None:
            self.ledger = _Ledger(
                store=self.store, source=self.source, result=result, counts=COUNTS
            )
            mapping = map_header(self.source.header, result.format, CUSTOMERS)
            self.columns = _columns(mapping)
        consents = []
        for row in rows:
            consents.extend(
                _customer_row_consents(row, row.raw or {}, self.columns, self.ledger)
            )
        self.ledger.record(consents)


def _customer_row_consents(
    row: ConsentRow, raw: dict[str, str], columns: dict[str, str], ledger: _Ledger
) -> list[_Consent]:
    consents = []
    evidence = row.evidence
    for flag, when, purpose in CUSTOMER_CONSENTS:
        if not row.values.get(flag):  # "no" or blank: the file proves nothing
            continue
        if purpose is None:
            ledger.count("consents_skipped_no_purpose")
            continue
        occurred_at = row.values.get(when) if when else None
        if occurred_at is not None and ledger.in_future(occurred_at):
            column = columns.get(when, when)
            ledger.fail(row.line, column, raw.get(column, ""))
            continue
        if evidence is None:
            evidence = ledger.evidence(row.line, raw)
        consents.append(
            _Consent(
                line=row.line,
                customer_id=row.customer_id,
                purpose=purpose,
                action=GRANT,
                occurred_at=occurred_at,
                ip=row.values.get("ip"),
                evidence=evidence,
            )
        )
    return consents


# --- The consents kind -------------------------------------------------------------


@dataclass
class _Member:
    """One cleaned row of a consents file."""

    line: int
    raw: dict[str, str]
    status: str
    email: str
    occurred_at: dt.datetime | None
    ip: str | None
    permission: bool | None  # the GDPR "Email" permission; None: no such column
    record: Any  # the customers importer's record of the lead


def consents_import(
    *,
    source: CsvSource,
    store: Store,
    format: str = "auto",
    dry_run: bool = False,
    on_error: Literal["skip", "abort"] = "abort",
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    actor: Any = None,
) -> ImportResult:
    """Import a consents file (Mailchimp export or generic): leads, then the ledger.

    People are matched by email and created as leads with the customers import's
    rules (created, updated and unchanged count them); see the module for which
    rows record what. Abort, skip and dry run work as in the customers import.
    """
    if on_error not in ("skip", "abort"):
        raise ValueError("on_error must be 'skip' or 'abort'")
    started = time.monotonic()
    mapping = _map(source, format)
    result = ImportResult.of(source, mapping, dry_run=dry_run)
    with transaction.atomic(), rawsql.immediate_constraints():
        ledger = _Ledger(
            store=store,
            source=source,
            result=result,
            counts=(*COUNTS, *CONSENTS_FILE_COUNTS),
        )
        cleaner = _MemberCleaner(mapping, store, ledger)
        writer = _BatchWriter(
            store=store, result=result, email_column=_columns(mapping).get("email")
        )
        writer.prepare()
        try:
            for batch in _member_batches(source, cleaner, result, batch_size, progress):
                if on_error == "abort" and result.errors:
                    continue  # validate the rest, write nothing more
                _write_members(batch, writer, ledger, result)
        except CsvFormatError as error:
            raise ValidationError(
                {"source": ValidationError(error.message, code=error.code)}
            ) from None
        writer.drop()
        _conclude(result, on_error)
        if result.aborted or dry_run:
            transaction.set_rollback(True)
    result.consent_rows = []
    result.errors.sort(key=lambda error: error.line)
    result.seconds = time.monotonic() - started
    return result


def _map(source: CsvSource, format: str) -> Mapping:
    mapping = map_source(source, format, CONSENTS)
    # Mailchimp's file says it; a generic file needs the column (else every row
    # would fail alike).
    if "status" not in mapping.positions and "status" not in mapping.constants:
        raise ValidationError(
            {
                "source": ValidationError(
                    _(
                        "The file has no status column: say for each row whether "
                        "the person is %(choices)s."
                    )
                    % {"choices": ", ".join((SUBSCRIBED, UNSUBSCRIBED, CLEANED))},
                    code="missing_columns",
                )
            }
        )
    return mapping


def _member_batches(
    source: CsvSource,
    cleaner: _MemberCleaner,
    result: ImportResult,
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> Iterator[list[_Member]]:
    pending: list[_Member] = []
    for line, raw in source.rows():
        result.rows += 1
        member = cleaner.clean(line, raw, result.errors)
        if member is not None:
            pending.append(member)
        if result.rows % batch_size == 0:
            yield pending
            pending = []
            if progress:
                progress(result.rows)
    if pending:
        yield pending
    if progress:
        progress(result.rows)


class _MemberCleaner:
    """Cleans the rows of one consents file: status, consent time and IP, the lead."""

    def __init__(self, mapping: Mapping, store: Store, ledger: _Ledger) -> None:
        self.mapping = mapping
        self.store = store
        self.ledger = ledger
        self.columns = _columns(mapping)
        # Mailchimp writes its times in UTC; a spreadsheet is in the shop's zone.
        self.zone = (
            dt.UTC if mapping.format == "mailchimp" else timezone.get_default_timezone()
        )
        self.permissions = "gdpr_email" in mapping.positions

    def clean(  # noqa: C901 - one pass over the row's fields
        self, line: int, raw: dict[str, str], errors: list[RowError]
    ) -> _Member | None:
        values = self.mapping.apply(list(raw.values()))
        found: list[RowError] = []

        def fail(name: str, reason: str, code: str = "invalid") -> None:
            found.append(
                RowError(
                    line=line,
                    column=self.columns.get(name, name),
                    value=values.get(name, ""),
                    reason=reason,
                    code=code,
                )
            )

        status = STATUSES.get(clean_text(values.get("status")).casefold())
        if status is None:
            fail(
                "status",
                _("Choose one of: %(choices)s.")
                % {"choices": ", ".join((SUBSCRIBED, UNSUBSCRIBED, CLEANED))},
                "invalid_choice",
            )
        times: dict[str, dt.datetime | None] = {}
        for name in ("optin_time", "confirm_time", "unsub_time"):
            try:
                times[name] = parse_datetime(values.get(name), default_tz=self.zone)
            except ValueError as error:
                fail(name, str(error), "invalid_date")
        ips: dict[str, str] = {}
        for name in ("optin_ip", "confirm_ip"):
            if values.get(name):
                try:
                    ips[name] = str(ipaddress.ip_address(clean_text(values[name])))
                except ValueError:
                    fail(
                        name,
                        _("Not an IP address: %(value)s") % {"value": values[name]},
                    )
        permission = None
        if self.permissions:
            try:
                permission = bool(parse_bool(values.get("gdpr_email")))
            except ValueError as error:
                fail("gdpr_email", str(error))

        occurred_at, time_field, ip = None, None, None
        if status == SUBSCRIBED:
            time_field = "confirm_time" if times.get("confirm_time") else "optin_time"
            occurred_at = times.get(time_field)
            ip = ips.get("confirm_ip") or ips.get("optin_ip")
        elif status == UNSUBSCRIBED:
            time_field, occurred_at = "unsub_time", times.get("unsub_time")
        if occurred_at is not None and self.ledger.in_future(occurred_at):
            fail(time_field, self.ledger.future_reason, "out_of_range")

        lead = {name: values[name] for name in LEAD_FIELDS if values.get(name)}
        record = _clean_row(line, lead, self.columns, self.store, self.zone, found)
        if found:
            errors.extend(found)
            return None
        return _Member(
            line=line,
            raw=raw,
            status=status,
            email=record.values["email"],
            occurred_at=occurred_at,
            ip=ip,
            permission=permission,
            record=record,
        )


def _write_members(
    members: list[_Member], writer: _BatchWriter, ledger: _Ledger, result: ImportResult
) -> None:
    """Create or update the batch's leads, then record their consents."""
    current = []
    for member in members:
        if member.status == CLEANED:
            ledger.count("consents_cleaned")
        else:
            current.append(member)
    suppressed = ledger.suppressed_emails([m.email for m in current])
    records = []
    for member in current:
        if member.email.upper() in suppressed:
            continue
        # The writer hands each record's "consents" back with the customer's id.
        member.record.consents = [(member.line, {"member": member}, None, None)]
        records.append(member.record)
    start = len(result.consent_rows)
    writer.write(records)
    written = [
        (row.customer_id, row.values["member"]) for row in result.consent_rows[start:]
    ]
    del result.consent_rows[start:]  # the consents kind returns none: memory

    # Erased people's contacts: nobody is created or updated. A customer holding
    # the email again (created since) may still withdraw; grants stay refused.
    held = [m for m in current if m.email.upper() in suppressed]
    holders = ledger.customers_by_email([m.email for m in held])
    for member in held:
        customer_id = holders.get(member.email.upper())
        if customer_id is None:
            ledger.count("consents_skipped_suppressed")
        else:
            written.append((customer_id, member))

    consents = []
    for customer_id, member in written:
        consent = _member_consent(customer_id, member, ledger)
        if consent is not None:
            consents.append(consent)
    ledger.record(consents)


def _member_consent(
    customer_id: int, member: _Member, ledger: _Ledger
) -> _Consent | None:
    if member.status == SUBSCRIBED and member.permission is False:
        ledger.count("consents_skipped_no_permission")
        return None
    return _Consent(
        line=member.line,
        customer_id=customer_id,
        purpose=EMAIL_MARKETING,
        action=GRANT if member.status == SUBSCRIBED else WITHDRAW,
        occurred_at=member.occurred_at,
        ip=member.ip,
        evidence=ledger.evidence(member.line, member.raw),
    )


# --- Both kinds ------------------------------------------------------------------


def _conclude(result: ImportResult, on_error: str) -> None:
    """Abort on any bad row (consent rows included); an abort reports nothing done."""
    result.aborted = on_error == "abort" and bool(result.errors)
    if result.aborted:
        result.created = result.updated = result.unchanged = result.merged = 0
        result.consent_rows = []
        result.extra = dict.fromkeys(result.extra, 0)


def _columns(mapping: Mapping) -> dict[str, str]:
    """Canonical field -> the header cell feeding it (the first), for messages."""
    return {
        name: mapping.header[positions[0]]
        for name, positions in mapping.positions.items()
        if positions
    }


def _suppressed_emails(emails: list[str]) -> set[str]:
    """The upper-cased ``emails`` on the suppression list."""
    if not emails:
        return set()
    kind = Suppression.Kind.EMAIL
    by_hash = {suppression_hash(kind, email): email.upper() for email in emails}
    hits = Suppression.objects.filter(
        kind=kind, value_hash__in=list(by_hash)
    ).values_list("value_hash", flat=True)
    return {by_hash[value_hash] for value_hash in hits}


def _customers_by_email(emails: list[str]) -> dict[str, int]:
    """Upper-cased email -> id of the customer holding it now."""
    if not emails:
        return {}
    with rawsql.cursor() as cursor:
        cursor.execute(_statements()["by_email"], [[e.upper() for e in emails]])
        return {email: pk for pk, email in cursor.fetchall()}


class _ErasedContacts:
    """customers_import's ``exclude``: rows of people erased on request.

    An old export still holds them; importing it must not bring the profile back.
    An email on the suppression list is left out unless a customer holds it now
    (the person came back and registered again: their rows update them).
    """

    def __init__(self) -> None:
        self.any = Suppression.objects.exists()  # most bases have erased nobody

    def __call__(self, emails: list[str]) -> set[str]:
        if not self.any:
            return set()
        suppressed = _suppressed_emails(emails)
        return suppressed - set(_customers_by_email(list(suppressed)))


class _Ledger:
    """Appends one file's consents to the ledger, batch by batch, with its rules."""

    def __init__(
        self,
        *,
        store: Store,
        source: CsvSource,
        result: ImportResult,
        counts: tuple[str, ...],
    ) -> None:
        file_hash = (source.sha256 or "").strip().lower()
        if len(file_hash) != 64:
            raise ValidationError(
                {
                    "source": ValidationError(
                        _("An imported consent needs the file's SHA-256."),
                        code="required",
                    )
                }
            )
        self.store = store
        self.file_hash = file_hash
        self.file_name = source.name
        self.result = result
        self.imported_at = timezone.now()
        self.future_reason = _("A consent cannot be given in the future.")
        self.purposes = {
            p.code: p for p in ConsentPurpose.objects.filter(is_active=True)
        }
        self.texts: dict[tuple[int, str], int] = {}
        # Most bases have erased nobody: then no contact needs hashing.
        self.suppression = Suppression.objects.exists()
        for name in counts:
            result.extra.setdefault(name, 0)

    def count(self, name: str, number: int = 1) -> None:
        self.result.extra[name] += number

    def in_future(self, moment: dt.datetime) -> bool:
        return moment > self.imported_at + FUTURE_TOLERANCE

    def fail(self, line: int, column: str, value: str) -> None:
        self.result.errors.append(
            RowError(
                line=line,
                column=column,
                value=value,
                reason=self.future_reason,
                code="out_of_range",
            )
        )

    def evidence(self, line: int, raw: dict[str, str]) -> _Evidence:
        return _row_evidence(self.file_name, line, raw)

    def suppressed_emails(self, emails: list[str]) -> set[str]:
        """The upper-cased ``emails`` on the suppression list."""
        return _suppressed_emails(emails) if self.suppression else set()

    def customers_by_email(self, emails: list[str]) -> dict[str, int]:
        """Upper-cased email -> id of the customer holding it now."""
        return _customers_by_email(emails)

    def record(self, consents: list[_Consent]) -> None:  # noqa: C901 - the rules
        """Append the consents the rules let through, in one COPY."""
        wanted = []
        for consent in consents:
            if consent.purpose in self.purposes:
                wanted.append(consent)
            else:
                self.count("consents_skipped_no_purpose")
        if not wanted:
            return
        ids = sorted({consent.customer_id for consent in wanted})
        customers = self._customers(ids)
        suppressed = self._suppressed(customers, wanted)
        state, seen, seen_any = self._ledger_now(ids)
        lines = []
        # What every event of the batch shares, between occurred_at and evidence.
        shared = rawsql.copy_line(
            (
                timezone.now(),  # recorded_at
                IMPORT,
                self.store.pk,
                None,  # api_key_id
                None,  # staff_user_id
                self.file_hash,
            )
        )[:-1]
        wanted.sort(
            key=lambda c: (
                c.customer_id,
                c.purpose,
                c.occurred_at or self.imported_at,
                c.line,
            )
        )
        for consent in wanted:
            customer = customers.get(consent.customer_id)
            purpose = self.purposes[consent.purpose]
            grant = consent.action == GRANT
            if customer is None or customer.erased_at is not None:
                # (None: deleted meanwhile, as good as erased.)
                self.count("consents_skipped_erased")
                continue
            if grant and purpose.is_marketing and consent.customer_id in suppressed:
                self.count("consents_skipped_suppressed")
                continue
            moment = consent.occurred_at or self.imported_at
            pair = (consent.customer_id, purpose.pk)
            current = state.get(pair)
            if (
                (*pair, consent.action, moment) in seen
                or (consent.occurred_at is None and (*pair, consent.action) in seen_any)
                or (
                    current is not None
                    and current[0] == grant
                    and (consent.occurred_at is None or current[1] >= moment)
                )
            ):
                self.count("consents_unchanged")
                continue
            text_id = self._text(purpose, customer.language) if grant else None
            lines.append(
                # The order of _EVENT_COLUMNS.
                f"{consent.customer_id}\t{purpose.pk}\t{consent.action}"
                f"\t{rawsql.copy_text(text_id)}\t{moment.isoformat()}\t{shared}"
                f"\t{consent.evidence.copy_json}\t{consent.evidence.hash}"
                f"\t{rawsql.copy_text(consent.ip or None)}\t\n"  # user_agent: ""
            )
            seen.add((*pair, consent.action, moment))
            seen_any.add((*pair, consent.action))
            if current is None or moment >= current[1]:
                state[pair] = (grant, moment)
        if lines:
            with (
                rawsql.cursor() as cursor,
                cursor.copy(_statements()["copy"]) as copy,
            ):
                copy.write("".join(lines))
        self.count("consents", len(lines))

    def _customers(self, ids: list[int]) -> dict[int, _Customer]:
        with rawsql.cursor() as cursor:
            cursor.execute(_statements()["customers"], [ids])
            return {pk: _Customer(*rest) for pk, *rest in cursor.fetchall()}

    def _suppressed(
        self, customers: dict[int, _Customer], consents: list[_Consent]
    ) -> set[int]:
        """Ids of the customers asked a marketing grant whose contact is suppressed."""
        if not self.suppression:
            return set()
        owners: dict[tuple[str, str], set[int]] = {}
        for consent in consents:
            customer = customers.get(consent.customer_id)
            purpose = self.purposes[consent.purpose]
            if customer is None or consent.action != GRANT or not purpose.is_marketing:
                continue
            for kind, value in (
                (Suppression.Kind.EMAIL, customer.email),
                (Suppression.Kind.PHONE, customer.phone),
            ):
                if value:
                    key = (kind.value, suppression_hash(kind, value))
                    owners.setdefault(key, set()).add(consent.customer_id)
        if not owners:
            return set()
        hits = Suppression.objects.filter(
            value_hash__in=[value_hash for _kind, value_hash in owners]
        ).values_list("kind", "value_hash")
        return {pk for hit in hits for pk in owners.get(hit, ())}

    def _ledger_now(self, ids: list[int]) -> tuple[dict, set, set]:
        """The batch's customers' current states, and this file's earlier events."""
        with rawsql.cursor() as cursor:
            cursor.execute(_statements()["states"], [ids])
            state = {(c, p): (g, at) for c, p, g, at in cursor.fetchall()}
            cursor.execute(_statements()["seen"], [self.file_hash, ids])
            seen = {tuple(row) for row in cursor.fetchall()}
        return state, seen, {row[:3] for row in seen}

    def _text(self, purpose: ConsentPurpose, language: str) -> int:
        key = (purpose.pk, language)
        if key not in self.texts:
            try:
                text = consent_text_current(purpose=purpose, language=language)
            except ValidationError:
                raise ValidationError(
                    {
                        "source": ValidationError(
                            _(
                                "“%(purpose)s” has no consent text to record the "
                                "file's consents against: publish its text first. "
                                "Nothing was imported."
                            ),
                            code="no_text",
                            params={"purpose": purpose},
                        )
                    }
                ) from None
            self.texts[key] = text.pk
        return self.texts[key]


# The ledger's columns as _Ledger.record writes them, in this order.
_EVENT_COLUMNS = (
    "customer_id",
    "purpose_id",
    "action",
    "text_id",
    "occurred_at",
    "recorded_at",
    "source",
    "store_id",
    "api_key_id",
    "staff_user_id",
    "import_file_hash",
    "evidence",
    "evidence_hash",
    "ip_address",
    "user_agent",
)


@cache
def _event_columns() -> tuple[str, ...]:
    """_EVENT_COLUMNS, checked against the model: a new column must be written."""
    model = {f.column for f in ConsentEvent._meta.concrete_fields if not f.primary_key}
    if model != set(_EVENT_COLUMNS):
        raise RuntimeError(
            "ConsentEvent's columns changed: update consents.importers._EVENT_COLUMNS"
            f" and _Ledger.record ({sorted(model ^ set(_EVENT_COLUMNS))})"
        )
    return _EVENT_COLUMNS


@cache
def _statements() -> dict[str, str]:
    customers = rawsql.table(Customer)
    statements = {
        "customers": sql.SQL(
            "SELECT id, email, phone, language, erased_at FROM {customers}"
            " WHERE id = ANY(%s::bigint[])"
        ),
        # The same expression as the unique index on UPPER(email).
        "by_email": sql.SQL(
            "SELECT id, UPPER(email) FROM {customers}"
            " WHERE UPPER(email) = ANY(%s::text[])"
        ),
        "states": sql.SQL(
            "SELECT customer_id, purpose_id, granted, changed_at FROM {states}"
            " WHERE customer_id = ANY(%s::bigint[])"
        ),
        "seen": sql.SQL(
            "SELECT customer_id, purpose_id, action, occurred_at FROM {events}"
            " WHERE import_file_hash = %s AND customer_id = ANY(%s::bigint[])"
        ),
        "copy": sql.SQL("COPY {events} ({columns}) FROM STDIN"),
    }
    params = {
        "customers": customers,
        "states": rawsql.table(ConsentState),
        "events": rawsql.table(ConsentEvent),
        "columns": sql.SQL(", ").join(
            sql.Identifier(column) for column in _event_columns()
        ),
    }
    return {
        name: rawsql.compiled(statement.format(**params))
        for name, statement in statements.items()
    }
