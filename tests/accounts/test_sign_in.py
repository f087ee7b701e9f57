"""Sign-in in two steps: the password, then the authenticator app or a recovery code."""

import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.accounts import devices
from config.accounts.forms import TOO_MANY, WRONG_CODE
from tests.staff import StaffClient, app_device, totp_code

pytestmark = pytest.mark.django_db

PASSWORD = "test-pass-123"
LOGIN = "/login/"
CODE = re.compile(r"<code>([a-z2-7]{4}-[a-z2-7]{4})</code>")


def _password_step(client, user, next_url="/customers/"):
    return client.post(
        LOGIN, {"username": user.username, "password": PASSWORD, "next": next_url}
    )


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _pass_throttle(device):
    """Move the last wrong code's time back: the wait after it is over."""
    device.refresh_from_db()
    if device.throttling_failure_timestamp:
        device.throttling_failure_timestamp -= timedelta(hours=1)
        device.save()


def test_first_sign_in_enrols_the_app_and_shows_recovery_codes_once(make_staff):
    client = StaffClient()
    user = make_staff("Support")

    response = _password_step(client, user)
    assert response.status_code == 302
    assert response["Location"] == "/account/two-factor/?next=%2Fcustomers%2F"
    # Signed in with the password alone: still a stranger to the staff pages.
    assert client.get("/customers/")["Location"].startswith("/login/")

    response = client.get(response["Location"])
    assert response["Location"] == "/account/two-factor/setup/?next=%2Fcustomers%2F"
    page = client.get(response["Location"])
    html = page.content.decode()
    assert 'src="data:image/svg+xml;base64,' in html
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert devices.secret_for_typing(device) in html
    assert device.config_url.startswith("otpauth://totp/Kartoteka%3A")
    assert "issuer=Kartoteka" in device.config_url

    wrong = client.post(page.request["PATH_INFO"], {"code": "000000"})
    assert wrong.status_code == 200
    assert wrong.context["form"].errors["code"]
    _pass_throttle(device)

    response = client.post(
        "/account/two-factor/setup/?next=/customers/",
        {"code": totp_code(device), "next": "/customers/"},
    )
    assert response.status_code == 302
    assert response["Location"] == (
        "/account/two-factor/recovery-codes/?next=%2Fcustomers%2F"
    )
    device.refresh_from_db()
    assert device.confirmed
    codes_page = client.get(response["Location"])
    codes = re.findall(
        r"<code>([a-z2-7]{4}-[a-z2-7]{4})</code>", codes_page.content.decode()
    )
    assert len(codes) == devices.RECOVERY_CODE_COUNT == len(set(codes))
    assert StaticToken.objects.filter(device__user=user).count() == 10
    # Shown once: the next visit says how many are left, not which.
    again = client.get("/account/two-factor/recovery-codes/").content.decode()
    assert codes[0] not in again
    assert client.get("/customers/").status_code == 200


def test_the_code_from_the_app_completes_the_sign_in(make_staff):
    client = StaffClient()
    user = make_staff("Support")
    device = app_device(user)

    response = client.get(_password_step(client, user)["Location"])
    assert response.status_code == 200
    assert "second_factor.html" in [t.name for t in response.templates][0]

    response = client.post(
        "/account/two-factor/", {"code": totp_code(device), "next": "/customers/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/customers/"
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get("/customers/").status_code == 200


def test_a_wrong_code_is_refused_and_the_next_tries_are_slowed(make_staff):
    client = StaffClient()
    user = make_staff("Support")
    device = app_device(user)
    _password_step(client, user)

    response = client.post("/account/two-factor/", {"code": "123456"})
    assert response.status_code == 200
    assert response.context["form"].errors["code"] == [str(WRONG_CODE)]
    # Right away, even the right code waits for the delay to pass.
    response = client.post("/account/two-factor/", {"code": totp_code(device)})
    assert response.context["form"].errors["code"] == [str(TOO_MANY)]
    assert client.get("/customers/").status_code == 302
    _pass_throttle(device)
    response = client.post("/account/two-factor/", {"code": totp_code(device)})
    assert response.status_code == 302


def test_a_recovery_code_signs_in_once(make_staff):
    user = make_staff("Support")
    app_device(user)
    codes = devices.new_recovery_codes(user)

    client = StaffClient()
    client.cookies["django_language"] = "en"
    _password_step(client, user)
    response = client.post("/account/two-factor/", {"code": codes[0].upper()})
    assert response.status_code == 302
    assert any("9 codes are left" in message for message in _messages(response))
    assert StaticToken.objects.filter(device__user=user).count() == 9

    other = StaffClient()
    _password_step(other, user)
    reused = other.post("/account/two-factor/", {"code": codes[0]})
    assert reused.status_code == 200
    assert other.get("/customers/").status_code == 302


def test_the_password_alone_cannot_swap_the_app(make_staff):
    """Whoever stole a password must not enrol their own phone instead."""
    client = StaffClient()
    user = make_staff("Support")
    device = app_device(user)
    _password_step(client, user)

    response = client.get("/account/two-factor/setup/")
    assert response["Location"].startswith("/account/two-factor/")
    assert "setup" not in response["Location"]
    response = client.post("/account/two-factor/setup/", {"code": "123456"})
    assert response.status_code == 302
    assert list(TOTPDevice.objects.filter(user=user)) == [device]
    # The sign-in page sends a half signed-in person on to the code.
    assert client.get(LOGIN)["Location"].startswith("/account/two-factor/")


def test_a_signed_in_user_replaces_the_app_and_the_old_one_stops(make_staff):
    client = StaffClient()
    user = make_staff("Support")
    client.force_login(user)
    old = app_device(user)

    page = client.get("/account/two-factor/setup/")
    assert page.status_code == 200
    new = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post("/account/two-factor/setup/", {"code": totp_code(new)})
    assert response.status_code == 302
    assert list(TOTPDevice.objects.filter(user=user)) == [new]
    assert not TOTPDevice.objects.filter(pk=old.pk).exists()
    assert client.get("/customers/").status_code == 200


def test_new_recovery_codes_replace_the_old(make_staff):
    client = StaffClient()
    user = make_staff("Support")
    client.force_login(user)
    old = devices.new_recovery_codes(user)

    response = client.post("/account/two-factor/recovery-codes/")
    assert response.status_code == 302
    html = client.get(response["Location"]).content.decode()
    new = CODE.findall(html)
    assert len(new) == 10
    assert not set(new) & set(old)
    assert devices.verify(user, old[0]).device is None
    _pass_throttle(StaticDevice.objects.get(user=user))
    assert devices.verify(user, new[0]).device is not None


def test_the_account_page_shows_the_state_of_the_second_factor(make_staff):
    client = StaffClient()
    user = make_staff("Support")
    client.force_login(user)
    devices.new_recovery_codes(user)
    html = client.get("/account/").content.decode()
    assert user.username in html
    assert reverse("accounts:recovery-codes") in html
    assert reverse("accounts:password-change") in html


def test_signing_out_ends_both_factors(make_staff):
    client = StaffClient()
    client.force_login(make_staff("Support"))
    client.post("/logout/")
    assert client.get("/customers/")["Location"].startswith("/login/")


def test_the_admin_asks_for_both_factors(django_user_model):
    client = StaffClient()
    root = django_user_model.objects.create_superuser("root", "", PASSWORD)
    device = app_device(root)

    response = client.get("/admin/")
    assert response["Location"].startswith("/admin/login/")
    response = client.get(response["Location"])
    assert response["Location"] == "/login/?next=/admin/"
    response = client.post(
        LOGIN, {"username": "root", "password": PASSWORD, "next": "/admin/"}
    )
    assert response["Location"] == "/account/two-factor/?next=%2Fadmin%2F"
    assert client.get("/admin/").status_code == 302
    response = client.post(
        "/account/two-factor/", {"code": totp_code(device), "next": "/admin/"}
    )
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_the_admin_lists_who_has_the_second_factor_and_resets_it(
    admin_client, make_staff
):
    user = make_staff("Support")
    app_device(user)
    devices.new_recovery_codes(user)
    changelist = reverse("admin:auth_user_changelist")
    assert (
        user.username
        in admin_client.get(changelist + "?two_factor=yes").content.decode()
    )
    assert (
        user.username
        not in admin_client.get(changelist + "?two_factor=no").content.decode()
    )

    response = admin_client.post(
        changelist,
        {"action": "reset_second_factor", "_selected_action": [user.pk]},
    )
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not StaticDevice.objects.filter(user=user).exists()


def test_the_reset_command_makes_the_user_enrol_again(make_staff):
    user = make_staff("Support")
    app_device(user)
    devices.new_recovery_codes(user)
    call_command("two_factor_reset", user.username)
    assert not devices.has_second_factor(user)
    assert devices.recovery_codes_left(user) == 0

    client = StaffClient()
    response = client.get(_password_step(client, user)["Location"])
    assert response["Location"].startswith("/account/two-factor/setup/")


def test_the_reset_command_refuses_an_unknown_user(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user"):
        call_command("two_factor_reset", "nobody")


def test_an_idle_session_is_signed_out(make_staff, settings):
    from config.accounts.middleware import LAST_SEEN_KEY

    client = StaffClient()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    client.force_login(make_staff("Support"))
    assert client.get("/customers/").status_code == 200
    session = client.session
    last_seen = session[LAST_SEEN_KEY]
    session[LAST_SEEN_KEY] = last_seen - settings.SESSION_IDLE_MINUTES * 60 - 1
    session.save()

    response = client.get("/customers/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/login/")
    assert any(
        "without activity" in m or "bez aktywności" in m for m in _messages(response)
    )
    assert client.get("/customers/").status_code == 302


def test_an_active_session_stays(make_staff, settings):
    from config.accounts.middleware import LAST_SEEN_KEY

    client = StaffClient()
    client.force_login(make_staff("Support"))
    client.get("/customers/")
    session = client.session
    session[LAST_SEEN_KEY] -= settings.SESSION_IDLE_MINUTES * 60 - 60
    session.save()
    assert client.get("/customers/").status_code == 200
    # That request counted as activity: the clock starts again.
    assert client.session[LAST_SEEN_KEY] >= timezone.now().timestamp() - 5


def test_a_session_ends_some_hours_after_sign_in_however_busy(make_staff, settings):
    from config.accounts.middleware import STARTED_KEY

    client = StaffClient()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    client.force_login(make_staff("Support"))
    assert client.get("/customers/").status_code == 200
    session = client.session
    session[STARTED_KEY] -= settings.SESSION_MAX_HOURS * 3600 + 1
    session.save()

    response = client.get("/customers/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/login/")
    assert any("hours after signing in" in m for m in _messages(response))
