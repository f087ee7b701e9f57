"""Marketing emails as MIME bytes, built directly for the SMTP fast path.

Django's EmailMultiAlternatives goes through the standard library's email
package, which parses, folds and encodes every header of every message: about
3 ms a message here, more than the SMTP conversation itself. A campaign's
messages all have one shape (multipart/alternative: text and HTML, UTF-8, quoted-
printable, the same sender), so the sender builds the bytes itself when the
backend is SMTP, and falls back to EmailMultiAlternatives for any other backend
(console, file, locmem, a provider's API) or an address that needs encoding.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from email.utils import formatdate

from django.core.mail.message import sanitize_address


def _qp(text: str) -> bytes:
    """Quoted-printable UTF-8 with CRLF line ends (lines of at most 76)."""
    body = text.replace("\r\n", "\n").replace("\r", "\n").encode()
    return binascii.b2a_qp(body, istext=True).replace(b"\n", b"\r\n")


def _header_text(value: str) -> str:
    """A header value as it is if ASCII, else RFC 2047 base64 encoded-words.

    The standard library's Header weighs quoted-printable against base64 letter
    by letter (half a millisecond a subject); base64 words of at most 45 bytes,
    split between characters, fold to lines under 78.
    """
    if value.isascii() and len(value) < 900:
        return value
    words, chunk = [], b""
    for character in value:
        encoded = character.encode()
        if len(chunk) + len(encoded) > 45:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    words.append(chunk)
    return "\r\n ".join(
        f"=?utf-8?b?{base64.b64encode(word).decode()}?=" for word in words
    )


def from_header(from_email: str, encoding: str = "utf-8") -> str:
    """The From header's value, encoded once per sender."""
    return sanitize_address(from_email, encoding)


def plain_address(address: str) -> bool:
    """Whether ``address`` goes into a header as it is (no encoding needed)."""
    return address.isascii() and "\n" not in address and "\r" not in address


def mime_bytes(
    *,
    subject: str,
    text: str,
    html: str,
    sender: str,
    to: str,
    message_id: str,
    unsubscribe: str,
) -> bytes:
    """One message, ready for ``smtplib.SMTP.sendmail``.

    ``sender`` is a ``from_header`` value and ``to`` a ``plain_address``. The
    boundary holds "=_", which quoted-printable never produces.
    """
    boundary = f"=_{secrets.token_hex(16)}"
    head = (
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
        "MIME-Version: 1.0\r\n"
        f"Subject: {_header_text(subject)}\r\n"
        f"From: {sender}\r\n"
        f"To: {to}\r\n"
        f"Date: {formatdate(localtime=True)}\r\n"
        f"Message-ID: {message_id}\r\n"
        f"List-Unsubscribe: <{unsubscribe}>\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        "\r\n"
    ).encode()
    part = (
        f"--{boundary}\r\n"
        'Content-Type: text/{kind}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    return b"".join(
        (
            head,
            part.format(kind="plain").encode(),
            _qp(text),
            b"\r\n",
            part.format(kind="html").encode(),
            _qp(html),
            f"\r\n--{boundary}--\r\n".encode(),
        )
    )
