"""SMS: how many parts a text costs, and the backends that send it.

Length (GSM 03.38, 3GPP TS 23.038). A text made only of the GSM-7 alphabet fits
160 units in one SMS; a longer one is sent in parts of 153 (the rest of each part
carries the concatenation header). The characters of the extension table
(``^ { } [ ~ ] | €``, the backslash and form feed) take two units each: an escape
and the character. One character outside the alphabet switches the whole
message to UCS-2: 70 UTF-16 code units in one SMS, 67 per part (an emoji is two).
Polish letters are outside it (the table has é, ö, ü, ä, ñ, ... but no ą, ę, ó,
ł, ...), so "Zażółć" alone costs a UCS-2 message; ``sms_transliterate`` is the
"send without Polish characters" option. Parts are counted the way phones and
gateways cut them: an escape pair and a surrogate pair never straddle two parts,
so a character that does not fit whole starts the next part.
static/js/sms-counter.js counts the same way in the browser (a test holds the two
to each other).

Sending. Like Django's email backends: ``get_sms_backend()`` builds the class
named by settings.SMS_BACKEND; ``send_messages`` takes SmsMessage objects and
returns one SmsResult per message, in order, and never raises for one bad
message (a malformed number, a refusal, a network error): the result says what
happened. ``retry`` on a result marks a failure worth trying again later (the
gateway did not answer, or asked us to slow down); ``duplicate`` marks a message
the gateway already had (see SmsapiBackend). The backends:

- ConsoleBackend prints messages (the default in development);
- FileBackend appends JSON lines to settings.SMS_FILE_PATH (demos, end-to-end
  tests);
- LocmemBackend appends to the module-level ``outbox`` (tests; clear it between
  tests);
- SmsapiBackend posts to an SMSAPI.pl-compatible HTTP gateway (production).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Literal, Self

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux; one writer is then assumed
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

# --- Length ----------------------------------------------------------------------

# The GSM 03.38 basic table in code order, without 0x1B (the escape to the
# extension table, not a character of its own).
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each is sent as the escape and the character (2 septets).
GSM7_EXTENSION = "\f^{}\\[~]|€"
_GSM7_BASIC = frozenset(GSM7_BASIC)
_GSM7_EXTENSION = frozenset(GSM7_EXTENSION)

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

# A merge tag ({{ first_name }}), written as campaigns.rendering reads it: its value
# is only known per customer.
MERGE_TAG = re.compile(r"\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\}")
DEFAULT_TAG_LENGTH = 10

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class SmsLength:
    """What a text costs: its encoding, units counted, parts and room left."""

    encoding: Encoding
    characters: int  # GSM-7 septets or UTF-16 code units
    parts: int
    per_part: int  # 160/70 for one part, 153/67 for each of several
    remaining: int  # units still free in the last part

    @property
    def limit(self) -> int:
        """Units the parts used so far hold at most (160, 306, 459, ... for GSM-7)."""
        return self.per_part * max(self.parts, 1)


def sms_is_gsm7(text: str) -> bool:
    """True if every character of ``text`` is in the GSM-7 alphabet."""
    return all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in text)


def sms_non_gsm7(text: str) -> list[str]:
    """The characters of ``text`` outside the GSM-7 alphabet, once each, in order."""
    return list(
        dict.fromkeys(
            c for c in text if c not in _GSM7_BASIC and c not in _GSM7_EXTENSION
        )
    )


def sms_parts(text: str, *, tag_length: int | None = None) -> SmsLength:
    """The encoding, length and number of parts of ``text`` sent as one SMS.

    With ``tag_length`` every merge tag counts as that many GSM-7 characters (an
    estimate for a template; a rendered message is counted without it).
    """
    if tag_length is not None:
        text = MERGE_TAG.sub("x" * max(tag_length, 0), text)
    if sms_is_gsm7(text):
        encoding: Encoding = "GSM-7"
        single, multi = GSM7_SINGLE, GSM7_PART
        units = [2 if c in _GSM7_EXTENSION else 1 for c in text]
    else:
        encoding = "UCS-2"
        single, multi = UCS2_SINGLE, UCS2_PART
        units = [2 if ord(c) > 0xFFFF else 1 for c in text]
    total = sum(units)
    if total <= single:
        return SmsLength(
            encoding=encoding,
            characters=total,
            parts=1 if total else 0,
            per_part=single,
            remaining=single - total,
        )
    parts, used = 1, 0
    for size in units:
        # An escape or surrogate pair is never cut: it starts the next part whole.
        if used + size > multi:
            parts, used = parts + 1, 0
        used += size
    return SmsLength(
        encoding=encoding,
        characters=total,
        parts=parts,
        per_part=multi,
        remaining=multi - used,
    )


# Letters and punctuation a Polish text brings that the GSM-7 alphabet lacks. The
# typographic quotes and dashes matter as much as the letters: one „ is enough to
# make the whole message UCS-2.
_TRANSLITERATION = str.maketrans(
    {
        "ą": "a",
        "ć": "c",
        "ę": "e",
        "ł": "l",
        "ń": "n",
        "ó": "o",
        "ś": "s",
        "ź": "z",
        "ż": "z",
        "Ą": "A",
        "Ć": "C",
        "Ę": "E",
        "Ł": "L",
        "Ń": "N",
        "Ó": "O",
        "Ś": "S",
        "Ź": "Z",
        "Ż": "Z",
        "„": '"',
        "”": '"',
        "“": '"',
        "«": '"',
        "»": '"',
        "‚": "'",
        "‘": "'",
        "’": "'",
        "–": "-",
        "—": "-",
        "‑": "-",
        "…": "...",
        "\u00a0": " ",
        "\u202f": " ",
        "\t": " ",
    }
)


def sms_transliterate(text: str) -> str:
    """``text`` with Polish letters and typography replaced by GSM-7 look-alikes.

    ą becomes a, ł becomes l, „” become ", – becomes -, and so on; other accented
    letters outside GSM-7 lose their accent (č becomes c) while the GSM-7 ones (é,
    ü, ...) stay. What has no GSM-7 form (an emoji) is left as it is.
    """
    text = text.translate(_TRANSLITERATION)
    if sms_is_gsm7(text):
        return text
    out = []
    for char in text:
        if char in _GSM7_BASIC or char in _GSM7_EXTENSION:
            out.append(char)
            continue
        base = "".join(
            c
            for c in unicodedata.normalize("NFKD", char)
            if not unicodedata.combining(c)
        )
        out.append(base if base and sms_is_gsm7(base) else char)
    return "".join(out)


def sms_counter_attrs(*, tag_length: int = DEFAULT_TAG_LENGTH) -> dict[str, str]:
    """The translated data attributes of the element sms-counter.js writes into.

    Render them with ``django.forms.utils.flatatt``; see the top of
    static/js/sms-counter.js for what each one does.
    """

    def summary(n: int) -> str:
        return ngettext(
            "{characters} / {limit} · {parts} SMS · {encoding}",
            "{characters} / {limit} · {parts} SMS · {encoding}",
            n,
        )

    # One sample count per plural category the browser may ask for (Intl.PluralRules):
    # 1 is "one", 2 "few" and 5 "many" in Polish; 5 is "other" in English.
    return {
        "data-format": summary(5),
        "data-format-one": summary(1),
        "data-format-few": summary(2),
        "data-format-many": summary(5),
        "data-format-other": summary(5),
        "data-tag-length": str(tag_length),
        "data-label-tags": ngettext(
            "Each merge tag is counted as %(length)s character; the real length "
            "depends on the customer.",
            "Each merge tag is counted as %(length)s characters; the real length "
            "depends on the customer.",
            tag_length,
        )
        % {"length": tag_length},
        "data-label-unicode": _(
            "Not in the GSM alphabet: {chars}. One SMS then holds 70 characters "
            "instead of 160."
        ),
    }


# --- Messages and results ----------------------------------------------------------

E164 = re.compile(r"\+[1-9]\d{6,14}")


@dataclass(frozen=True)
class SmsMessage:
    """One text to one phone number (E.164, "+48600100200")."""

    to: str
    text: str
    # Ours, unique per message (the delivery): the gateway's duplicate guard. ""
    # for none.
    reference: str


@dataclass(frozen=True)
class SmsResult:
    """What became of one message."""

    ok: bool
    message_id: str = ""
    error: str = ""
    # Failed for now (no answer, overloaded gateway): worth sending again later.
    retry: bool = False
    # The gateway already had a message with this reference: it was sent before.
    duplicate: bool = False


def _refusal(message: SmsMessage) -> SmsResult | None:
    """A failed result for a message no backend may send, else None."""
    if not E164.fullmatch(message.to or ""):
        return SmsResult(
            ok=False,
            error=_("Not a phone number in international format: %(to)s")
            % {"to": message.to},
        )
    if not message.text.strip():
        return SmsResult(ok=False, error=_("The message is empty."))
    return None


# --- Backends -------------------------------------------------------------------------


class BaseSmsBackend:
    """Sends SMS messages; use as a context manager to keep one connection open."""

    def open(self) -> bool:
        """Open the connection; True if this call opened it (and must close it)."""
        return False

    def close(self) -> None:
        """Close the connection; safe to call when none is open."""

    def __enter__(self) -> Self:
        try:
            self.open()
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send_messages(self, messages: Sequence[SmsMessage]) -> list[SmsResult]:
        """Send ``messages``: a result each, in order; one bad message never raises."""
        if not messages:
            return []
        opened = self.open()
        try:
            return [_refusal(m) or self.send_message(m) for m in messages]
        finally:
            if opened:
                self.close()

    def send_message(self, message: SmsMessage) -> SmsResult:
        """Send one well-formed message (number and text already checked)."""
        raise NotImplementedError


def get_sms_backend(path: str | None = None, **kwargs: Any) -> BaseSmsBackend:
    """An instance of the backend at ``path`` (default settings.SMS_BACKEND)."""
    return import_string(path or settings.SMS_BACKEND)(**kwargs)


class ConsoleBackend(BaseSmsBackend):
    """Writes each message to ``stream`` (standard output by default)."""

    def __init__(self, *, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self._lock = threading.RLock()

    def send_message(self, message: SmsMessage) -> SmsResult:
        length = sms_parts(message.text)
        stream = self.stream or sys.stdout
        with self._lock:
            stream.write(
                f"SMS to {message.to} · ref {message.reference or '-'} · "
                f"{length.parts} SMS · {length.encoding}\n{message.text}\n"
                f"{'-' * 79}\n"
            )
            stream.flush()
        return SmsResult(ok=True, message_id=f"console-{uuid.uuid4().hex}")


class FileBackend(BaseSmsBackend):
    """Appends each message as a JSON line to ``file_path`` (settings.SMS_FILE_PATH).

    Several workers may append to one file: each line is written whole, under an
    exclusive lock.
    """

    def __init__(self, *, file_path: str | Path | None = None) -> None:
        self.file_path = Path(file_path or settings.SMS_FILE_PATH)
        self._file: IO[str] | None = None

    def open(self) -> bool:
        if self._file is not None:
            return False
        self.file_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.file_path.open("a", encoding="utf-8")
        return True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def send_message(self, message: SmsMessage) -> SmsResult:
        opened = self.open()
        try:
            assert self._file is not None  # noqa: S101 - open() set it
            length = sms_parts(message.text)
            message_id = uuid.uuid4().hex
            line = json.dumps(
                {
                    "id": message_id,
                    "to": message.to,
                    "text": message.text,
                    "reference": message.reference,
                    "encoding": length.encoding,
                    "parts": length.parts,
                    "sent_at": timezone.now().isoformat(),
                },
                ensure_ascii=False,
            )
            if fcntl is not None:
                fcntl.flock(self._file, fcntl.LOCK_EX)
            try:
                self._file.write(line + "\n")
                self._file.flush()
            finally:
                if fcntl is not None:
                    fcntl.flock(self._file, fcntl.LOCK_UN)
            return SmsResult(ok=True, message_id=message_id)
        finally:
            if opened:
                self.close()


# Messages LocmemBackend "sent", oldest first. Tests clear it (outbox.clear()); the
# list object stays the same, so ``from campaigns.sms import outbox`` keeps working.
outbox: list[SmsMessage] = []


class LocmemBackend(BaseSmsBackend):
    """Keeps messages in ``campaigns.sms.outbox``; numbers in ``rejected`` fail.

    A test makes the gateway refuse a number with
    ``LocmemBackend.rejected.add("+48600100200")`` (and discards it afterwards).
    """

    rejected: ClassVar[set[str]] = set()

    def send_message(self, message: SmsMessage) -> SmsResult:
        if message.to in self.rejected:
            return SmsResult(
                ok=False,
                error=_("The test backend refuses %(to)s.") % {"to": message.to},
            )
        outbox.append(message)
        return SmsResult(ok=True, message_id=f"locmem-{len(outbox)}")


class SmsapiBackend(BaseSmsBackend):
    """An SMSAPI.pl-compatible HTTP gateway (settings.SMS_GATEWAY_*).

    One POST per message to SMS_GATEWAY_URL with ``Authorization: Bearer <token>``
    and the form fields to (digits, no "+"), message, from (SMS_SENDER_NAME, when
    set), format=json, encoding=utf-8 (of the request; the gateway picks GSM-7 or
    UCS-2 itself) and, for a message with a reference, idx=<reference> and
    check_idx=1.

    Why idx: a worker may die after the gateway accepted a message and before our
    transaction recorded it; the delivery then looks unsent and is sent again.
    With check_idx=1 the gateway refuses a second message with the same idx
    (error 53), so the customer gets one SMS; that refusal comes back as
    ``SmsResult(ok=True, duplicate=True)``, because the message did go out. For
    this to hold the reference must be unique for the whole gateway account, for
    ever: a delivery's id, prefixed by something that tells this installation
    apart if the account is shared (a reused reference would be taken for a
    duplicate and silently not sent). For the same reason a timeout is a failure
    to ``retry``: the gateway may or may not have the message, and sending again
    cannot send it twice.

    Timeouts: 5 s to connect, 15 s to read. One requests Session (one connection
    pool) per open().
    """

    DUPLICATE_IDX = 53
    # The gateway's own failures and throttling: the same request may pass later.
    TEMPORARY_ERRORS = frozenset({201, 202, 203, 999})
    FAILED_STATUSES = frozenset(
        {"FAILED", "REJECTED", "UNDELIVERED", "EXPIRED", "NOT_FOUND", "STOP"}
    )

    def __init__(
        self,
        *,
        url: str | None = None,
        token: str | None = None,
        sender: str | None = None,
        timeout: tuple[float, float] = (5, 15),
    ) -> None:
        self.url = url or settings.SMS_GATEWAY_URL
        self.token = token if token is not None else settings.SMS_GATEWAY_TOKEN
        self.sender = sender if sender is not None else settings.SMS_SENDER_NAME
        self.timeout = timeout
        if not self.url or not self.token:
            raise ImproperlyConfigured(
                "SmsapiBackend needs SMS_GATEWAY_URL and SMS_GATEWAY_TOKEN."
            )
        self.session: requests.Session | None = None

    def open(self) -> bool:
        if self.session is not None:
            return False
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {self.token}", "User-Agent": "Kartoteka"}
        )
        return True

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def fields(self, message: SmsMessage) -> dict[str, str]:
        """The form fields of the request that sends ``message``."""
        fields = {
            "to": message.to.removeprefix("+"),
            "message": message.text,
            "format": "json",
            "encoding": "utf-8",
        }
        if self.sender:
            fields["from"] = self.sender
        if message.reference:
            fields["idx"] = message.reference
            fields["check_idx"] = "1"
        return fields

    def send_message(self, message: SmsMessage) -> SmsResult:
        opened = self.open()
        try:
            assert self.session is not None  # noqa: S101 - open() set it
            response = self.session.post(
                self.url,
                data=self.fields(message),
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            return self._temporary(
                message,
                _(
                    "The SMS gateway did not answer in time (it may have the "
                    "message; sending again will not send it twice)."
                ),
            )
        except requests.RequestException as error:
            return self._temporary(
                message,
                _("The SMS gateway could not be reached: %(error)s") % {"error": error},
            )
        finally:
            if opened:
                self.close()
        return self._result(message, response)

    def _temporary(self, message: SmsMessage, error: str) -> SmsResult:
        logger.warning("SMS %s to the gateway failed: %s", message.reference, error)
        return SmsResult(ok=False, error=error, retry=True)

    def _result(self, message: SmsMessage, response: requests.Response) -> SmsResult:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        status = response.status_code
        if "error" in body:
            return self._error(message, body, status)
        if status >= 500 or status == 429:
            return self._temporary(
                message,
                _("The SMS gateway answered HTTP %(status)s: %(text)s")
                % {"status": status, "text": response.text[:200]},
            )
        items = body.get("list")
        item = items[0] if isinstance(items, list) and items else None
        if status != 200 or not isinstance(item, dict) or not item.get("id"):
            # Not an answer we know: whether the gateway has the message is unknown,
            # and the idx guard makes sending it again safe.
            return self._temporary(
                message,
                _("The SMS gateway answered HTTP %(status)s: %(text)s")
                % {"status": status, "text": response.text[:200]},
            )
        item_status = str(item.get("status", "")).upper()
        if item_status in self.FAILED_STATUSES:
            return SmsResult(
                ok=False,
                message_id=str(item["id"]),
                error=_("The SMS gateway refused the message (%(status)s).")
                % {"status": item_status},
            )
        return SmsResult(ok=True, message_id=str(item["id"]))

    def _error(self, message: SmsMessage, body: dict, status: int) -> SmsResult:
        code = body.get("error")
        text = str(body.get("message") or "")
        invalid = body.get("invalid_numbers")
        if isinstance(invalid, list) and invalid and isinstance(invalid[0], dict):
            detail = invalid[0].get("message")
            if detail and detail not in text:
                text = f"{text} ({detail})" if text else str(detail)
        if code == self.DUPLICATE_IDX and message.reference:
            logger.info("SMS %s: the gateway already had it.", message.reference)
            return SmsResult(ok=True, duplicate=True)
        error = _("SMS gateway error %(code)s: %(message)s") % {
            "code": code,
            "message": text,
        }
        if code in self.TEMPORARY_ERRORS or status >= 500 or status == 429:
            return self._temporary(message, error)
        return SmsResult(ok=False, error=error)
