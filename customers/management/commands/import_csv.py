import time
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from customers.importers import registry
from customers.importers.customers import ImportResult
from customers.importers.formats import (
    AUTO,
    CUSTOMERS,
    FORMATS,
    KINDS,
    MissingColumns,
    UnknownFormat,
    map_header,
)
from customers.importers.reading import CsvFormatError, open_csv
from customers.imports import write_error_report
from customers.models import Store

SHOWN_ERRORS = 10


class Command(BaseCommand):
    help = _(
        "Import a CSV export (customers, orders or consents) from a shop platform "
        "or a spreadsheet."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help=_("The CSV file."))
        parser.add_argument("--kind", choices=KINDS, default=CUSTOMERS)
        parser.add_argument("--store", required=True, help=_("The store's code."))
        parser.add_argument("--format", choices=[AUTO, *sorted(FORMATS)], default=AUTO)
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=_("Check the file and count the changes; write nothing."),
        )
        parser.add_argument(
            "--skip-bad-rows",
            action="store_true",
            help=_("Import the good rows and report the bad ones (default: abort)."),
        )
        parser.add_argument("--encoding", help=_("Default: detected."))
        parser.add_argument("--delimiter", help=_("Default: detected."))
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument(
            "--errors",
            help=_("Where to write the error report (default: next to the file)."),
        )

    def handle(self, *args, **options):
        try:
            kind = registry.get(options["kind"])
        except KeyError:
            raise CommandError(
                _("Importing %(kind)s is not available.") % {"kind": options["kind"]}
            ) from None
        store = self._store(options["store"])
        path = Path(options["file"])
        try:
            source = open_csv(
                path, encoding=options["encoding"], delimiter=options["delimiter"]
            )
        except (OSError, CsvFormatError, ValueError) as error:
            raise CommandError(str(error)) from None
        try:
            mapping = map_header(source.header, options["format"], kind.name)
        except (MissingColumns, UnknownFormat) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            _(
                "Format: %(format)s (%(variant)s), encoding: %(encoding)s, "
                "delimiter: %(delimiter)r"
            )
            % {
                "format": mapping.format,
                "variant": mapping.variant,
                "encoding": source.encoding,
                "delimiter": source.delimiter,
            }
        )
        if mapping.unmapped:
            self.stdout.write(
                _("Columns not imported: %(columns)s")
                % {"columns": ", ".join(mapping.unmapped)}
            )
        try:
            result = kind.run(
                source=source,
                store=store,
                format=options["format"],
                dry_run=options["dry_run"],
                on_error="skip" if options["skip_bad_rows"] else "abort",
                batch_size=options["batch_size"],
                progress=self._progress() if self.stdout.isatty() else None,
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        self._summary(result)
        if result.errors:
            report = Path(options["errors"] or path.with_suffix(".errors.csv"))
            write_error_report(report, result.errors)
            self.stdout.write(_("Error report: %(path)s") % {"path": report})
        if result.aborted:
            raise CommandError(
                _("%(count)d bad row(s): nothing was imported.")
                % {"count": result.bad_rows}
            )

    def _store(self, code: str) -> Store:
        try:
            return Store.objects.get(code=code)
        except Store.DoesNotExist:
            codes = ", ".join(Store.objects.values_list("code", flat=True)) or "-"
            raise CommandError(
                _("No store with code %(code)r (stores: %(codes)s).")
                % {"code": code, "codes": codes}
            ) from None

    def _progress(self):
        started = time.monotonic()

        def report(rows: int) -> None:
            rate = rows / max(time.monotonic() - started, 1e-6)
            self.stdout.write(
                "\r"
                + _("%(rows)d rows, %(rate).0f rows/s") % {"rows": rows, "rate": rate},
                ending="",
            )
            self.stdout.flush()

        return report

    def _summary(self, result: ImportResult) -> None:
        if self.stdout.isatty():
            self.stdout.write("")
        if result.dry_run:
            self.stdout.write(_("Dry run: nothing was written."))
        self.stdout.write(
            _(
                "Rows: %(rows)d in %(seconds).1f s. Created: %(created)d, "
                "updated: %(updated)d, unchanged: %(unchanged)d, merged: %(merged)d, "
                "errors: %(errors)d."
            )
            % {
                "rows": result.rows,
                "seconds": result.seconds,
                "created": result.created,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "merged": result.merged,
                "errors": len(result.errors),
            }
        )
        for error in result.errors[:SHOWN_ERRORS]:
            self.stdout.write(
                _("  line %(line)d, %(column)s: %(reason)s")
                % {"line": error.line, "column": error.column, "reason": error.reason}
            )
        if len(result.errors) > SHOWN_ERRORS:
            self.stdout.write(
                _("  … and %(count)d more.")
                % {"count": len(result.errors) - SHOWN_ERRORS}
            )
