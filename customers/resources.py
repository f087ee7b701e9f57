"""django-import-export resources: the admin's Import and Export buttons.

django-import-export is the engine of the admin's buttons for small files; the rules
are the ones every other path follows, not a second set:

* **Columns** are the ``generic`` format's canonical names. The export is the staff
  pages' export table (:mod:`customers.exports`): the same columns, formula-safe
  cells, processable customers only, every exported customer in the access log.
* **Import** maps the file's header with :func:`customers.importers.formats.map_header`
  (``generic``, English and Polish headings), reads CSV as the CSV importer does
  (:class:`SpreadsheetCSV`: encoding and delimiter detected), cleans each row with
  the CSV importer's row rules and writes it with the service
  (``customer_upsert``, ``order_upsert``), never with a model save. A row the rules
  reject is a validation error of that row, shown in django-import-export's own
  error table, and nothing is written until every row passes.
* Files are imported into one store, chosen on the import form (external ids are
  the store's).

Addresses, notes, imported totals and consents are not written by the admin
import (``customer_upsert`` does not take them): the CSV import does that.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import tablib
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from import_export import resources
from import_export.fields import Field
from import_export.formats import base_formats
from import_export.instance_loaders import BaseInstanceLoader
from import_export.resources import Diff
from import_export.results import RowResult

from customers.exports import (
    CUSTOMER_COLUMNS,
    ExportTable,
    customer_row,
    customers_table,
    export_cell,
)
from customers.importers.customers import RowError, _clean_row
from customers.importers.formats import (
    CANONICAL_FIELDS,
    CUSTOMERS,
    GENERIC,
    MissingColumns,
    UnknownFormat,
    map_header,
)
from customers.importers.formats import Mapping as HeaderMapping
from customers.importers.reading import open_csv
from customers.models import Customer, Store
from customers.services import PROFILE_FIELDS, customer_upsert


class SpreadsheetCSV(base_formats.CSV):
    """CSV read as the CSV importer reads it, written as UTF-8 with a BOM.

    Encoding (UTF-8, Windows-1250, ISO-8859-2) and delimiter (comma, semicolon,
    tab) are detected, so a file saved by a Polish Excel imports as it is.
    """

    CONTENT_TYPE = "text/csv; charset=utf-8"

    def is_binary(self) -> bool:
        return True

    def get_read_mode(self) -> str:
        return "rb"

    def create_dataset(self, in_stream: bytes | str, **kwargs: Any) -> tablib.Dataset:
        data = in_stream.encode("utf-8") if isinstance(in_stream, str) else in_stream
        source = open_csv(io.BytesIO(data))
        dataset = tablib.Dataset(headers=source.header)
        for _line, row in source.rows():
            dataset.append(list(row.values()))
        return dataset

    def export_data(self, dataset: tablib.Dataset, **kwargs: Any) -> bytes:
        return ("\ufeff" + dataset.export("csv")).encode("utf-8")


#: The formats of the admin's buttons.
ADMIN_FORMATS = [SpreadsheetCSV, base_formats.XLSX]


class CellsDiff(Diff):
    """The preview of one imported row: its cells before and after the write."""

    def __init__(self, left: list[str], right: list[str], new: bool) -> None:
        self.left = left
        self.right = right
        self.new = new


def row_errors(errors: Iterable[RowError]) -> ValidationError:
    """The CSV importer's errors of one row as a ValidationError keyed by column."""
    by_column: dict[str, list[ValidationError]] = {}
    for error in errors:
        by_column.setdefault(error.column or NON_FIELD_ERRORS, []).append(
            ValidationError(error.reason, code=error.code)
        )
    return ValidationError(by_column)


def _text(value: Any) -> str:
    """A spreadsheet cell as the text the importers read (XLSX cells are typed)."""
    return "" if value is None else str(value)


class TableResource(resources.Resource):
    """A resource whose columns are the generic format's names.

    The export writes ``table(queryset)``; an import maps the file's header onto
    canonical names in ``before_import`` and each subclass writes rows through its
    service in ``import_row``.
    """

    #: Every column of an export, in order (canonical names).
    columns: ClassVar[tuple[str, ...]] = ()
    #: The columns the admin import writes (a subset of ``columns``).
    import_columns: ClassVar[tuple[str, ...]] = ()
    #: The kind of file (customers.importers.formats.KINDS).
    kind: ClassVar[str] = ""

    class Meta:
        # Rows are matched by the write services, never loaded by import-export.
        instance_loader_class = BaseInstanceLoader

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.fields = OrderedDict(
            (name, Field(column_name=name)) for name in cls.columns
        )

    def __init__(
        self, *, request: Any = None, store: Store | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.request = request
        self.store = store
        #: The canonical header of the rewritten dataset (see before_import).
        self.mapping: HeaderMapping | None = None

    @classmethod
    def get_display_name(cls) -> str:
        return str(cls._meta.model._meta.verbose_name_plural)

    def get_export_order(self) -> tuple[str, ...]:
        return self.columns

    def get_import_fields(self) -> list[Field]:
        return [self.fields[name] for name in self.import_columns]

    # --- Export ---------------------------------------------------------------------

    def table(self, queryset: QuerySet) -> ExportTable:
        raise NotImplementedError

    def export(self, queryset: QuerySet | None = None, **kwargs: Any) -> tablib.Dataset:
        """The export table's cells (the columns chosen on the admin's form)."""
        if queryset is None:
            queryset = self._meta.model.objects.all()
        table = self.table(queryset)
        chosen = kwargs.get("export_fields")
        columns = [name for name in table.columns if not chosen or name in chosen]
        dataset = tablib.Dataset(headers=columns)
        for cells in table.cells(
            request=self.request, sender=type(self), purpose="admin", columns=columns
        ):
            dataset.append(cells)
        return dataset

    # --- Import ---------------------------------------------------------------------

    def before_import(self, dataset: tablib.Dataset, **kwargs: Any) -> None:
        """Rename the file's columns to canonical names, as the CSV importer maps them.

        The dataset is emptied first: a file that cannot be mapped imports no row.
        Blank rows are dropped.
        """
        header = [_text(cell) for cell in dataset.headers or []]
        raw_rows = [[_text(cell) for cell in row] for row in dataset]
        dataset.wipe()
        if self.store is None:
            raise ValueError(_("Choose the store the file comes from."))
        try:
            mapping = map_header(header, GENERIC, self.kind)
        except (MissingColumns, UnknownFormat) as error:
            raise ValueError(str(error)) from None
        rows = [mapping.apply(row) for row in raw_rows if any(c.strip() for c in row)]
        names = [
            name
            for name in CANONICAL_FIELDS[self.kind]
            if name in mapping.positions or any(name in row for row in rows)
        ]
        dataset.headers = names
        for row in rows:
            dataset.append([row.get(name, "") for name in names])
        self.mapping = map_header(names, GENERIC, self.kind)

    def import_row(self, row: Mapping[str, str], instance_loader: Any, **kwargs: Any):
        raise NotImplementedError

    def preview_cells(self, values: Mapping[str, Any]) -> list[str]:
        """A row's import columns as the preview shows them."""
        return [export_cell(values.get(name)) for name in self.import_columns]

    def written(
        self,
        instance: Any,
        *,
        import_type: str,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        **kwargs: Any,
    ) -> RowResult:
        """The result of a row the service wrote (or found unchanged)."""
        result = self.get_row_result_class()()
        result.import_type = import_type
        result.add_instance_info(instance)
        if kwargs.get("retain_instance_in_row_result"):
            result.instance = instance  # the admin's log entries
        result.diff = CellsDiff(
            self.preview_cells(before),
            self.preview_cells(after),
            import_type == RowResult.IMPORT_TYPE_NEW,
        ).as_html()
        return result

    def invalid(self, error: ValidationError) -> RowResult:
        """The result of a row the rules rejected: shown in the error table."""
        result = self.get_row_result_class()()
        result.import_type = RowResult.IMPORT_TYPE_INVALID
        result.validation_error = error
        return result

    def failed(self, error: Exception, row: Mapping[str, str], number: int):
        """The result of a row whose write failed unexpectedly (import-export's way)."""
        result = self.get_row_result_class()()
        result.import_type = RowResult.IMPORT_TYPE_ERROR
        result.errors.append(
            self.get_error_result_class()(error, row=row, number=number)
        )
        return result


def existing_customer(
    *, store: Store, external_id: str | None, email: str | None
) -> Customer | None:
    """The customer an upsert finds: by the store's identity, else by the email."""
    if external_id:
        found = Customer.objects.filter(
            identities__store=store, identities__external_id=external_id
        ).first()
        if found is not None:
            return found
    return Customer.objects.by_email(email).first() if email else None


#: Customer columns the admin import writes: those ``customer_upsert`` takes.
_UPSERT_COLUMNS = frozenset({"external_id", "email", "phone", "tags", *PROFILE_FIELDS})


class CustomerResource(TableResource):
    """Customers: export as the staff pages do; import row by row through upsert."""

    columns = CUSTOMER_COLUMNS
    import_columns = tuple(name for name in CUSTOMER_COLUMNS if name in _UPSERT_COLUMNS)
    kind = CUSTOMERS

    class Meta:
        model = Customer

    def table(self, queryset: QuerySet) -> ExportTable:
        return customers_table(queryset, store=self.store)

    def import_row(
        self, row: Mapping[str, str], instance_loader: Any, **kwargs: Any
    ) -> RowResult:
        number = kwargs["row_number"]
        try:
            arguments = self.upsert_arguments(row, number)
            existing = existing_customer(
                store=self.store,
                external_id=arguments["external_id"],
                email=arguments["email"],
            )
            before = customer_row(existing.pk, store=self.store) if existing else {}
            customer, created = customer_upsert(
                store=self.store, actor=kwargs.get("user"), **arguments
            )
        except ValidationError as error:
            return self.invalid(error)
        except Exception as error:  # reported on the row, as import-export does
            return self.failed(error, row, number)
        after = customer_row(customer.pk, store=self.store)
        if created:
            import_type = RowResult.IMPORT_TYPE_NEW
        elif before != after:
            import_type = RowResult.IMPORT_TYPE_UPDATE
        else:
            import_type = RowResult.IMPORT_TYPE_SKIP
        return self.written(
            customer, import_type=import_type, before=before, after=after, **kwargs
        )

    def upsert_arguments(self, row: Mapping[str, str], number: int) -> dict[str, Any]:
        """customer_upsert's arguments from one row, cleaned as the CSV import does.

        Blank cells keep the stored value (``None``), as in the CSV import.
        """
        values = {name: row[name] or "" for name in self.import_columns if name in row}
        errors: list[RowError] = []
        record = _clean_row(
            number,
            values,
            {name: name for name in values},
            self.store,
            timezone.get_default_timezone(),
            errors,
        )
        if record is None:
            raise row_errors(errors)
        profile = dict(record.values)
        return {
            "external_id": record.external_id,
            "email": profile.pop("email", None),
            "phone": profile.pop("phone", None),
            "tags": record.tags or None,
            **profile,
        }
