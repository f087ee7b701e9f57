"""A staff member's second factor: an authenticator app and one-time recovery codes.

The app is django-otp's TOTP device (RFC 6238: six digits every 30 seconds), the
recovery codes its static device. A user has at most one confirmed app; enrolling
a new one replaces it. Both devices slow down guessing by themselves (each wrong
code doubles the wait before the next try is even checked).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

import qrcode
import qrcode.image.svg
from django.db import transaction
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

APP_NAME = "authenticator app"
RECOVERY_NAME = "recovery codes"
RECOVERY_CODE_COUNT = 10
# What a person may type around a code: spaces and dashes (codes are shown as
# "abcd-efgh" and "123 456").
_SEPARATORS = re.compile(r"[\s-]+")


@dataclass(frozen=True)
class Verification:
    """What checking a code found: the device it matched, or why not."""

    device: Device | None = None
    throttled: bool = False
    recovery_code: bool = False


def confirmed_app(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def has_second_factor(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def pending_app(user) -> TOTPDevice:
    """The app being enrolled: a new secret, kept until the first code confirms it."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(
        user=user, name=APP_NAME, confirmed=False
    )


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user).count()


def verify(user, code: str) -> Verification:
    """Check a code from the app (six digits) or a recovery code (used up)."""
    code = _SEPARATORS.sub("", code or "").lower()
    if code.isdigit():
        devices = list(TOTPDevice.objects.filter(user=user, confirmed=True))
        recovery = False
    else:
        devices = list(StaticDevice.objects.filter(user=user, confirmed=True))
        recovery = True
    throttled = False
    for device in devices:
        if not device.verify_is_allowed()[0]:
            throttled = True
        elif device.verify_token(code):
            return Verification(device=device, recovery_code=recovery)
    return Verification(throttled=throttled)


def confirm_app(device: TOTPDevice, code: str) -> Verification:
    """Check the first code of an app being enrolled."""
    if not device.verify_is_allowed()[0]:
        return Verification(throttled=True)
    code = _SEPARATORS.sub("", code or "")
    if code.isdigit() and device.verify_token(code):
        return Verification(device=device)
    return Verification()


@transaction.atomic
def enrol_app(device: TOTPDevice) -> list[str]:
    """Make a confirmed app the user's one app; returns new recovery codes."""
    TOTPDevice.objects.filter(user=device.user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return new_recovery_codes(device.user)


@transaction.atomic
def new_recovery_codes(user) -> list[str]:
    """Replace the user's recovery codes with new ones (the old stop working)."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_NAME)
    codes = []
    while len(codes) < RECOVERY_CODE_COUNT:
        code = StaticToken.random_token()
        if code not in codes:
            codes.append(code)
    StaticToken.objects.bulk_create(
        StaticToken(device=device, token=code) for code in codes
    )
    return [f"{code[:4]}-{code[4:]}" for code in codes]


@transaction.atomic
def reset(user) -> int:
    """Remove every second-factor device: the user enrols again at next sign-in."""
    deleted = 0
    for model in (TOTPDevice, StaticDevice):
        deleted += model.objects.filter(user=user).delete()[1].get(model._meta.label, 0)
    return deleted


def qr_code_data_uri(device: TOTPDevice) -> str:
    """The app's set-up link as an SVG QR code in a data: URI (an <img> source)."""
    svg = qrcode.make(
        device.config_url, image_factory=qrcode.image.svg.SvgPathImage, border=2
    ).to_string()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode()


def secret_for_typing(device: TOTPDevice) -> str:
    """The secret in base32, in groups of four, for apps set up by hand."""
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
