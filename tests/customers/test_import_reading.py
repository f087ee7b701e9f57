import codecs
import csv
import hashlib
import io
import random
import tracemalloc
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

from customers.importers.reading import (
    CHUNK_SIZE,
    CsvFormatError,
    clean_text,
    open_csv,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_decimal,
)


@pytest.fixture(autouse=True)
def _english():
    """The messages are checked in English (Polish is the default language)."""
    with translation.override("en"):
        yield


WARSAW = ZoneInfo("Europe/Warsaw")

# Every Polish letter, and the ones whose bytes differ between Windows-1250 and
# ISO-8859-2 (ś ź Ś Ź ą Ą) in first names, surnames and cities.
POLISH_TABLE = (
    "Imię;Nazwisko;Miasto;Kwota\r\n"
    "Łucja;Źdźbło-Świątek;Kraków;1 234,56\r\n"
    "Ścibor;Ąsik;Gdańsk;12,50\r\n"
    "Zażółć;gęślą jaźń;Łódź;0,99\r\n"
    "ĄĆĘŁŃÓŚŹŻ;ąćęłńóśźż;Świnoujście;-7,00\r\n"
)
POLISH_ROWS = [
    (2, ["Łucja", "Źdźbło-Świątek", "Kraków", "1 234,56"]),
    (3, ["Ścibor", "Ąsik", "Gdańsk", "12,50"]),
    (4, ["Zażółć", "gęślą jaźń", "Łódź", "0,99"]),
    (5, ["ĄĆĘŁŃÓŚŹŻ", "ąćęłńóśźż", "Świnoujście", "-7,00"]),
]
POLISH_HEADER = ["Imię", "Nazwisko", "Miasto", "Kwota"]


def write(tmp_path, data: bytes, name="export.csv"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_all(source):
    return [(line, list(row.values())) for line, row in source]


# --- Encodings -----------------------------------------------------------------------


def test_windows_1250_semicolon_file_with_polish_letters_and_decimal_commas(tmp_path):
    path = write(tmp_path, POLISH_TABLE.encode("cp1250"))

    source = open_csv(path)

    assert source.encoding == "cp1250"
    assert source.delimiter == ";"
    assert source.header == POLISH_HEADER
    assert read_all(source) == POLISH_ROWS
    amounts = [parse_decimal(row["Kwota"]) for _line, row in source]
    assert amounts == [
        Decimal("1234.56"),
        Decimal("12.50"),
        Decimal("0.99"),
        Decimal("-7.00"),
    ]


def test_the_same_table_in_iso_8859_2_is_detected_as_iso_8859_2(tmp_path):
    path = write(tmp_path, POLISH_TABLE.encode("iso-8859-2"))

    source = open_csv(path)

    assert source.encoding == "iso-8859-2"
    assert source.delimiter == ";"
    assert source.header == POLISH_HEADER
    assert read_all(source) == POLISH_ROWS


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        # Only ą/Ą tell the two apart when no byte in 0x80-0x9F occurs.
        ("imie;miasto\r\nAnna;Wąchock\r\n", "cp1250"),
        ("imie;miasto\r\nAnna;Wąchock\r\n", "iso-8859-2"),
        # ś is 0x9C in Windows-1250: a C1 control in ISO-8859-2.
        ("imie;miasto\r\nAnna;Śrem\r\n", "cp1250"),
        ("imie;miasto\r\nAnna;Śrem\r\n", "iso-8859-2"),
        # Windows-1250 punctuation in 0x80-0x9F (en dash, typographic quotes).
        ("imie;opis\r\nAnna;„Bank” – oddział\r\n", "cp1250"),
    ],
)
def test_single_byte_polish_encodings_are_told_apart(tmp_path, text, encoding):
    source = open_csv(write(tmp_path, text.encode(encoding)))

    assert source.encoding == encoding
    assert [row for _line, row in source][0]["imie"] == "Anna"
    assert read_all(source)[0][1][1] == text.split("\r\n")[1].split(";")[1]


def test_letters_common_to_both_encodings_read_back_the_same(tmp_path):
    # ł ó ę ż ń ć have the same bytes in both: either answer reads them correctly.
    text = "imie;miasto\nMałgorzata;Kłodzko\nŻaneta;Końskie\n"
    source = open_csv(write(tmp_path, text.encode("iso-8859-2")))

    assert source.encoding in ("cp1250", "iso-8859-2")
    assert read_all(source) == [
        (2, ["Małgorzata", "Kłodzko"]),
        (3, ["Żaneta", "Końskie"]),
    ]


def test_encoding_is_decided_from_the_whole_file_not_only_the_first_chunk(tmp_path):
    ascii_rows = "".join(f"klient{i};Warszawa\r\n" for i in range(10_000))
    text = "imie;miasto\r\n" + ascii_rows + "Świętosław;Ślęża\r\n"
    assert len(ascii_rows) > 2 * CHUNK_SIZE
    source = open_csv(write(tmp_path, text.encode("cp1250")))

    assert source.encoding == "cp1250"
    assert source.delimiter == ";"
    last_line, last_row = list(source)[-1]
    assert (last_line, last_row) == (10_002, {"imie": "Świętosław", "miasto": "Ślęża"})


def test_utf8_without_bom(tmp_path):
    path = write(tmp_path, POLISH_TABLE.encode("utf-8"))

    source = open_csv(path)

    assert source.encoding == "utf-8"
    assert source.header == POLISH_HEADER
    assert read_all(source) == POLISH_ROWS


def test_utf8_with_bom_has_no_bom_in_the_first_column_name(tmp_path):
    path = write(tmp_path, POLISH_TABLE.encode("utf-8-sig"))

    source = open_csv(path)

    assert source.encoding == "utf-8-sig"
    assert source.header[0] == "Imię"
    assert read_all(source) == POLISH_ROWS


def test_explicit_utf8_on_a_file_with_bom_still_strips_the_bom(tmp_path):
    source = open_csv(
        write(tmp_path, POLISH_TABLE.encode("utf-8-sig")), encoding="utf-8"
    )

    assert source.encoding == "utf-8"
    assert source.header == POLISH_HEADER


def test_utf8_character_cut_at_the_chunk_end_is_still_utf8(tmp_path):
    prefix = "imie,miasto\n" + "a" * (CHUNK_SIZE - len("imie,miasto\n") - 1)
    data = (prefix + "ż,Łódź\n").encode("utf-8")
    # The two bytes of ż straddle the first 64 KB chunk.
    assert data[CHUNK_SIZE - 1 : CHUNK_SIZE + 1] == "ż".encode()

    source = open_csv(write(tmp_path, data))

    assert source.encoding == "utf-8"
    assert list(source) == [
        (2, {"imie": "a" * (len(prefix) - 12) + "ż", "miasto": "Łódź"})
    ]


def test_explicit_encoding_skips_detection(tmp_path):
    # Detection would say UTF-8 (this is valid UTF-8); the caller knows better.
    data = "imie;miasto\nAnna;Łódź\n".encode()
    source = open_csv(write(tmp_path, data), encoding="latin-1")

    assert source.encoding == "latin-1"
    assert list(source)[0][1]["miasto"] == "Å\x81Ã³dÅº"


def test_wrong_explicit_encoding_fails_while_reading_with_a_line_number(tmp_path):
    ascii_rows = "".join(f"klient{i};Warszawa\n" for i in range(20_000))
    text = "imie;miasto\n" + ascii_rows + "Świętosław;Ślęża\n"
    source = open_csv(write(tmp_path, text.encode("cp1250")), encoding="utf-8")

    with pytest.raises(CsvFormatError) as caught:
        list(source)

    assert caught.value.code == "encoding"
    # The text layer decodes ahead: the reported line is at or a little before.
    assert 20_002 - 10_000 < caught.value.line_number <= 20_002


def test_wrong_explicit_encoding_in_the_header_fails_at_open(tmp_path):
    with pytest.raises(CsvFormatError) as caught:
        open_csv(write(tmp_path, POLISH_TABLE.encode("cp1250")), encoding="utf-8")

    assert caught.value.code == "encoding"
    assert caught.value.line_number == 1


def test_unknown_explicit_encoding_name(tmp_path):
    with pytest.raises(CsvFormatError) as caught:
        open_csv(write(tmp_path, b"a,b\n1,2\n"), encoding="no-such-codec")

    assert caught.value.code == "encoding"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(POLISH_TABLE.encode("utf-16"), id="utf-16 with BOM"),
        pytest.param(POLISH_TABLE.encode("utf-16-le"), id="utf-16-le without BOM"),
        pytest.param(POLISH_TABLE.encode("utf-16-be"), id="utf-16-be without BOM"),
        pytest.param(POLISH_TABLE.encode("utf-32"), id="utf-32"),
        pytest.param(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, id="png"
        ),
        pytest.param(random.Random(5).randbytes(4096), id="random bytes"),
        pytest.param(b"PK\x03\x04\x14\x00\x06\x00" + b"x" * 100, id="xlsx (zip)"),
        pytest.param(
            # Undefined in Windows-1250 (0x81) and a C1 control in ISO-8859-2.
            b"imie;miasto\nAnna;\x81\x90\x98\n",
            id="neither single-byte encoding",
        ),
        pytest.param(
            codecs.BOM_UTF8 + "imie;miasto\nAnna;Łódź\n".encode("cp1250"),
            id="utf-8 BOM but not utf-8",
        ),
    ],
)
def test_undecodable_files_are_refused(tmp_path, data):
    with pytest.raises(CsvFormatError) as caught:
        open_csv(write(tmp_path, data))

    assert caught.value.code == "encoding"
    assert isinstance(caught.value, ValueError)
    assert str(caught.value) == caught.value.message


# --- Delimiters and records -----------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_quoted_multiline_address_keeps_physical_line_numbers(tmp_path, newline):
    lines = [
        "email,name,address,city",
        'anna@example.com,Anna,"ul. Polna 1',
        "m. 2",
        'klatka ""B""",Kraków',
        "jan@example.com,Jan,ul. Długa 5,Gdańsk",
        "",
        'ola@example.com,"Nowak, Ola","Rynek 1',
        '",Toruń',
        "piotr@example.com,Piotr,,Łódź",
    ]
    path = write(tmp_path, (newline.join(lines) + newline).encode())

    source = open_csv(path)

    assert source.delimiter == ","
    assert [(line, row["email"]) for line, row in source] == [
        (2, "anna@example.com"),
        (5, "jan@example.com"),
        (7, "ola@example.com"),
        (9, "piotr@example.com"),
    ]
    rows = dict(source)
    expected_address = newline.join(["ul. Polna 1", "m. 2", 'klatka "B"'])
    assert rows[2]["address"] == expected_address
    assert rows[2]["city"] == "Kraków"
    assert rows[7] == {
        "email": "ola@example.com",
        "name": "Nowak, Ola",
        "address": "Rynek 1" + newline,
        "city": "Toruń",
    }


def test_multiline_header_counts_its_lines(tmp_path):
    path = write(tmp_path, b'"first\nname",email\nAnna,a@example.com\n')

    source = open_csv(path)

    assert source.header == ["first\nname", "email"]
    assert source.header_line == 1
    assert list(source) == [(3, {"first\nname": "Anna", "email": "a@example.com"})]


def test_tab_file(tmp_path):
    text = "Email\tFirst Name\tTotal Spent\na@example.com\tAnna\t1,234.50\n"
    source = open_csv(write(tmp_path, text.encode()))

    assert source.delimiter == "\t"
    assert list(source) == [
        (
            2,
            {"Email": "a@example.com", "First Name": "Anna", "Total Spent": "1,234.50"},
        )
    ]


def test_pipe_file(tmp_path):
    source = open_csv(write(tmp_path, b"a|b|c\n1,5|2;3|x\n"))

    assert source.delimiter == "|"
    assert list(source) == [(2, {"a": "1,5", "b": "2;3", "c": "x"})]


def test_semicolon_wins_over_commas_inside_values(tmp_path):
    # Two columns by comma on every line, four by semicolon: the wider split wins.
    text = "imie;adres, ulica;kwota;uwagi\nAnna;Polna 1;12,50;x\nJan;Długa 2;7,10;y\n"
    source = open_csv(write(tmp_path, text.encode()))

    assert source.delimiter == ";"
    assert source.header == ["imie", "adres, ulica", "kwota", "uwagi"]


def test_comma_file_with_a_quoted_semicolon_in_a_value(tmp_path):
    text = 'email,note\na@example.com,"x;y;z"\nb@example.com,ok\n'
    source = open_csv(write(tmp_path, text.encode()))

    assert source.delimiter == ","
    assert dict(source)[2]["note"] == "x;y;z"


def test_explicit_delimiter_wins(tmp_path):
    source = open_csv(write(tmp_path, b"a;b,c\n1;2,3\n"), delimiter=",")

    assert source.delimiter == ","
    assert source.header == ["a;b", "c"]
    assert list(source) == [(2, {"a;b": "1;2", "c": "3"})]


def test_explicit_delimiter_must_be_one_character(tmp_path):
    with pytest.raises(ValueError, match="single character"):
        open_csv(write(tmp_path, b"a,b\n"), delimiter=";;")


def test_single_column_file(tmp_path):
    source = open_csv(write(tmp_path, b"email\na@example.com\nb@example.com\n"))

    assert source.header == ["email"]
    assert [row["email"] for _line, row in source] == ["a@example.com", "b@example.com"]


def test_header_only_file_has_no_rows(tmp_path):
    source = open_csv(write(tmp_path, b"email;name\n"))

    assert source.header == ["email", "name"]
    assert list(source) == []


def test_header_names_are_stripped(tmp_path):
    source = open_csv(write(tmp_path, b" email ; First Name \n"))

    assert source.header == ["email", "First Name"]


def test_short_records_are_padded_and_blank_records_skipped(tmp_path):
    text = "a;b;c\n1;2\n\n;;\n  ;\t;\n4;5;6\n"
    source = open_csv(write(tmp_path, text.encode()))

    assert list(source) == [
        (2, {"a": "1", "b": "2", "c": ""}),
        (6, {"a": "4", "b": "5", "c": "6"}),
    ]


def test_trailing_delimiter_on_every_line_is_not_a_column(tmp_path):
    text = "a;b;\n1;2;\n3;4;;;\n"
    source = open_csv(write(tmp_path, text.encode()))

    assert source.header == ["a", "b"]
    assert list(source) == [(2, {"a": "1", "b": "2"}), (3, {"a": "3", "b": "4"})]


def test_leading_blank_lines_before_the_header(tmp_path):
    source = open_csv(write(tmp_path, b"\n;;\nemail;name\na@example.com;Anna\n"))

    assert source.header == ["email", "name"]
    assert source.header_line == 3
    assert list(source) == [(4, {"email": "a@example.com", "name": "Anna"})]


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n\r\n", b";;;\n;;\n", b"  \n"])
def test_empty_file(tmp_path, data):
    with pytest.raises(CsvFormatError) as caught:
        open_csv(write(tmp_path, data))

    assert caught.value.code == "empty"


@pytest.mark.parametrize(
    "header", ["email,name,email", "Email,name,email", "email,name, email "]
)
def test_duplicate_column_names(tmp_path, header):
    with pytest.raises(CsvFormatError) as caught:
        open_csv(write(tmp_path, f"{header}\na,b,c\n".encode()))

    assert caught.value.code == "header_duplicate"
    assert caught.value.line_number == 1
    assert "email" in caught.value.message.casefold()


def test_empty_column_name(tmp_path):
    with pytest.raises(CsvFormatError) as caught:
        open_csv(write(tmp_path, b"email,,name\na,b,c\n"))

    assert caught.value.code == "header_empty"
    assert "2" in caught.value.message


def test_record_longer_than_the_header(tmp_path):
    text = 'a,b\n1,2\n"x\ny",2\n3,4,5\n6,7\n'
    source = open_csv(write(tmp_path, text.encode()))
    rows = source.rows()

    assert next(rows) == (2, {"a": "1", "b": "2"})
    assert next(rows) == (3, {"a": "x\ny", "b": "2"})
    with pytest.raises(CsvFormatError) as caught:
        next(rows)

    assert caught.value.code == "too_many_fields"
    assert caught.value.line_number == 5
    assert "5" in caught.value.message


def test_malformed_record_is_reported_with_its_line(tmp_path):
    old_limit = csv.field_size_limit()
    csv.field_size_limit(10)
    try:
        source = open_csv(write(tmp_path, b"a,b\n1,2\n3,01234567890123\n"))
        with pytest.raises(CsvFormatError) as caught:
            list(source)
    finally:
        csv.field_size_limit(old_limit)

    assert caught.value.code == "malformed"
    assert caught.value.line_number == 3


# --- Sources -------------------------------------------------------------------------


def test_sha256_is_the_whole_files_digest(tmp_path):
    data = POLISH_TABLE.encode("cp1250")
    source = open_csv(write(tmp_path, data))

    assert source.sha256 == hashlib.sha256(data).hexdigest()
    assert source.size == len(data)


def test_binary_file_object_is_read_from_its_start_and_left_open(tmp_path):
    data = POLISH_TABLE.encode("cp1250")
    stream = io.BytesIO(data)
    stream.seek(17)

    source = open_csv(stream)

    assert source.sha256 == hashlib.sha256(data).hexdigest()
    assert read_all(source) == POLISH_ROWS
    # Iterating again reads the file again.
    assert read_all(source) == POLISH_ROWS
    assert not stream.closed


def test_django_uploaded_file(tmp_path):
    upload = SimpleUploadedFile("klienci.csv", POLISH_TABLE.encode("utf-8-sig"))

    source = open_csv(upload)

    assert source.encoding == "utf-8-sig"
    assert read_all(source) == POLISH_ROWS
    assert not upload.closed


def test_opened_binary_file_from_disk(tmp_path):
    path = write(tmp_path, POLISH_TABLE.encode("iso-8859-2"))
    with path.open("rb") as handle:
        source = open_csv(handle)
        assert source.encoding == "iso-8859-2"
        assert read_all(source) == POLISH_ROWS
        assert not handle.closed


def test_text_file_object_is_refused(tmp_path):
    with pytest.raises(TypeError):
        open_csv(io.StringIO("a,b\n1,2\n"))


def test_non_seekable_file_is_refused():
    class Pipe(io.RawIOBase):
        def readable(self):
            return True

        def seekable(self):
            return False

    with pytest.raises(TypeError, match="seekable"):
        open_csv(Pipe())


def test_large_file_streams_with_bounded_memory(tmp_path):
    path = tmp_path / "large.csv"
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        header = "Email;Imię;Nazwisko;Miasto;Kwota;Uwagi\r\n".encode("cp1250")
        handle.write(header)
        digest.update(header)
        for start in range(0, 200_000, 1_000):
            block = "".join(
                f'klient{i}@example.com;Łucja;Źdźbło;Świdnik;{i},50;"wiersz 1\r\n'
                f'wiersz 2"\r\n'
                for i in range(start, start + 1_000)
            ).encode("cp1250")
            handle.write(block)
            digest.update(block)
    assert path.stat().st_size > 15_000_000

    tracemalloc.start()
    try:
        source = open_csv(path)
        count = 0
        last = None
        for line_number, row in source:
            count += 1
            last = (line_number, row)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 3 * 1024 * 1024
    assert count == 200_000
    assert source.encoding == "cp1250"
    assert source.delimiter == ";"
    assert source.sha256 == digest.hexdigest()
    assert last == (
        400_000,
        {
            "Email": "klient199999@example.com",
            "Imię": "Łucja",
            "Nazwisko": "Źdźbło",
            "Miasto": "Świdnik",
            "Kwota": "199999,50",
            "Uwagi": "wiersz 1\r\nwiersz 2",
        },
    )


# --- clean_text ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'00-950", "00-950"),
        ("'+48601234567", "+48601234567"),
        ("  '5123456789  ", "5123456789"),
        ("O'Brien", "O'Brien"),
        ("d'Artagnan ", "d'Artagnan"),
        ("\u00a0Anna\u00a0", "Anna"),
        ("'", ""),
        ("", ""),
        (None, ""),
        ("  ", ""),
        ("''quoted", "'quoted"),
    ],
)
def test_clean_text(text, expected):
    assert clean_text(text) == expected


# --- parse_bool ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["yes", "YES", "Yes", "true", "TRUE", "1", "y", "Y", "tak", "Tak", "t", "T"]
    + ["PRAWDA", " yes ", "'1"],
)
def test_parse_bool_true(text):
    assert parse_bool(text) is True


@pytest.mark.parametrize(
    "text",
    ["no", "NO", "false", "False", "0", "n", "N", "nie", "NIE", "f", "FAŁSZ", " nie "],
)
def test_parse_bool_false(text):
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["", "  ", None, "'"])
def test_parse_bool_empty(text):
    assert parse_bool(text) is None


@pytest.mark.parametrize(
    "text", ["maybe", "2", "-1", "yes!", "tak nie", "on", "subscribed", "1.0"]
)
def test_parse_bool_rejects(text):
    with pytest.raises(ValueError, match=text):
        parse_bool(text)


# --- parse_decimal -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1234.56", "1234.56"),
        ("1234,56", "1234.56"),
        ("1 234,56", "1234.56"),
        ("1\u00a0234,56", "1234.56"),
        ("1\u202f234\u202f567,5", "1234567.5"),
        ("1 234,56 zł", "1234.56"),
        ("1 234,56zł", "1234.56"),
        ("12,50 ZŁ", "12.50"),
        ("12 zl", "12"),
        ("1.234,56", "1234.56"),
        ("1.234.567", "1234567"),
        ("1,234.56", "1234.56"),
        ("1,234,567", "1234567"),
        ("PLN 12,50", "12.50"),
        ("12.50 PLN", "12.50"),
        ("12,5", "12.5"),
        ("12", "12"),
        ("0", "0"),
        ("0,00", "0.00"),
        ("-12,50", "-12.50"),
        ("−12,50", "-12.50"),
        ("+3", "3"),
        ("-1 234,56 zł", "-1234.56"),
        ("PLN -12,50", "-12.50"),
        ("€ 9.99", "9.99"),
        ("$1,234.50", "1234.50"),
        ("'1234.56", "1234.56"),
        ("  7,1  ", "7.1"),
        # A single separator is the decimal one.
        ("1,234", "1.234"),
        ("1.234", "1.234"),
    ],
)
def test_parse_decimal_accepts(text, expected):
    result = parse_decimal(text)

    assert result == Decimal(expected)
    assert str(result) == expected


@pytest.mark.parametrize("text", ["", "   ", None, "'"])
def test_parse_decimal_empty(text):
    assert parse_decimal(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "1,2,3",
        "1.2.3",
        "12 34",
        "1 23,4",
        "1.234.56",
        "1,234,56",
        "1.234,567.8",
        "1 234.567,8",
        "12,",
        ",5",
        ".5",
        "1e5",
        "NaN",
        "Infinity",
        "abc",
        "12 zł 50",
        "zł",
        "PLN",
        "--5",
        "5-",
        "0x10",
        "1_000",
        "12 abc",
    ],
)
def test_parse_decimal_rejects(text):
    with pytest.raises(ValueError, match="number"):
        parse_decimal(text)


# --- parse_datetime ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T12:30:00Z", datetime(2024, 3, 1, 12, 30, tzinfo=UTC)),
        ("2024-03-01T12:30:00+01:00", datetime(2024, 3, 1, 11, 30, tzinfo=UTC)),
        ("2024-03-01T12:30:00-0500", datetime(2024, 3, 1, 17, 30, tzinfo=UTC)),
        ("2024-03-01T12:30:00+02", datetime(2024, 3, 1, 10, 30, tzinfo=UTC)),
        ("2024-03-01 12:30:00 +0100", datetime(2024, 3, 1, 11, 30, tzinfo=UTC)),
        ("2024-07-01 12:30:00 +0200", datetime(2024, 7, 1, 10, 30, tzinfo=UTC)),
        ("2024-03-01 12:30:00 UTC", datetime(2024, 3, 1, 12, 30, tzinfo=UTC)),
        (
            "2024-03-01T12:30:00.123456Z",
            datetime(2024, 3, 1, 12, 30, 0, 123456, tzinfo=UTC),
        ),
        ("2024-03-01T12:30:00.5Z", datetime(2024, 3, 1, 12, 30, 0, 500000, tzinfo=UTC)),
        # Naive values are Warsaw time: CET in March, CEST in July.
        ("2024-03-01 12:30:00", datetime(2024, 3, 1, 11, 30, tzinfo=UTC)),
        ("2024-07-01T12:30:00", datetime(2024, 7, 1, 10, 30, tzinfo=UTC)),
        ("2024-03-01 12:30", datetime(2024, 3, 1, 11, 30, tzinfo=UTC)),
        ("2024-03-01", datetime(2024, 2, 29, 23, 0, tzinfo=UTC)),
        ("01.03.2024", datetime(2024, 2, 29, 23, 0, tzinfo=UTC)),
        ("1.3.2024", datetime(2024, 2, 29, 23, 0, tzinfo=UTC)),
        ("01.03.2024 12:30", datetime(2024, 3, 1, 11, 30, tzinfo=UTC)),
        ("01.03.2024 12:30:45", datetime(2024, 3, 1, 11, 30, 45, tzinfo=UTC)),
        ("01.07.2024 9:05", datetime(2024, 7, 1, 7, 5, tzinfo=UTC)),
        ("'2024-03-01", datetime(2024, 2, 29, 23, 0, tzinfo=UTC)),
    ],
)
def test_parse_datetime_accepts(text, expected):
    result = parse_datetime(text, default_tz=WARSAW)

    assert result == expected
    assert result.tzinfo is not None


def test_parse_datetime_keeps_the_given_offset_and_uses_default_tz_for_naive():
    with_offset = parse_datetime("2024-03-01 12:30:00 +0100", default_tz=WARSAW)
    naive = parse_datetime("2024-03-01 12:30:00", default_tz=WARSAW)
    in_utc = parse_datetime("2024-03-01 12:30:00", default_tz=UTC)

    assert with_offset.utcoffset() == timedelta(hours=1)
    assert with_offset.tzinfo == timezone(timedelta(hours=1))
    assert naive.tzinfo is WARSAW
    assert in_utc == datetime(2024, 3, 1, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    ["", "  ", None, "0000-00-00", "0000-00-00 00:00:00", "'0000-00-00", "00.00.0000"],
)
def test_parse_datetime_empty_and_prestashop_zero_dates(text):
    assert parse_datetime(text, default_tz=WARSAW) is None


@pytest.mark.parametrize(
    "text",
    [
        "2024-02-30",
        "2024-13-01",
        "31.04.2024",
        "2024-03-01 24:00",
        "2024-03-01 12:60",
        "2024-03-01T12:30:00+25:00",
        "03/01/2024",
        "01-03-2024",
        "2024/03/01",
        "20240301",
        "2024-W09-5",
        "1 marca 2024",
        "yesterday",
        "2024-3-1",
        "01.03.24",
        "2024-03-01T12",
        "2024-03-01 +0100",
        "0000-01-01",
        "12:30",
    ],
)
def test_parse_datetime_rejects(text):
    with pytest.raises(ValueError, match="date"):
        parse_datetime(text, default_tz=WARSAW)


# --- parse_date ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1990-05-12", date(1990, 5, 12)),
        ("12.05.1990", date(1990, 5, 12)),
        ("2.5.1990", date(1990, 5, 2)),
        ("1990-05-12 00:00:00", date(1990, 5, 12)),
        ("1990-05-12T00:00", date(1990, 5, 12)),
        ("12.05.1990 00:00", date(1990, 5, 12)),
        ("2024-02-29", date(2024, 2, 29)),
        (" '1990-05-12 ", date(1990, 5, 12)),
    ],
)
def test_parse_date_accepts(text, expected):
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    "text", ["", None, "  ", "0000-00-00", "0000-00-00 00:00:00", "00.00.0000"]
)
def test_parse_date_empty_and_zero_dates(text):
    assert parse_date(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "1990-05-12 13:45:00",
        "1990-05-12T00:00:00+02:00",
        "1990-05-12T00:00:00Z",
        "2023-02-29",
        "32.01.1990",
        "05/12/1990",
        "1990",
        "12.05.90",
        "jutro",
    ],
)
def test_parse_date_rejects(text):
    with pytest.raises(ValueError, match="date"):
        parse_date(text)


# --- in_background -------------------------------------------------------------------


def test_in_background_yields_everything_in_order():
    from customers.importers.reading import in_background

    assert list(in_background(iter(range(1000)), depth=3)) == list(range(1000))


def test_in_background_raises_the_producers_error_where_it_happened():
    from customers.importers.reading import in_background

    def items():
        yield 1
        yield 2
        raise CsvFormatError("broken", code="broken")

    seen = []
    produced = in_background(items())
    seen.append(next(produced))
    seen.append(next(produced))
    with pytest.raises(CsvFormatError, match="broken"):
        next(produced)
    assert seen == [1, 2]


def test_in_background_stops_the_producer_when_the_loop_ends_early():
    import threading

    from customers.importers.reading import in_background

    produced = []

    def items():
        for number in range(10_000):
            produced.append(number)
            yield number

    for item in in_background(items(), depth=2):
        if item == 5:
            break
    assert len(produced) < 20
    assert not any(t.name == "import-reader" for t in threading.enumerate())


def test_in_background_produces_in_the_callers_language():
    from django.utils import translation

    from customers.importers.reading import in_background

    def items():
        yield translation.get_language()

    with translation.override("en"):
        assert list(in_background(items())) == ["en"]
    with translation.override("pl"):
        assert list(in_background(items())) == ["pl"]
