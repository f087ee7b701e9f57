"""Brute force: repeated failed sign-ins lock the account, with the right address."""

import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import RequestFactory

from config.clients import client_ip
from tests.staff import StaffClient, app_device, totp_code

pytestmark = pytest.mark.django_db

PASSWORD = "test-pass-123"


def _sign_in(client, username, password, **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


def _cool_off_passes(settings):
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.values("attempt_time")[:1].get()[
            "attempt_time"
        ]
        - settings.AXES_COOLOFF_TIME
        - timedelta(minutes=1)
    )


def test_ten_failed_sign_ins_lock_the_account_for_the_cool_off(make_staff, settings):
    user = make_staff("Support")
    client = StaffClient()
    address = {"REMOTE_ADDR": "203.0.113.7"}
    assert settings.AXES_FAILURE_LIMIT == 10

    for attempt in range(9):
        response = _sign_in(client, user.username, f"wrong-{attempt}", **address)
        assert response.status_code == 200, attempt
        assert response.context["form"].non_field_errors()
    response = _sign_in(client, user.username, "wrong-9", **address)
    assert response.status_code == 429
    assert "Zbyt wiele nieudanych prób logowania" in response.content.decode()

    # Locked: the right password does not get in, from another address either.
    for other in ("203.0.113.7", "198.51.100.50"):
        response = _sign_in(client, user.username, PASSWORD, REMOTE_ADDR=other)
        assert response.status_code == 429
        assert "_auth_user_id" not in client.session

    attempt = AccessAttempt.objects.get(
        username=user.username, ip_address="203.0.113.7"
    )
    assert attempt.failures_since_start >= 10

    _cool_off_passes(settings)
    response = _sign_in(client, user.username, PASSWORD, REMOTE_ADDR="198.51.100.50")
    assert response.status_code == 302
    assert response["Location"].startswith("/account/two-factor/")


def test_an_unknown_username_gets_the_same_answers(make_staff):
    """Nobody learns from the answers which usernames exist."""
    make_staff("Support", username="wiktoria.n")
    answers = {}
    for username in ("wiktoria.n", "zenon.q"):
        client = StaffClient()
        responses = [
            _sign_in(client, username, "wrong", REMOTE_ADDR=f"192.0.2.{len(answers)}")
            for _ in range(10)
        ]
        answers[username] = [
            (response.status_code, response.content.decode().replace(username, "*"))
            for response in responses
        ]
        for code, _html in answers[username]:
            assert code in (200, 429)
    known, unknown = answers["wiktoria.n"], answers["zenon.q"]
    assert [code for code, _ in known] == [code for code, _ in unknown]

    def strip(html):
        return re.sub(r"\b[A-Za-z0-9]{64}\b", "CSRF", html)

    assert strip(known[0][1]) == strip(unknown[0][1])
    assert strip(known[-1][1]) == strip(unknown[-1][1])


def test_one_address_trying_many_usernames_is_locked(make_staff):
    """Password spraying: a few tries for each of many names, from one address."""
    user = make_staff("Support")
    client = StaffClient()
    for number in range(10):
        _sign_in(client, f"guess-{number}", "wrong", REMOTE_ADDR="203.0.113.99")
    response = _sign_in(client, user.username, PASSWORD, REMOTE_ADDR="203.0.113.99")
    assert response.status_code == 429
    # The account itself was not the target: from elsewhere it signs in.
    response = _sign_in(client, user.username, PASSWORD, REMOTE_ADDR="198.51.100.1")
    assert response.status_code == 302


def test_wrong_codes_count_towards_the_lock(make_staff):
    """A stolen password does not give unlimited guesses at the code."""
    user = make_staff("Support")
    device = app_device(user)
    client = StaffClient()
    address = {"REMOTE_ADDR": "203.0.113.8"}
    for _ in range(9):
        response = _sign_in(client, user.username, "wrong", **address)
    assert _sign_in(client, user.username, PASSWORD, **address).status_code == 302
    # The right password reset the count (AXES_RESET_ON_SUCCESS); ten wrong codes
    # lock again, and sign the half signed-in session out.
    statuses = []
    for _ in range(10):
        device.refresh_from_db()
        device.throttling_failure_count = 0
        device.save()
        response = client.post("/account/two-factor/", {"code": "000000"}, **address)
        statuses.append(response.status_code)
    assert statuses[-1] == 429
    assert "_auth_user_id" not in client.session
    response = _sign_in(client, user.username, PASSWORD, **address)
    assert response.status_code == 429
    assert totp_code(device)  # the app still works once the lock is over


def test_behind_a_proxy_the_client_address_is_recorded(make_staff, settings):
    """With nginx in front (one trusted proxy), the address nginx saw is recorded."""
    settings.TRUSTED_PROXY_COUNT = 1
    user = make_staff("Support")
    client = StaffClient()
    for _ in range(10):
        _sign_in(
            client,
            user.username,
            "wrong",
            REMOTE_ADDR="10.0.0.2",
            # The client wrote the first address itself; nginx appended the second.
            HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.23",
        )
    attempt = AccessAttempt.objects.get(username=user.username)
    assert attempt.ip_address == "198.51.100.23"


def test_without_a_proxy_a_forwarded_header_is_ignored(make_staff):
    user = make_staff("Support")
    client = StaffClient()
    _sign_in(
        client,
        user.username,
        "wrong",
        REMOTE_ADDR="203.0.113.5",
        HTTP_X_FORWARDED_FOR="1.2.3.4",
    )
    assert AccessAttempt.objects.get().ip_address == "203.0.113.5"


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "203.0.113.5", "", "203.0.113.5"),
        (0, "203.0.113.5", "1.2.3.4", "203.0.113.5"),
        (1, "10.0.0.2", "198.51.100.23", "198.51.100.23"),
        (1, "10.0.0.2", "1.2.3.4, 198.51.100.23", "198.51.100.23"),
        (2, "10.0.0.3", "1.2.3.4, 198.51.100.23, 10.0.0.2", "198.51.100.23"),
        # Fewer addresses than proxies: only the nearest proxy is certain.
        (2, "10.0.0.3", "198.51.100.23", "10.0.0.3"),
        (1, "10.0.0.2", "2001:db8::1", "2001:db8::1"),
        (1, "10.0.0.2", "not-an-address", None),
        (0, "", "", None),
    ],
)
def test_client_ip(settings, proxies, remote, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR=remote)
    if forwarded:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded
    assert client_ip(request) == expected


def test_sign_in_logs_are_forgotten_after_their_days(make_staff, settings):
    from axes.models import AccessFailureLog, AccessLog
    from django.utils import timezone

    from config.accounts.tasks import sign_in_log_prune_task

    user = make_staff("Support")
    client = StaffClient()
    _sign_in(client, user.username, "wrong")
    _sign_in(client, user.username, PASSWORD)
    assert AccessLog.objects.count() == 1
    old = timezone.now() - timedelta(days=settings.SIGN_IN_LOG_DAYS + 1)
    AccessLog.objects.create(username="earlier", attempt_time=old)
    AccessLog.objects.filter(username="earlier").update(attempt_time=old)
    AccessFailureLog.objects.create(username="earlier")
    AccessFailureLog.objects.filter(username="earlier").update(attempt_time=old)

    assert sign_in_log_prune_task() == 2
    assert list(AccessLog.objects.values_list("username", flat=True)) == [user.username]
    assert not AccessFailureLog.objects.filter(username="earlier").exists()
