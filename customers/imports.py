"""The import wizard's services: upload, check (a dry run), run, cancel.

A file goes ``uploaded -> checking -> checked -> queued -> running -> done``; it may
fail or be cancelled on the way (:data:`ALLOWED_TRANSITIONS`, applied by
:func:`_set_status` and nothing else). Both the check and the run call the kind's own
runner (:mod:`customers.importers.registry`): the check with ``dry_run=True``, so its
counts are exactly those the run will produce (unless the data changes in between).

Decisions, in one place:

* **Bad files never make a job.** :func:`import_job_create` reads the upload before
  storing it; an unknown encoding, a missing required column, an unknown format, an
  empty or header-only file raise ``ValidationError`` keyed by the form field, and
  nothing is stored.
* **The check and the run happen in Celery** (``customers.tasks``), queued after
  the request's commit. The status page polls :func:`import_job_status`.
* **Nothing half-written.** The kinds' runners write a whole file in one
  transaction; a runner that raises leaves nothing and the job is marked failed
  with a message. "All or nothing" with bad rows cannot be confirmed (nothing would
  be imported); if the run still finds bad rows (the data changed since the check),
  the runner rolls back and the job fails, keeping the error report.
* **Progress crosses processes.** The run's rows are written in one transaction the
  page cannot see into, so :class:`_ProgressWriter` writes ``rows_done`` and the live
  rows per second through its own short autocommit connection, at most twice a
  second. (Inside an outer transaction, e.g. a test, it writes through Django's.)
* **A worker that dies** (``acks_late`` redelivers its task) is detected by a
  PostgreSQL advisory lock held while a job is checked or run: a redelivered task
  finding the job ``running`` and the lock free marks it failed (the runner's
  transaction died with the worker, so nothing was imported); finding the lock held,
  it leaves the job to the worker that has it.
* **Who may act**: see :func:`import_job_can_act`, :func:`import_job_can_cancel`
  and :func:`import_job_can_download_file`.
  Cancelling deletes the stored file and its error report (personal data nobody
  will import); the history keeps the name, size and SHA-256.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.text import get_text_list
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from psycopg import sql

from config.spreadsheets import formula_safe
from customers.importers import registry
from customers.importers.customers import ImportResult, RowError
from customers.importers.formats import (
    AUTO,
    FORMATS,
    Mapping,
    MissingColumns,
    UnknownFormat,
    layouts_for,
    map_header,
)
from customers.importers.reading import CsvFormatError, CsvSource, open_csv
from customers.models import ImportJob, Store

logger = logging.getLogger(__name__)

Status = ImportJob.Status

# The only status changes a job may go through; nothing but _set_status assigns it.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.UPLOADED: frozenset({Status.CHECKING, Status.FAILED, Status.CANCELLED}),
    Status.CHECKING: frozenset({Status.CHECKED, Status.FAILED, Status.CANCELLED}),
    # Back to "uploaded" when the user changes the bad-rows choice: checked again.
    Status.CHECKED: frozenset({Status.UPLOADED, Status.QUEUED, Status.CANCELLED}),
    Status.QUEUED: frozenset({Status.RUNNING, Status.FAILED, Status.CANCELLED}),
    Status.RUNNING: frozenset({Status.DONE, Status.FAILED}),
    Status.DONE: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}
# The page follows these live (progress bar); the others are where a job rests.
ACTIVE = frozenset({Status.UPLOADED, Status.CHECKING, Status.QUEUED, Status.RUNNING})
FINISHED = frozenset({Status.DONE, Status.FAILED, Status.CANCELLED})
CANCELLABLE = frozenset(
    status
    for status, targets in ALLOWED_TRANSITIONS.items()
    if Status.CANCELLED in targets
)

VIEW = "customers.view_importjob"
ADD = "customers.add_importjob"
CHANGE = "customers.change_importjob"

# Row errors kept in ``checked`` for the check page; all of them are in the report.
SAMPLE_ERRORS = 20
PREVIEW_ROWS = 10
# The preview reads at most this much of the file's start.
PREVIEW_BYTES = 256 * 1024
# Progress is written at most this often (seconds).
PROGRESS_INTERVAL = 0.5
# pg_advisory_lock(namespace, job id) while a job is checked or run.
_LOCK_NAMESPACE = 0x4B494D50  # "KIMP"

ERROR_REPORT_HEADER = ("line", "column", "value", "reason")

FORMAT_LABELS = {
    AUTO: gettext_lazy("Detect automatically"),
    "shopify": "Shopify",
    "woocommerce": "WooCommerce",
    "prestashop": "PrestaShop",
    "magento": "Magento 2",
    "mailchimp": "Mailchimp",
    "generic": gettext_lazy("Kartoteka (generic columns)"),
}


def format_choices() -> list[tuple[str, Any]]:
    """``auto`` and every known format, for a form's select."""
    return [
        (AUTO, FORMAT_LABELS[AUTO]),
        *((name, FORMAT_LABELS.get(name, name)) for name in sorted(FORMATS)),
    ]


# --- Who may do what ----------------------------------------------------------------


def import_kinds_for(user: Any) -> list[registry.ImportKind]:
    """The registered kinds ``user`` may import (the kind's own permission)."""
    return [kind for kind in registry.registered() if user.has_perm(kind.permission)]


def import_job_can_act(user: Any, job: ImportJob) -> bool:
    """Check again, confirm: only the uploader, still allowed to import this kind.

    The uploader is the import's actor (``created_by``, "imported by"), so nobody
    else confirms on their behalf.
    """
    return (
        job.created_by_id is not None
        and job.created_by_id == user.pk
        and user.has_perm(ADD)
        and _may_run_kind(user, job.kind)
    )


def import_job_can_cancel(user: Any, job: ImportJob) -> bool:
    """The uploader (with the add permission) or whoever may change imports."""
    return user.has_perm(CHANGE) or (
        job.created_by_id == user.pk and user.has_perm(ADD)
    )


def import_job_can_download_file(user: Any, job: ImportJob) -> bool:
    """The uploaded file: its uploader, or whoever may change imports (Manager)."""
    return user.has_perm(VIEW) and (
        job.created_by_id == user.pk or user.has_perm(CHANGE)
    )


def _may_run_kind(user: Any, kind: str) -> bool:
    try:
        return user.has_perm(registry.get(kind).permission)
    except KeyError:
        return False


# --- Upload ---------------------------------------------------------------------


def import_job_create(
    *,
    file: IO[bytes],
    filename: str,
    kind: str,
    store: Store,
    requested_format: str = AUTO,
    on_error: str = ImportJob.OnError.ABORT,
    actor: Any,
) -> ImportJob:
    """Check an uploaded file's encoding, format and columns, store it, queue the check.

    Raises ``ValidationError`` keyed ``file``, ``format``, ``kind`` or ``on_error``;
    then nothing is stored.
    """
    try:
        import_kind = registry.get(kind)
    except KeyError:
        raise ValidationError(
            {"kind": ValidationError(_("This kind of import is not available."))},
            code="unknown_kind",
        ) from None
    if actor is not None and not actor.has_perm(import_kind.permission):
        raise ValidationError(
            {
                "kind": ValidationError(
                    _("You may not import %(kind)s.")
                    % {"kind": str(import_kind.label).lower()},
                    code="permission",
                )
            }
        )
    if on_error not in ImportJob.OnError.values:
        raise ValidationError(
            {"on_error": ValidationError(_("Choose what to do with bad rows."))},
            code="invalid",
        )
    if requested_format != AUTO and requested_format not in FORMATS:
        raise ValidationError(
            {"format": ValidationError(_("Unknown format."), code="unknown_format")}
        )
    source = _read_upload(file)
    mapping = _map(source.header, requested_format, import_kind)
    _require_rows(source)

    job = ImportJob(
        kind=kind,
        store=store,
        on_error=on_error,
        filename=Path(filename or "").name[:255] or "import.csv",
        size=source.size,
        sha256=source.sha256,
        requested_format=requested_format,
        format=mapping.format,
        variant=mapping.variant,
        encoding=source.encoding,
        delimiter=source.delimiter,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        task_id=str(uuid.uuid4()),
    )
    file.seek(0)
    job.file.save(f"{uuid.uuid4().hex}.csv", File(file), save=False)
    job.save()
    _enqueue_check(job)
    return job


def _read_upload(file: IO[bytes]) -> CsvSource:
    try:
        return open_csv(file)
    except CsvFormatError as error:
        raise ValidationError(
            {"file": ValidationError(error.message, code=error.code)}
        ) from None
    except (TypeError, OSError):
        raise ValidationError(
            {"file": ValidationError(_("The file cannot be read."), code="unreadable")}
        ) from None


def _map(
    header: list[str], requested_format: str, kind: registry.ImportKind
) -> Mapping:
    """The header's mapping, or a ValidationError the upload form can show."""
    if requested_format != AUTO and not layouts_for(requested_format, kind.name):
        raise ValidationError(
            {
                "format": ValidationError(
                    _("A %(format)s file cannot hold %(kind)s; choose another format.")
                    % {
                        "format": FORMAT_LABELS.get(requested_format, requested_format),
                        "kind": str(kind.label).lower(),
                    },
                    code="unknown_format",
                )
            }
        )
    try:
        return map_header(header, requested_format, kind.name)
    except MissingColumns as error:
        raise ValidationError(
            {"file": ValidationError(_missing_message(error), code="missing_columns")}
        ) from None
    except UnknownFormat:
        raise ValidationError(
            {
                "file": ValidationError(
                    _(
                        "The file's columns match no known export of %(kind)s. "
                        "Choose the format yourself, or name the columns as in "
                        "Kartoteka's generic format."
                    )
                    % {"kind": str(kind.label).lower()},
                    code="unknown_format",
                )
            }
        ) from None


def _missing_message(error: MissingColumns) -> str:
    display: dict[str, str] = {}
    for layout in layouts_for(error.format, error.kind):
        if layout.variant == error.variant:
            display = layout.display
    groups = [
        get_text_list([f"“{display.get(name, name)}”" for name in group], _("or"))
        for group in error.missing
    ]
    return _(
        "A required column is missing: %(columns)s (read as a %(format)s file)."
    ) % {
        "columns": "; ".join(groups),
        "format": FORMAT_LABELS.get(error.format, error.format),
    }


def _require_rows(source: CsvSource) -> None:
    try:
        first = next(iter(source.rows()), None)
    except CsvFormatError as error:
        raise ValidationError(
            {"file": ValidationError(error.message, code=error.code)}
        ) from None
    if first is None:
        raise ValidationError(
            {
                "file": ValidationError(
                    _("The file is empty: it has a header row but no data rows."),
                    code="empty",
                )
            }
        )


# --- Status ---------------------------------------------------------------------


def _set_status(job: ImportJob, status: str, **fields: Any) -> ImportJob:
    """Move ``job`` to ``status`` if the table allows it, saving ``fields`` with it.

    The only writer of ``ImportJob.status``. Raises ``ValidationError`` (code
    ``invalid_transition``) when the job, read afresh and locked, may not move.
    """
    with transaction.atomic():
        current = (
            ImportJob.objects.select_for_update()
            .values_list("status", flat=True)
            .get(pk=job.pk)
        )
        if status not in ALLOWED_TRANSITIONS.get(current, frozenset()):
            job.status = current
            raise ValidationError(
                _("An import cannot go from %(old)s to %(new)s.")
                % {
                    "old": Status(current).label,
                    "new": Status(status).label,
                },
                code="invalid_transition",
            )
        for name, value in fields.items():
            setattr(job, name, value)
        job.status = status
        job.save(update_fields=["status", *fields])
    return job


def import_job_status(job: ImportJob) -> dict[str, Any]:
    """What the progress page polls: status, rows read, rows per second, counts."""
    total = (job.checked or {}).get("rows") if job.status in _RUN_STATUSES else None
    return {
        "id": job.pk,
        "status": job.status,
        "status_display": str(job.get_status_display()),
        "active": job.status in ACTIVE,
        "phase": "run" if job.status in _RUN_STATUSES else "check",
        "rows_done": job.rows_done,
        "rows_total": total,
        "rows_per_second": round(job.rows_per_second or 0, 1),
        "counts": {
            "rows": job.rows,
            "created": job.created,
            "updated": job.updated,
            "unchanged": job.unchanged,
            "merged": job.merged,
            "errors": job.errors,
        },
        "message": job.message,
    }


_RUN_STATUSES = frozenset({Status.QUEUED, Status.RUNNING, Status.DONE})


# --- Check and run ----------------------------------------------------------------


def import_job_recheck(*, job: ImportJob, on_error: str, actor: Any) -> ImportJob:
    """Change the bad-rows choice of a checked job and check it again."""
    if on_error not in ImportJob.OnError.values:
        raise ValidationError(
            {"on_error": ValidationError(_("Choose what to do with bad rows."))},
            code="invalid",
        )
    _require_actor(job, actor)
    job.task_id = str(uuid.uuid4())
    _set_status(
        job,
        Status.UPLOADED,
        on_error=on_error,
        checked=None,
        rows_done=0,
        rows_per_second=None,
        task_id=job.task_id,
    )
    _enqueue_check(job)
    return job


def import_job_check(*, job: ImportJob) -> ImportJob:
    """The dry run: the kind's runner with ``dry_run=True``; counts into ``checked``."""
    with _job_lock(job.pk) as locked:
        if not locked:
            return job  # another worker is checking it
        job.refresh_from_db()
        if job.status == Status.UPLOADED:
            _set_status(job, Status.CHECKING, rows_done=0, rows_per_second=None)
        elif job.status != Status.CHECKING:  # cancelled meanwhile, or checked
            return job
        # (Status CHECKING with the lock free: an earlier attempt died; check again.)
        try:
            result = _execute(job, dry_run=True)
        except ValidationError as error:
            return _fail(job, _error_text(error))
        except Exception:
            logger.exception("Checking import %s failed", job.pk)
            _reset_connection()
            return _fail(job, _("The check failed unexpectedly; nothing was imported."))
        report = _save_error_report(job, result.errors)
        try:
            _set_status(
                job,
                Status.CHECKED,
                checked=_counts(result, job.on_error),
                rows_done=result.rows,
                rows_per_second=_rate(result),
                error_report=report,
            )
        except ValidationError:  # cancelled while checking: drop the result
            if report:
                job.error_report.storage.delete(report)
    return job


def import_job_confirm(*, job: ImportJob, actor: Any) -> ImportJob:
    """Queue the real import of a checked job."""
    _require_actor(job, actor)
    job.refresh_from_db()
    checked = job.checked or {}
    if job.status != Status.CHECKED or checked.get("on_error") != job.on_error:
        raise ValidationError(
            _("Only a checked file can be imported; wait for the check to finish."),
            code="not_checked",
        )
    if job.on_error == ImportJob.OnError.ABORT and checked.get("errors"):
        raise ValidationError(
            _(
                "The file has bad rows and “All or nothing” is chosen, so nothing "
                "would be imported. Fix the file, or choose “Skip bad rows”."
            ),
            code="bad_rows",
        )
    job.task_id = str(uuid.uuid4())
    _set_status(
        job, Status.QUEUED, task_id=job.task_id, rows_done=0, rows_per_second=None
    )
    _enqueue(job, "import_job_run_task")
    return job


def import_job_run(*, job: ImportJob) -> ImportJob:
    """The import itself: counts, rows per second, error report, final status."""
    with _job_lock(job.pk) as locked:
        if not locked:
            return job  # another worker is running it
        job.refresh_from_db()
        if job.status == Status.RUNNING:
            # Redelivered after the worker running it died: its transaction died too.
            return _fail(
                job,
                _(
                    "The import stopped before it finished (the worker ended); "
                    "nothing was imported. Upload the file again."
                ),
            )
        if job.status != Status.QUEUED:  # cancelled meanwhile, or finished
            return job
        _set_status(
            job,
            Status.RUNNING,
            started_at=timezone.now(),
            rows_done=0,
            rows_per_second=None,
        )
        try:
            result = _execute(job, dry_run=False)
        except ValidationError as error:
            return _fail(job, _error_text(error))
        except Exception:
            logger.exception("Import %s failed", job.pk)
            _reset_connection()
            return _fail(
                job, _("The import failed unexpectedly; nothing was imported.")
            )
        report = _save_error_report(job, result.errors)
        counts = {
            "rows": result.rows,
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "merged": result.merged,
            "errors": len(result.errors),
            "extra": dict(result.extra),
            "rows_done": result.rows,
            "rows_per_second": _rate(result),
            "error_report": report,
            "finished_at": timezone.now(),
        }
        if result.aborted:
            return _set_status(
                job,
                Status.FAILED,
                message=_(
                    "%(count)d bad row(s) found during the import, so nothing was "
                    "imported (“All or nothing”). See the error report."
                )
                % {"count": result.bad_rows},
                **counts,
            )
        return _set_status(job, Status.DONE, **counts)


def import_job_cancel(*, job: ImportJob, actor: Any) -> ImportJob:
    """Cancel a job that is not importing yet; its stored files are deleted."""
    if not import_job_can_cancel(actor, job):
        raise ValidationError(
            _("You may not cancel this import."), code="permission_denied"
        )
    _set_status(job, Status.CANCELLED, finished_at=timezone.now())
    _delete_files(job, file=True)
    return job


def _require_actor(job: ImportJob, actor: Any) -> None:
    if not import_job_can_act(actor, job):
        raise ValidationError(
            _("Only the person who uploaded the file can continue this import."),
            code="permission_denied",
        )


def _execute(job: ImportJob, *, dry_run: bool) -> ImportResult:
    kind = registry.get(job.kind)
    with _stored_source(job) as source, _ProgressWriter(job.pk) as progress:
        if source.sha256 != job.sha256:
            raise ValidationError(
                _("The stored file has changed since it was uploaded."),
                code="file_changed",
            )
        return kind.run(
            source=source,
            store=job.store,
            format=job.format or job.requested_format,
            dry_run=dry_run,
            on_error=job.on_error,
            progress=progress,
            actor=job.created_by,
        )


def _fail(job: ImportJob, message: str) -> ImportJob:
    try:
        return _set_status(
            job, Status.FAILED, message=message, finished_at=timezone.now()
        )
    except ValidationError:  # cancelled or finished meanwhile
        return job


def _reset_connection() -> None:
    """After an unexpected error, drop a broken connection so the next query works."""
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def _counts(result: ImportResult, on_error: str) -> dict[str, Any]:
    return {
        "on_error": on_error,
        "rows": result.rows,
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "merged": result.merged,
        "errors": len(result.errors),
        "bad_rows": result.bad_rows,
        "aborted": result.aborted,
        "extra": dict(result.extra),
        "seconds": round(result.seconds, 3),
        "sample_errors": [
            {"line": e.line, "column": e.column, "reason": e.reason, "code": e.code}
            for e in result.errors[:SAMPLE_ERRORS]
        ],
    }


def _rate(result: ImportResult) -> float | None:
    return round(result.rows / result.seconds, 1) if result.seconds > 0 else None


def _error_text(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return " ".join(
            str(message) for errors in error.message_dict.values() for message in errors
        )
    return " ".join(str(message) for message in error.messages)


@contextlib.contextmanager
def _stored_source(job: ImportJob) -> Iterator[CsvSource]:
    with job.file.storage.open(job.file.name, "rb") as handle:
        try:
            yield open_csv(
                handle,
                encoding=job.encoding,
                delimiter=job.delimiter,
                name=job.filename,
            )
        except CsvFormatError as error:
            raise ValidationError(error.message, code=error.code) from None


@contextlib.contextmanager
def _job_lock(job_id: int) -> Iterator[bool]:
    """Hold a session advisory lock on the job while checking or running it."""
    key = job_id % 2**31
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, key])
        locked = cursor.fetchone()[0]
    try:
        yield locked
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, key]
                )


class _ProgressWriter:
    """The runner's progress callback: ``rows_done`` and live rows/s on the job row.

    The runner holds one transaction open for the whole file; a write in it would
    stay invisible to the page until commit. So this writes through its own
    autocommit connection (made from Django's connection parameters), at most every
    :data:`PROGRESS_INTERVAL` seconds, only while the job is checking or running.
    Made inside an outer transaction (a test), where nobody outside could see the
    job anyway, it writes through Django's connection. A failure to write progress
    is logged and never stops the import.
    """

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.started = time.monotonic()
        self.last = float("-inf")
        self.through_django = connection.in_atomic_block
        self.own: psycopg.Connection | None = None
        self.broken = False
        self.statement = sql.SQL(
            "UPDATE {table} SET rows_done = %s, rows_per_second = %s"
            " WHERE id = %s AND status IN ('checking', 'running')"
        ).format(table=sql.Identifier(ImportJob._meta.db_table))

    def __enter__(self) -> _ProgressWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.own is not None:
            with contextlib.suppress(psycopg.Error):
                self.own.close()

    def __call__(self, rows: int) -> None:
        now = time.monotonic()
        if self.broken or now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        elapsed = now - self.started
        rate = round(rows / elapsed, 1) if elapsed > 0 else None
        try:
            self._write([rows, rate, self.job_id])
        except (psycopg.Error, OSError) as error:
            self.broken = True
            logger.warning("Import %s: progress not written: %s", self.job_id, error)

    def _write(self, params: list[Any]) -> None:
        if self.through_django:
            with connection.cursor() as cursor:
                cursor.execute(self.statement.as_string(cursor.connection), params)
            return
        if self.own is None:
            self.own = psycopg.connect(
                **connection.get_connection_params(), autocommit=True
            )
            # Never wait on a lock: progress is a nicety, the import is the work.
            self.own.execute("SET lock_timeout = '200ms'")
            self.own.execute("SET statement_timeout = '2s'")
        self.own.execute(self.statement, params)


# --- Files ----------------------------------------------------------------------


def error_report_rows(errors: Iterable[RowError]) -> Iterator[list[Any]]:
    """The error report's rows, header first; cells are made formula-safe."""
    yield list(ERROR_REPORT_HEADER)
    for error in errors:
        yield [
            error.line,
            formula_safe(str(error.column)),
            formula_safe(str(error.value)),
            formula_safe(str(error.reason)),
        ]


def write_error_report(path: Path, errors: list[RowError]) -> None:
    """Write the error report CSV (UTF-8) to ``path``."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(error_report_rows(errors))


def _save_error_report(job: ImportJob, errors: list[RowError]) -> str:
    """Store the report of ``errors`` (replacing the job's earlier one); its name."""
    _delete_files(job, file=False)
    if not errors:
        return ""
    text = io.StringIO(newline="")
    csv.writer(text).writerows(error_report_rows(errors))
    storage = job.error_report.storage
    name = job.error_report.field.generate_filename(
        job, f"{uuid.uuid4().hex}-errors.csv"
    )
    return storage.save(name, ContentFile(text.getvalue().encode("utf-8")))


def _delete_files(job: ImportJob, *, file: bool) -> None:
    """Delete the stored error report (and the upload, if ``file``) from storage."""
    fields = [job.error_report, *([job.file] if file else [])]
    changed = []
    for stored in fields:
        if stored.name:
            stored.storage.delete(stored.name)
            changed.append(stored.field.name)
            setattr(job, stored.field.name, "")
    if changed and job.pk:
        ImportJob.objects.filter(pk=job.pk).update(**dict.fromkeys(changed, ""))


# --- Preview --------------------------------------------------------------------


@dataclass
class Preview:
    """The first rows of a file mapped to the kind's fields, for the check page."""

    fields: list[str] = field(default_factory=list)
    # field -> the file's column feeding it
    sources: dict[str, str] = field(default_factory=dict)
    rows: list[tuple[int, list[str]]] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    error: str = ""


def import_job_preview(job: ImportJob, *, limit: int = PREVIEW_ROWS) -> Preview:
    """Read the start of the stored file: its first rows under canonical field names."""
    if not job.file.name:
        return Preview()
    with job.file.storage.open(job.file.name, "rb") as handle:
        sample = handle.read(PREVIEW_BYTES + 1)
    truncated = len(sample) > PREVIEW_BYTES
    if truncated:
        # Cut at a line end: a multibyte character or a record is never split.
        sample = sample[: sample.rfind(b"\n", 0, PREVIEW_BYTES) + 1]
    try:
        source = open_csv(
            io.BytesIO(sample), encoding=job.encoding, delimiter=job.delimiter
        )
        mapping = map_header(source.header, job.format, job.kind)
        records = list(itertools.islice(source.rows(), limit + 1))
    except CsvFormatError as error:
        return Preview(error=error.message)
    except (MissingColumns, UnknownFormat) as error:
        return Preview(error=str(error))
    if truncated and len(records) <= limit:
        records = records[:-1]  # the sample may end inside a quoted field
    # In the file's column order, so the preview reads like the file.
    fields = sorted(mapping.positions, key=lambda name: min(mapping.positions[name]))
    rows = []
    for line, row in records[:limit]:
        values = mapping.apply(list(row.values()))
        fields.extend(name for name in values if name not in fields)
        rows.append((line, values))
    return Preview(
        fields=fields,
        sources={
            name: mapping.header[positions[0]]
            for name, positions in mapping.positions.items()
        },
        rows=[
            (line, [values.get(name, "") for name in fields]) for line, values in rows
        ],
        unmapped=list(mapping.unmapped),
    )


# --- Queueing -------------------------------------------------------------------


def _enqueue_check(job: ImportJob) -> None:
    _enqueue(job, "import_job_check_task")


def _enqueue(job: ImportJob, task_name: str) -> None:
    """Send the job's task after commit; if the queue is down, fail the job."""
    from customers import tasks  # tasks import this module

    task = getattr(tasks, task_name)
    job_id, task_id = job.pk, job.task_id
    # Row errors and messages are written by the worker: in the uploader's language.
    language = translation.get_language() or settings.LANGUAGE_CODE

    def send() -> None:
        try:
            task.apply_async(
                args=[job_id], kwargs={"language": language}, task_id=task_id
            )
        except Exception:
            logger.exception("Import %s: could not queue %s", job_id, task_name)
            stale = ImportJob.objects.filter(pk=job_id).first()
            if stale is not None:
                _fail(
                    stale,
                    _("The task queue is not available; try again in a moment."),
                )

    transaction.on_commit(send)
