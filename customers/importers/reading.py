"""Reading CSV exports: encoding and delimiter detection, streaming rows, value parsers.

This is the low-level layer under the import services. It knows nothing about
customers: it turns a file (Shopify, WooCommerce, PrestaShop, Magento, Mailchimp or a
Polish spreadsheet saved as CSV) into ``(line_number, {column: raw value})`` pairs, and
offers pure parsers for the values the services map onto fields.

Memory stays bounded whatever the file size: :func:`open_csv` reads the file once in
64 KB chunks (SHA-256, encoding detection, a sample for the delimiter), and each call
of :meth:`CsvSource.rows` streams it again from the start.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from queue import Full, Queue
from typing import IO, Any, TypeVar

from django.utils import translation
from django.utils.translation import gettext as _

T = TypeVar("T")

CHUNK_SIZE = 64 * 1024
# Records of the sample compared when guessing the delimiter.
SAMPLE_RECORDS = 50
DELIMITERS = (",", ";", "\t", "|")
# A line made only of these (";;;;" under another delimiter) is no header.
_FILLER = " \t\r\n" + "".join(DELIMITERS)

UTF8_BOM = codecs.BOM_UTF8
UTF16_32_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)

POLISH_LETTERS = "ąćęłńóśźżĄĆĘŁŃÓŚŹŻ"


def _polish_bytes(encoding: str) -> frozenset[int]:
    return frozenset(letter.encode(encoding)[0] for letter in POLISH_LETTERS)


# Windows-1250 and ISO-8859-2 put ą Ą ś Ś ź Ź at different bytes; the other Polish
# letters share a byte. Each set holds the bytes that are a Polish letter only there.
_CP1250_POLISH = _polish_bytes("cp1250")
_ISO_POLISH = _polish_bytes("iso-8859-2")
CP1250_ONLY_LETTERS = bytes(sorted(_CP1250_POLISH - _ISO_POLISH))
ISO_8859_2_ONLY_LETTERS = bytes(sorted(_ISO_POLISH - _CP1250_POLISH))
# C1 control characters in ISO-8859-2: text never contains them, Windows-1250 text
# uses most of these bytes for letters and punctuation.
C1_BYTES = bytes(range(0x80, 0xA0))
CP1250_UNDEFINED = bytes([0x81, 0x83, 0x88, 0x90, 0x98])
# C0 controls other than tab, LF and CR: a sign of a binary file or of UTF-16/32.
CONTROL_BYTES = bytes(b for b in range(0x20) if b not in (0x09, 0x0A, 0x0D))


def in_background(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` produced by a thread of their own, up to ``depth`` ahead.

    Reading and cleaning rows is Python work; writing a batch is mostly the
    database's. With the producer in a thread, the next batch is cleaned while the
    database writes the previous one (the GIL is released while waiting on it).
    The producer must not touch the database: Django's connections are per thread;
    it runs in the caller's language.
    An exception in it is raised here, at the item it would have produced; leaving
    the loop early stops it.
    """
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    language = translation.get_language()  # row errors in the caller's language

    def produce() -> None:
        if language:
            translation.activate(language)
        else:
            translation.deactivate_all()
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            put((done, error))

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, error = queue.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()


class CsvFormatError(ValueError):
    """The file cannot be read as a CSV table; ``message`` is meant for the user.

    ``code`` names the problem for callers that map it to their own errors:
    ``empty``, ``encoding``, ``header_empty``, ``header_duplicate``,
    ``too_many_fields`` or ``malformed``. ``line_number`` is the physical line (1
    is the first line of the file) when the problem is tied to one.
    """

    def __init__(self, message: str, *, code: str, line_number: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.line_number = line_number


def _unknown_encoding() -> CsvFormatError:
    return CsvFormatError(
        _(
            "Unknown file encoding. Save the file as CSV in UTF-8 (or Windows-1250) "
            "and try again."
        ),
        code="encoding",
    )


@dataclass(frozen=True, eq=False)
class CsvSource:
    """A CSV file opened by :func:`open_csv`: what was detected, and its records.

    ``sha256`` is the hex digest of the whole file's bytes, computed when the file
    was opened (a separate streamed pass, so it is known before any row is read).
    Iterating yields ``(line_number, row)`` like :meth:`rows`.
    """

    encoding: str
    delimiter: str
    header: list[str]
    sha256: str
    size: int
    header_line: int
    # The file's name as the user knows it (no directories): consent evidence.
    name: str = field(default="", kw_only=True)
    _open: Callable[[], contextlib.AbstractContextManager[IO[bytes]]] = field(
        repr=False
    )

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        return self.rows()

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """Stream ``(line_number, {column: raw value})`` for each record.

        ``line_number`` is the physical line where the record starts (the header is
        usually line 1; a quoted newline makes a record span several lines). Values
        are raw strings (use :func:`clean_text` and the parsers). Records shorter than
        the header are padded with empty strings; records whose every value is blank
        (spreadsheets often end with ``;;;;`` lines) are skipped; extra fields beyond
        the header are allowed only when blank (a trailing delimiter). Each call
        reads the file again from its start; for a file object, do not interleave
        two iterations.
        """
        width = len(self.header)
        with self._text() as text:
            for line_number, fields in _records(text, self.delimiter, self.encoding):
                if line_number <= self.header_line:
                    continue
                if len(fields) > width:
                    if any(value.strip() for value in fields[width:]):
                        raise CsvFormatError(
                            _(
                                "Line %(line)d has %(count)d fields, but the header "
                                "has %(expected)d columns."
                            )
                            % {
                                "line": line_number,
                                "count": len(fields),
                                "expected": width,
                            },
                            code="too_many_fields",
                            line_number=line_number,
                        )
                    fields = fields[:width]
                if not any(value.strip() for value in fields):
                    continue
                if len(fields) < width:
                    fields = fields + [""] * (width - len(fields))
                yield line_number, dict(zip(self.header, fields, strict=True))

    @contextlib.contextmanager
    def _text(self) -> Iterator[io.TextIOWrapper]:
        with self._open() as binary:
            yield _text_reader(binary, self.encoding)


def open_csv(
    source: str | os.PathLike[str] | IO[bytes],
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    name: str | None = None,
) -> CsvSource:
    """Open a CSV file (a path or a seekable binary file) and read its header.

    ``name`` is the file's name as the user knows it (an upload's original name);
    by default the path's or the file object's base name.

    Detects the encoding (UTF-8 with or without BOM, Windows-1250, ISO-8859-2) and
    the delimiter (comma, semicolon, tab, pipe) unless given. Raises
    :class:`CsvFormatError` for an empty file, an unknown encoding, or a header with
    an empty or duplicate column name.
    """
    if delimiter is not None and len(delimiter) != 1:
        raise ValueError("delimiter must be a single character")
    opener = _opener(source)
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise _unknown_encoding() from None
    sha256, size, sample, detected = _scan(opener, detect=encoding is None)
    encoding = encoding if encoding is not None else detected
    if size == 0 or encoding is None:
        raise _empty_file()
    if delimiter is None:
        delimiter = _detect_delimiter(sample, encoding, truncated=size > len(sample))

    with opener() as binary:
        text = _text_reader(binary, encoding)
        header_line, names = _read_header(text, delimiter, encoding)
    return CsvSource(
        encoding=encoding,
        delimiter=delimiter,
        header=names,
        sha256=sha256,
        size=size,
        header_line=header_line,
        name=os.path.basename(str(name or _source_name(source))),
        _open=opener,
    )


def _source_name(source: str | os.PathLike[str] | IO[bytes]) -> str:
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return str(getattr(source, "name", "") or "")


# --- Opening and streaming -------------------------------------------------------


def _opener(
    source: str | os.PathLike[str] | IO[bytes],
) -> Callable[[], contextlib.AbstractContextManager[IO[bytes]]]:
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)

        def open_path() -> contextlib.AbstractContextManager[IO[bytes]]:
            return open(path, "rb")

        return open_path
    if isinstance(source, io.TextIOBase) or not callable(getattr(source, "read", None)):
        raise TypeError("open_csv needs a path or a binary file object")
    seekable = getattr(source, "seekable", None)
    if not (callable(seekable) and seekable()):
        raise TypeError("open_csv needs a seekable binary file (it reads it twice)")

    @contextlib.contextmanager
    def open_file() -> Iterator[IO[bytes]]:
        # The caller's file: read it from its start, leave it open.
        source.seek(0)
        yield source

    return open_file


class _BinaryAdapter(io.RawIOBase):
    """Any object with ``read(n)`` as a raw stream; closing it leaves that open."""

    def __init__(self, binary: IO[bytes]):
        self._binary = binary

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._binary.read(len(buffer))
        if not isinstance(data, bytes | bytearray):
            raise TypeError("open_csv needs a binary file, not a text file")
        buffer[: len(data)] = data
        return len(data)


def _text_reader(binary: IO[bytes], encoding: str) -> io.TextIOWrapper:
    # newline="" hands line endings to the csv module untouched, as it requires
    # for quoted newlines; lines still split on \r\n, \n and \r.
    return io.TextIOWrapper(
        io.BufferedReader(_BinaryAdapter(binary), CHUNK_SIZE),
        encoding=encoding,
        errors="strict",
        newline="",
    )


def _records(
    text: io.TextIOWrapper, delimiter: str, encoding: str
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(first physical line, fields)`` for each non-blank line or record."""
    reader = csv.reader(text, delimiter=delimiter)
    while True:
        line_number = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            # The text layer decodes ahead in chunks: the bad byte is at this line
            # or a little after it.
            raise CsvFormatError(
                _("The file is not valid %(encoding)s text (near line %(line)d).")
                % {"encoding": encoding, "line": line_number},
                code="encoding",
                line_number=line_number,
            ) from None
        except csv.Error as exc:
            raise CsvFormatError(
                _("Line %(line)d cannot be read as CSV: %(error)s.")
                % {"line": line_number, "error": exc},
                code="malformed",
                line_number=line_number,
            ) from None
        if fields:
            yield line_number, fields


def _empty_file() -> CsvFormatError:
    return CsvFormatError(_("The file is empty."), code="empty")


def _read_header(
    text: io.TextIOWrapper, delimiter: str, encoding: str
) -> tuple[int, list[str]]:
    first = next(
        (
            (line_number, fields)
            for line_number, fields in _records(text, delimiter, encoding)
            if any(value.strip(_FILLER) for value in fields)
        ),
        None,
    )
    if first is None:
        raise _empty_file()
    line_number, fields = first
    names = [value.strip() for value in fields]
    # An explicit encoding="utf-8" keeps the BOM in the first name.
    names[0] = names[0].lstrip("\ufeff").strip()
    # A trailing delimiter (spreadsheets) is not an unnamed last column.
    while names and not names[-1]:
        names.pop()
    empty = [str(position) for position, name in enumerate(names, 1) if not name]
    if empty:
        raise CsvFormatError(
            _("The header has a column without a name (column %(columns)s).")
            % {"columns": ", ".join(empty)},
            code="header_empty",
            line_number=line_number,
        )
    # Import mappings match column names without regard to case, so "Email" and
    # "email" in one header would be ambiguous.
    seen: set[str] = set()
    duplicates: list[str] = []
    for name in names:
        key = name.casefold()
        if key in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(key)
    if duplicates:
        raise CsvFormatError(
            _("The header repeats a column name: %(names)s.")
            % {"names": ", ".join(duplicates)},
            code="header_duplicate",
            line_number=line_number,
        )
    return line_number, names


# --- Detection ---------------------------------------------------------------------


def _scan(
    opener: Callable[[], contextlib.AbstractContextManager[IO[bytes]]],
    *,
    detect: bool,
) -> tuple[str, int, bytes, str | None]:
    """One streamed pass: SHA-256, size, the first chunk, the encoding if asked."""
    digest = hashlib.sha256()
    size = 0
    sample = b""
    sniffer = _EncodingSniffer() if detect else None
    with opener() as binary:
        while chunk := binary.read(CHUNK_SIZE):
            if not isinstance(chunk, bytes | bytearray):
                raise TypeError("open_csv needs a binary file, not a text file")
            chunk = bytes(chunk)
            digest.update(chunk)
            if len(sample) < CHUNK_SIZE:
                sample += chunk[: CHUNK_SIZE - len(sample)]
            if sniffer is not None:
                sniffer.feed(chunk)
            size += len(chunk)
    detected = sniffer.result() if sniffer is not None and size else None
    return digest.hexdigest(), size, sample, detected


def _count(chunk: bytes, byte_values: bytes) -> int:
    """How many bytes of ``chunk`` are among ``byte_values``."""
    return len(chunk) - len(chunk.translate(None, byte_values))


class _EncodingSniffer:
    """Decide the encoding from statistics over the whole file, fed in chunks.

    UTF-8 is validated strictly across chunk boundaries (an incremental decoder
    keeps a multibyte character cut at a chunk end). A file that is not UTF-8 is
    Windows-1250 or ISO-8859-2, chosen by the bytes that are Polish letters in only
    one of them and by bytes that are C1 controls in ISO-8859-2 or undefined in
    Windows-1250.
    """

    def __init__(self) -> None:
        self.size = 0
        self.bom: str | None = None
        self.nul = False
        self.controls = 0
        self.utf8_valid = True
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self.cp1250_letters = 0
        self.iso_letters = 0
        self.c1 = 0
        self.cp1250_undefined = 0

    def feed(self, chunk: bytes) -> None:
        if self.size == 0:
            if chunk.startswith(UTF16_32_BOMS):
                self.bom = "utf-16/32"
            elif chunk.startswith(UTF8_BOM):
                self.bom = "utf-8"
        self.size += len(chunk)
        self.nul = self.nul or b"\x00" in chunk
        self.controls += _count(chunk, CONTROL_BYTES)
        if self.utf8_valid:
            try:
                self._utf8.decode(chunk)
            except UnicodeDecodeError:
                self.utf8_valid = False
        if not chunk.isascii():
            self.cp1250_letters += _count(chunk, CP1250_ONLY_LETTERS)
            self.iso_letters += _count(chunk, ISO_8859_2_ONLY_LETTERS)
            self.c1 += _count(chunk, C1_BYTES)
            self.cp1250_undefined += _count(chunk, CP1250_UNDEFINED)

    def result(self) -> str:
        if self.bom == "utf-16/32" or self.nul or self.controls * 100 > self.size:
            raise _unknown_encoding()
        if self.utf8_valid:
            try:
                self._utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                self.utf8_valid = False
        if self.utf8_valid:
            return "utf-8-sig" if self.bom == "utf-8" else "utf-8"
        if self.bom == "utf-8":
            raise _unknown_encoding()
        cp1250_possible = self.cp1250_undefined == 0
        iso_plausible = self.c1 == 0
        if cp1250_possible and iso_plausible:
            # No byte in 0x80-0x9F, so no ś Ś ź Ź in Windows-1250: compare ą Ą
            # (0xB9 0xA5) with the ISO-8859-2 letters.
            if self.iso_letters > self.cp1250_letters:
                return "iso-8859-2"
            return "cp1250"
        if cp1250_possible:
            return "cp1250"
        if iso_plausible:
            return "iso-8859-2"
        raise _unknown_encoding()


def _detect_delimiter(sample: bytes, encoding: str, *, truncated: bool) -> str:
    """The candidate that splits the header widest and the records most evenly."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    text = decoder.decode(sample, final=not truncated)
    if truncated:
        end = max(text.rfind("\n"), text.rfind("\r"))
        if end > 0:
            text = text[: end + 1]
    best: tuple[float, int] | None = None
    chosen = ","
    for candidate in DELIMITERS:
        records = _sample_records(text, candidate)
        if truncated and len(records) > 1:
            # The sample may end inside a quoted multi-line field.
            records.pop()
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        rest = records[1:]
        even = sum(len(record) == width for record in rest) / len(rest) if rest else 1
        score = (even, width)
        if best is None or score > best:
            best, chosen = score, candidate
    return chosen


def _sample_records(text: str, delimiter: str) -> list[list[str]]:
    records: list[list[str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for record in reader:
            if any(value.strip(_FILLER) for value in record):
                records.append(record)
                if len(records) > SAMPLE_RECORDS:
                    break
    except csv.Error:
        pass
    return records


# --- Value parsers -----------------------------------------------------------------

# Spaces used as thousands separators: space, no-break space, narrow no-break space,
# thin space.
_SPACES_RE = re.compile("[ \u00a0\u202f\u2009]+")
_CURRENCY = r"(?:zł|zl|pln|eur|usd|gbp|€|\$|£)"
_LEADING_CURRENCY_RE = re.compile(rf"^{_CURRENCY}\s*", re.IGNORECASE)
_TRAILING_CURRENCY_RE = re.compile(rf"\s*{_CURRENCY}\.?$", re.IGNORECASE)
# (pattern, grouping separator, decimal separator or None for "either").
_NUMBER_FORMS = (
    # A single separator is the decimal one: "12,5", "1234.56", "1,234" = 1.234.
    (re.compile(r"\d+(?:[.,]\d+)?"), "", None),
    (re.compile(r"\d{1,3}(?: \d{3})+(?:[.,]\d+)?"), " ", None),
    (re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?"), ".", ","),
    (re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?"), ",", "."),
)


def clean_text(text: str | None) -> str:
    """Strip whitespace and one leading apostrophe (Excel's and Shopify's "as text").

    Shopify writes ``'00-950`` and ``'+48601234567`` so that spreadsheets keep
    postcodes, phones and ids as text; an apostrophe inside ("O'Brien") stays.
    """
    if text is None:
        return ""
    text = text.strip()
    if text.startswith("'"):
        text = text[1:].strip()
    return text


_TRUE = frozenset({"1", "true", "t", "yes", "y", "tak", "prawda"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "nie", "fałsz", "falsz"})


def parse_bool(text: str | None) -> bool | None:
    """yes/no, true/false, 1/0, y/n, tak/nie, t/n (tak/nie), PRAWDA/FAŁSZ (Excel PL)."""
    value = clean_text(text).casefold()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(_("Not a yes/no value: %(value)s") % {"value": text})


def parse_decimal(text: str | None) -> Decimal | None:
    """A number as shops and Polish spreadsheets write it, currency allowed.

    Accepts ``1234.56``, ``12,5``, ``1 234,56 zł``, ``1.234,56``, ``1,234.56``,
    ``PLN 12,50``, ``-12,50``, no-break spaces and a leading apostrophe. A single
    separator is the decimal separator (``1,234`` is 1.234); grouping must be in
    threes. Rejects ``1,2,3``, exponents, NaN and anything else.
    """
    value = _SPACES_RE.sub(" ", clean_text(text))
    if not value:
        return None
    negative = False
    if value[0] in "-+\u2212":
        negative, value = value[0] != "+", value[1:].lstrip()
    value = _LEADING_CURRENCY_RE.sub("", value, count=1)
    if value and value[0] in "-+\u2212" and not negative:
        negative, value = value[0] != "+", value[1:].lstrip()
    value = _TRAILING_CURRENCY_RE.sub("", value, count=1)
    for pattern, grouping, decimal_separator in _NUMBER_FORMS:
        if pattern.fullmatch(value):
            if grouping:
                value = value.replace(grouping, "")
            if decimal_separator is None:
                value = value.replace(",", ".")
            else:
                value = value.replace(decimal_separator, ".")
            number = Decimal(value)
            return -number if negative else number
    raise ValueError(_("Not a number: %(value)s") % {"value": text})


_ISO_RE = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"(?:[T ](?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?"
    r"\s*(?P<offset>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?)?"
)
_POLISH_RE = re.compile(
    r"(?P<day>\d{1,2})\.(?P<month>\d{1,2})\.(?P<year>\d{4})"
    r"(?:,?\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?"
)


def _match_date_time(value: str) -> dict[str, str | None] | None:
    match = _ISO_RE.fullmatch(value) or _POLISH_RE.fullmatch(value)
    return match.groupdict() if match else None


def _is_zero_date(parts: dict[str, str | None]) -> bool:
    # PrestaShop (MySQL) writes 0000-00-00 for "no date".
    return all(int(parts[key] or 0) == 0 for key in ("year", "month", "day"))


def _offset(text: str) -> tzinfo:
    if text in ("Z", "UTC", "GMT"):
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(text)
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)


def parse_datetime(text: str | None, *, default_tz: tzinfo) -> datetime | None:
    """An aware datetime from ISO 8601, Shopify or Polish forms; naive in default_tz.

    Accepts ``2024-03-01T12:30:00Z``, ``2024-03-01T12:30:00.123+01:00``,
    ``2024-03-01 12:30:00 +0100`` (Shopify), ``2024-03-01 12:30``, ``2024-03-01``,
    ``01.03.2024``, ``1.3.2024 12:30[:45]``. PrestaShop's ``0000-00-00`` (with or
    without a time) means no date: None.
    """
    value = clean_text(text)
    if not value:
        return None
    parts = _match_date_time(value)
    if parts is None:
        raise ValueError(_("Not a date and time: %(value)s") % {"value": text})
    if _is_zero_date(parts):
        return None
    fraction = parts.get("fraction") or ""
    try:
        zone = _offset(parts["offset"]) if parts.get("offset") else default_tz
        return datetime(
            int(parts["year"] or 0),
            int(parts["month"] or 0),
            int(parts["day"] or 0),
            int(parts["hour"] or 0),
            int(parts["minute"] or 0),
            int(parts["second"] or 0),
            int(fraction[:6].ljust(6, "0")),
            tzinfo=zone,
        )
    except ValueError:
        raise ValueError(
            _("Not a valid date and time: %(value)s") % {"value": text}
        ) from None


def parse_date(text: str | None) -> date | None:
    """A date from ``YYYY-MM-DD`` or ``DD.MM.YYYY``; ``0000-00-00`` is None.

    A midnight time without an offset (``1990-05-12 00:00:00``, as spreadsheets and
    databases export dates) is accepted; any other time of day is refused.
    """
    value = clean_text(text)
    if not value:
        return None
    parts = _match_date_time(value)
    if parts is None:
        raise ValueError(_("Not a date: %(value)s") % {"value": text})
    if _is_zero_date(parts):
        return None
    time_parts = (
        parts["hour"],
        parts["minute"],
        parts["second"],
        parts.get("fraction"),
    )
    if parts.get("offset") or any(int(part or 0) for part in time_parts):
        raise ValueError(
            _("A date without a time expected: %(value)s") % {"value": text}
        )
    try:
        return date(
            int(parts["year"] or 0), int(parts["month"] or 0), int(parts["day"] or 0)
        )
    except ValueError:
        raise ValueError(_("Not a valid date: %(value)s") % {"value": text}) from None
