"""Staff sign-in in tests: both factors, as every staff page requires.

``StaffClient.force_login`` signs in with the password step and the second factor
(a confirmed authenticator app of the user's), so the thousands of page tests need
no second-factor set-up of their own; ``second_factor=False`` stops after the
password, as a person who has not yet given the code. Browser tests sign in through
the real pages with :func:`press_sign_in`, typing the app's current code.
"""

from __future__ import annotations

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice


def app_device(user) -> TOTPDevice:
    """The user's confirmed authenticator app (made if there is none)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(
        user=user, name="authenticator app", confirmed=True
    )


def totp_code(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The code the app shows now (or ``steps_ahead`` 30-second steps later)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = totp.time + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


class StaffClient(Client):
    def force_login(self, user, backend=None, *, second_factor: bool = True):
        super().force_login(user, backend)
        if second_factor:
            session = self.session
            session[DEVICE_ID_SESSION_KEY] = app_device(user).persistent_id
            session.save()


def press_sign_in(page, username: str) -> None:
    """On the sign-in page with the password typed: sign in, then give the code.

    The user's authenticator app is made first (as if enrolled earlier), so the
    second step asks for its code, which is typed as a person would.
    """
    import re

    from django.contrib.auth import get_user_model

    device = app_device(get_user_model().objects.get_by_natural_key(username))
    page.locator("form[action$='/login/'] button[type=submit]").click()
    page.wait_for_url(re.compile(r"/account/two-factor/"))
    page.fill("input[name=code]", totp_code(device))
    page.locator("form:has(input[name=code]) button[type=submit]").click()
