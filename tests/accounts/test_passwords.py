"""Passwords: Argon2, the minimum policy, and a reset that tells nobody anything."""

import re

import pytest
from django.contrib.auth.hashers import check_password, make_password
from django.core import mail
from django.test import override_settings

from config.celery import app as celery_app
from config.settings import base
from tests.staff import StaffClient, app_device, totp_code

pytestmark = pytest.mark.django_db

NEW = "kasztanowy-rower-47"


def test_new_passwords_are_hashed_with_argon2_and_old_ones_upgraded(make_staff):
    assert base.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")
    with override_settings(PASSWORD_HASHERS=base.PASSWORD_HASHERS):
        assert make_password("correct horse battery").startswith("argon2$")
        user = make_staff("Support")
        user.password = make_password("an older hash 2024", hasher="pbkdf2_sha256")
        user.save()
        client = StaffClient()
        response = client.post(
            "/login/", {"username": user.username, "password": "an older hash 2024"}
        )
        assert response.status_code == 302
        user.refresh_from_db()
        assert user.password.startswith("argon2$")
        assert check_password("an older hash 2024", user.password)


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("Kr0tkie!", "too short"),
        ("12345678901234", "entirely numeric"),
        ("password12345", "too common"),
        ("agnieszka.nowak", "too similar"),
    ],
)
def test_the_password_policy_refuses_weak_passwords(make_staff, password, why):
    user = make_staff("Support", username="agnieszka.nowak")
    client = StaffClient()
    client.cookies["django_language"] = "en"
    client.force_login(user)
    response = client.post(
        "/account/password/",
        {
            "old_password": "test-pass-123",
            "new_password1": password,
            "new_password2": password,
        },
    )
    assert response.status_code == 200
    assert why in str(response.context["form"].errors["new_password2"]).lower()
    user.refresh_from_db()
    assert user.check_password("test-pass-123")


def test_a_strong_password_is_changed_and_the_session_kept(make_staff, settings):
    assert settings.AUTH_PASSWORD_VALIDATORS[1]["OPTIONS"]["min_length"] == 12
    user = make_staff("Support")
    client = StaffClient()
    client.force_login(user)
    response = client.post(
        "/account/password/",
        {
            "old_password": "test-pass-123",
            "new_password1": "kasztanowy-rower-47",
            "new_password2": "kasztanowy-rower-47",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("kasztanowy-rower-47")
    assert client.get("/customers/").status_code == 200


@pytest.fixture
def eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def _ask_for_reset(client, email):
    return client.post("/account/password/reset/", {"email": email})


def test_a_reset_answers_the_same_for_known_and_unknown_addresses(
    make_staff, eager_tasks, django_capture_on_commit_callbacks
):
    user = make_staff("Support")
    user.email = "beata@sklep.example"
    user.save()

    answers = []
    for email in ("beata@sklep.example", "nikt@sklep.example"):
        with django_capture_on_commit_callbacks(execute=True):
            response = _ask_for_reset(StaffClient(), email)
        answers.append((response.status_code, response["Location"]))
    assert answers[0] == answers[1] == (302, "/account/password/reset/sent/")
    # Only the account's address gets mail, sent by a worker, not by the page.
    assert [message.to for message in mail.outbox] == [["beata@sklep.example"]]


def test_the_emailed_link_sets_a_password_and_the_second_factor_is_still_asked(
    make_staff, eager_tasks, django_capture_on_commit_callbacks
):
    user = make_staff("Support")
    user.email = "beata@sklep.example"
    user.save()
    device = app_device(user)
    client = StaffClient()
    with django_capture_on_commit_callbacks(execute=True):
        _ask_for_reset(client, user.email)
    link = re.search(
        r"https?://[^/]+(/account/password/reset/\S+)", mail.outbox[0].body
    )
    response = client.get(link.group(1))
    assert response.status_code == 302  # to the link without the token in it
    form_url = response["Location"]
    response = client.post(
        form_url,
        {
            "new_password1": "kasztanowy-rower-47",
            "new_password2": "kasztanowy-rower-47",
        },
    )
    assert response["Location"] == "/account/password/reset/done/"
    # Used once: the link no longer works.
    assert client.get(link.group(1), follow=True).context["validlink"] is False

    response = client.post(
        "/login/", {"username": user.username, "password": "kasztanowy-rower-47"}
    )
    assert response["Location"].startswith("/account/two-factor/")
    assert client.get("/customers/").status_code == 302
    client.post("/account/two-factor/", {"code": totp_code(device)})
    assert client.get("/customers/").status_code == 200
