"""Lists of customers (and, through the same code, orders and segments) as files.

An :class:`ExportTable` is a queryset, the canonical column names of the ``generic``
import format (:mod:`customers.importers.formats`) and a function giving each object's
rows; :func:`export_response` writes it as CSV or XLSX. The staff pages, the admin's
export button (:mod:`customers.resources`) and later segments all go through here, so
every file follows the same rules:

* **Columns** are Kartoteka's own field names, taken from ``formats.py`` (never
  restated), so an export imports again with ``--format generic``: re-importing an
  exported customers file into the same store changes nothing.
* **Formula-safe cells**: every cell, CSV and XLSX, is text through
  :func:`config.spreadsheets.formula_safe` (a cell starting with = + - @, a tab or a
  carriage return gets a leading apostrophe, which the importers drop again).
  Control characters XML forbids are dropped, so XLSX can hold every value.
* **Only processable customers** (``Customer.objects.processable()``): restricted
  (Art. 18) and erased people are left out.
* **The access log hears of every exported customer**: the queryset is read in
  chunks of :data:`CHUNK_SIZE` (``.iterator()``, never the whole list in memory) and
  each chunk's customers are reported with ``personal_data_accessed`` (action
  ``export``) before the chunk's rows are handed out.
* **Streaming**: CSV goes out while it is read (``StreamingHttpResponse``); XLSX is
  written by openpyxl's write-only workbook into a temporary file, which is sent
  (``FileResponse``) and deleted when the response is closed.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import IO, Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import (
    CharField,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
    Value,
)
from django.http import FileResponse, HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.utils.http import content_disposition_header
from openpyxl import Workbook

from config.spreadsheets import formula_safe
from customers.importers.formats import CUSTOMER_FIELDS
from customers.models import Address, Customer, CustomerIdentity, Store, Tag
from customers.signals import personal_data_accessed_send

#: Objects read (and customers logged) at a time.
CHUNK_SIZE = 2000
#: File formats of the export URLs and buttons.
FORMATS = ("csv", "xlsx")
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: Rows of one worksheet, header included; a longer export goes on in a new sheet.
XLSX_MAX_ROWS = 1_048_576
# C0 control characters other than tab, newline and carriage return: XML (and so
# XLSX) cannot hold them, and no customer's data means them.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
# How many CSV lines go out in one piece of the streamed response.
_CSV_LINES_PER_PIECE = 500

Row = Mapping[str, Any]


def export_cell(value: Any) -> str:
    """One cell of an export, as text a spreadsheet shows and never evaluates.

    Times in the business's zone with their offset (microseconds only when there
    are some, so nothing is lost), dates and amounts as ISO text, booleans as
    true/false: what the importers read back.
    """
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dt.datetime):
        moment = timezone.localtime(value) if timezone.is_aware(value) else value
        text = moment.isoformat()
    elif isinstance(value, dt.date):
        text = value.isoformat()
    else:
        text = str(value)
    return formula_safe(_FORBIDDEN.sub("", text))


@dataclass(frozen=True)
class ExportTable:
    """What an export holds: a queryset read in chunks, as rows of named columns.

    ``rows`` gives one object's rows (an order gives one per line) as
    ``{column: value}``; ``customer_id`` names whose personal data an object holds.
    """

    name: str
    columns: tuple[str, ...]
    queryset: QuerySet
    rows: Callable[[Any], Iterable[Row]]
    customer_id: Callable[[Any], int]

    def cells(
        self,
        *,
        request: HttpRequest,
        sender: Any,
        purpose: str = "",
        columns: Sequence[str] | None = None,
    ) -> Iterator[list[str]]:
        """Formula-safe cells, row by row; each chunk's customers are logged first.

        ``columns`` (default: all of them) picks and orders the columns written.
        """
        columns = self.columns if columns is None else tuple(columns)
        chunk: list[Any] = []
        for item in self.queryset.iterator(chunk_size=CHUNK_SIZE):
            chunk.append(item)
            if len(chunk) == CHUNK_SIZE:
                yield from self._chunk_cells(chunk, columns, request, sender, purpose)
                chunk = []
        if chunk:
            yield from self._chunk_cells(chunk, columns, request, sender, purpose)

    def _chunk_cells(
        self,
        chunk: list[Any],
        columns: tuple[str, ...],
        request: HttpRequest,
        sender: Any,
        purpose: str,
    ) -> Iterator[list[str]]:
        # Logged before a single row leaves: an interrupted download was still taken.
        personal_data_accessed_send(
            sender=sender,
            request=request,
            customer_ids=dict.fromkeys(self.customer_id(item) for item in chunk),
            action="export",
            purpose=purpose,
        )
        for item in chunk:
            for row in self.rows(item):
                yield [export_cell(row.get(column)) for column in columns]


def export_response(
    table: ExportTable,
    *,
    file_format: str,
    request: HttpRequest,
    sender: Any,
    purpose: str = "",
) -> HttpResponseBase:
    """``table`` as a download: ``csv`` (streamed) or ``xlsx`` (a temporary file)."""
    if file_format not in FORMATS:
        raise ValueError(f"unknown export format {file_format!r}")
    cells = table.cells(request=request, sender=sender, purpose=purpose)
    filename = f"{table.name}-{timezone.localdate():%Y-%m-%d}.{file_format}"
    if file_format == "csv":
        response: HttpResponseBase = StreamingHttpResponse(
            csv_lines(table.columns, cells), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = content_disposition_header(True, filename)
    else:
        response = FileResponse(
            xlsx_file(table.name, table.columns, cells),
            as_attachment=True,
            filename=filename,
            content_type=XLSX_CONTENT_TYPE,
        )
    # Personal data: no copy in a browser's or a proxy's cache.
    response["Cache-Control"] = "no-store"
    return response


class _Echo:
    """A file for csv.writer that hands each written line back."""

    def write(self, text: str) -> str:
        return text


def csv_lines(columns: Sequence[str], cells: Iterable[list[str]]) -> Iterator[str]:
    """The CSV text in pieces: UTF-8 BOM (Excel reads it as UTF-8), header, rows."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    piece = ["\ufeff" + writer.writerow(columns)]
    for row in cells:
        piece.append(writer.writerow(row))
        if len(piece) >= _CSV_LINES_PER_PIECE:
            yield "".join(piece)
            piece = []
    if piece:
        yield "".join(piece)


def xlsx_file(
    title: str, columns: Sequence[str], cells: Iterable[list[str]]
) -> IO[bytes]:
    """An XLSX workbook in a temporary file (deleted on close), read from the start.

    openpyxl's write-only mode keeps only the current row in memory. Past the
    worksheet's row limit the rows go on in a new sheet with the header again.
    """
    workbook = Workbook(write_only=True)
    sheet = None
    used = XLSX_MAX_ROWS
    for row in cells:
        if used >= XLSX_MAX_ROWS:
            sheet = _xlsx_sheet(workbook, title, columns)
            used = 1
        sheet.append(row)
        used += 1
    if sheet is None:
        _xlsx_sheet(workbook, title, columns)
    # FileResponse closes (and so deletes) it once the response is sent.
    handle = tempfile.TemporaryFile(suffix=".xlsx")
    try:
        workbook.save(handle)
    except BaseException:
        handle.close()
        raise
    handle.seek(0)
    return handle


def _xlsx_sheet(workbook: Workbook, title: str, columns: Sequence[str]) -> Any:
    number = len(workbook.worksheets) + 1
    sheet = workbook.create_sheet(title=title if number == 1 else f"{title} {number}")
    sheet.append(list(columns))
    return sheet


# --- Customers -----------------------------------------------------------------------


def _profile(name: str) -> Callable[[Customer, Address | None], Any]:
    return lambda customer, address: getattr(customer, name)


def _address(name: str) -> Callable[[Customer, Address | None], Any]:
    return lambda customer, address: getattr(address, name) if address else None


def _is_default(kind: str) -> Callable[[Customer, Address | None], Any]:
    return lambda customer, address: address.kind == kind if address else None


#: Canonical customer field -> its value, from the customer and their default
#: address. The columns are these fields in the order of ``CUSTOMER_FIELDS``.
#: Consent columns are the consents app's (customers sits left of it); the
#: imported totals go back into the columns they came from.
_CUSTOMER_CELLS: dict[str, Callable[[Customer, Address | None], Any]] = {
    "external_id": lambda customer, address: customer.export_external_id,
    **{
        name: _profile(name)
        for name in (
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
            "created_at",
            "last_seen_at",
        )
    },
    **{
        name: _address(name)
        for name in ("street", "street2", "postcode", "city", "region")
    },
    "country": lambda customer, address: address.country.code if address else None,
    "is_default_billing": _is_default(Address.Kind.BILLING),
    "is_default_shipping": _is_default(Address.Kind.SHIPPING),
    "tags": lambda customer, address: ", ".join(t.name for t in customer.export_tags),
    "total_spent": lambda customer, address: customer.imported_total_spent,
    "orders_count": lambda customer, address: customer.imported_orders_count,
}

#: The columns of a customers export: generic import names, in their order.
CUSTOMER_COLUMNS: tuple[str, ...] = tuple(
    name for name in CUSTOMER_FIELDS if name in _CUSTOMER_CELLS
)
if len(CUSTOMER_COLUMNS) != len(_CUSTOMER_CELLS):
    raise ImproperlyConfigured(
        "customers.exports: not generic customer fields: "
        f"{sorted(set(_CUSTOMER_CELLS) - set(CUSTOMER_COLUMNS))}"
    )


def customers_table(
    queryset: QuerySet[Customer], *, store: Store | None = None
) -> ExportTable:
    """The processable customers of ``queryset``, one row each, in its order.

    ``store`` is whose customer ids fill ``external_id`` (a file is imported into
    one store); None means the only store when there is exactly one, else the
    column stays empty and a re-import matches by email.
    """
    return ExportTable(
        name="customers",
        columns=CUSTOMER_COLUMNS,
        queryset=_with_row_data(queryset.processable(), store or _only_store()),
        rows=_customer_rows,
        customer_id=attrgetter("pk"),
    )


def customer_row(customer_id: int, *, store: Store | None) -> dict[str, Any]:
    """One customer's export values, whatever their state ({} if there is none)."""
    customer = _with_row_data(Customer.objects.filter(pk=customer_id), store).first()
    return next(_customer_rows(customer)) if customer is not None else {}


def _only_store() -> Store | None:
    stores = list(Store.objects.order_by("pk")[:2])
    return stores[0] if len(stores) == 1 else None


def _with_row_data(
    queryset: QuerySet[Customer], store: Store | None
) -> QuerySet[Customer]:
    """The customers with the store's external id, default addresses and tags."""
    if store is None:
        external_id: Any = Value(None, output_field=CharField())
    else:
        external_id = Subquery(
            CustomerIdentity.objects.filter(customer=OuterRef("pk"), store=store)
            .order_by("pk")
            .values("external_id")[:1]
        )
    return queryset.annotate(export_external_id=external_id).prefetch_related(
        Prefetch(
            "addresses",
            queryset=Address.objects.filter(is_default=True),
            to_attr="export_addresses",
        ),
        Prefetch("tags", queryset=Tag.objects.order_by("name"), to_attr="export_tags"),
    )


def _customer_rows(customer: Customer) -> Iterator[dict[str, Any]]:
    # One address per row: the default shipping address, else the default billing
    # one; is_default_billing/_shipping say which, as the importer reads them.
    defaults = {address.kind: address for address in customer.export_addresses}
    address = defaults.get(Address.Kind.SHIPPING) or defaults.get(Address.Kind.BILLING)
    yield {name: cell(customer, address) for name, cell in _CUSTOMER_CELLS.items()}
