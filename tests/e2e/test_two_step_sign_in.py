"""First sign-in in a browser: the password, setting up the app, the recovery codes."""

import base64
import re

import pytest
from django_otp.oath import totp

pytestmark = pytest.mark.e2e


def test_a_new_staff_member_sets_up_the_app_and_reaches_their_pages(
    live_server, page, make_staff
):
    make_staff("Support", username="ola")
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if msg.type == "error" else None,
    )

    page.goto(live_server.url + "/customers/")
    page.wait_for_url(re.compile(r"/login/\?next="))
    page.get_by_label("Nazwa użytkownika").fill("ola")
    page.get_by_label("Hasło").fill("test-pass-123")
    page.get_by_role("button", name="Zaloguj się").click()

    # No app yet: the set-up page, with a QR code drawn and the key to type.
    page.wait_for_url(re.compile(r"/account/two-factor/setup/"))
    qr_code = page.locator("img.qrcode")
    assert qr_code.evaluate("image => image.complete && image.naturalWidth > 0")
    page.get_by_text("Nie możesz zeskanować").click()
    secret = page.get_by_test_id("totp-secret").inner_text().replace(" ", "")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))

    page.get_by_label("Kod").fill("000000")
    page.get_by_role("button", name="Włącz logowanie dwuetapowe").click()
    assert page.locator(".field__error").count() == 1

    # The wrong code slowed the next try by a second.
    page.wait_for_timeout(1100)
    page.get_by_label("Kod").fill(f"{totp(key):06d}")
    page.get_by_role("button", name="Włącz logowanie dwuetapowe").click()

    page.wait_for_url(re.compile(r"/account/two-factor/recovery-codes/"))
    codes = page.get_by_test_id("recovery-codes").locator("code").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("link", name="Dalej").click()
    page.wait_for_url(re.compile(r"/customers/$"))
    assert page.get_by_role("heading", name="Klienci").is_visible()
    assert not errors, errors
