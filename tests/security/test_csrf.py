"""CSRF: every form target refuses a POST without the token, except named exemptions.

The patterns come from the resolver (``endpoints.all_endpoints``). The CSRF
middleware checks before the view runs, so a POST without a token must fail on
every pattern that is not ``csrf_exempt``, whether or not its view takes POST; and
every exempt one must be listed here with the reason it may be.
"""

from html.parser import HTMLParser

import pytest
from django.http import HttpResponseForbidden
from django.urls import reverse
from rest_framework.views import APIView

from customers.api.authentication import ApiKeyAuthentication
from tests.security.endpoints import all_endpoints

ENDPOINTS = all_endpoints()
CSRF_FAILURE_HEADER = "X-Test-CSRF-Failure"

# Exempt on purpose, by URL name.
CSRF_EXEMPT = {
    # RFC 8058 one-click unsubscribe: the mail provider POSTs with no cookie and no
    # token; the signed token in the address is the authority.
    "consents:unsubscribe": "RFC 8058 one-click unsubscribe, token-signed",
    # The signed, single-use token in the address is the only authority; no
    # session grants anything, so a forged POST gains nothing (see the view).
    "consents:double-opt-in-confirm": "double opt-in confirmation, token-signed",
    # The provider signs the body (HMAC) instead; it has no session or token.
    "campaigns:email_events": "mail provider's webhook, HMAC-signed",
}


def csrf_failure(request, reason=""):
    """Stands in for CSRF_FAILURE_VIEW: a 403 that says it came from CSRF."""
    response = HttpResponseForbidden(reason)
    response[CSRF_FAILURE_HEADER] = reason
    return response


def _is_api_view(endpoint) -> bool:
    """DRF views: csrf_exempt at Django's level, authenticated by a header.

    An ``Authorization: Api-Key`` header is not sent by a browser on its own, so a
    forged cross-site request carries no credentials. (DRF's SessionAuthentication
    would enforce CSRF itself; the test below keeps cookie logins out anyway.)
    """
    view_class = endpoint.view_class
    return view_class is not None and issubclass(view_class, APIView)


def test_every_exemption_is_documented():
    undocumented = [
        str(endpoint)
        for endpoint in ENDPOINTS
        if getattr(endpoint.callback, "csrf_exempt", False)
        and endpoint.name not in CSRF_EXEMPT
        and not _is_api_view(endpoint)
    ]
    assert not undocumented, undocumented
    names = {endpoint.name for endpoint in ENDPOINTS}
    assert set(CSRF_EXEMPT) <= names, set(CSRF_EXEMPT) - names


def test_the_api_authenticates_by_header_only():
    """No API view accepts a session cookie or Basic auth, which a browser replays."""
    cookie_based = [
        str(endpoint)
        for endpoint in ENDPOINTS
        if _is_api_view(endpoint)
        for auth in endpoint.view_class().get_authenticators()
        if not isinstance(auth, ApiKeyAuthentication)
    ]
    assert not cookie_based, cookie_based


@pytest.fixture
def csrf_client(client, settings, django_user_model):
    """A superuser's client that enforces CSRF, with a recognisable failure view."""
    settings.CSRF_FAILURE_VIEW = "tests.security.test_csrf.csrf_failure"
    client.handler.enforce_csrf_checks = True
    client.force_login(django_user_model.objects.create_superuser("root", "", "x"))
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    "endpoint",
    [e for e in ENDPOINTS if e.name not in CSRF_EXEMPT and not _is_api_view(e)],
    ids=str,
)
def test_post_without_token_is_refused(csrf_client, endpoint):
    response = csrf_client.post(endpoint.url, {"anything": "1"})
    assert response.status_code == 403, (endpoint, response.status_code)
    assert CSRF_FAILURE_HEADER in response, f"{endpoint}: 403 but not from CSRF"


@pytest.mark.django_db
def test_post_with_token_passes_the_check(csrf_client):
    """The refusals above are CSRF's: the same POST with the token gets through."""
    # A page with a form sets the cookie.
    assert csrf_client.get(reverse("segments:create")).status_code == 200
    token = csrf_client.cookies["csrftoken"].value
    response = csrf_client.post(
        reverse("segments:preview"), {"csrfmiddlewaretoken": token, "rules": "{}"}
    )
    assert CSRF_FAILURE_HEADER not in response


class _PostForms(HTMLParser):
    """Counts <form method="post"> and the CSRF token fields inside each."""

    def __init__(self):
        super().__init__()
        self.forms: list[bool] = []  # one per POST form: has it the token?
        self._inside = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and (attrs.get("method") or "").lower() == "post":
            self.forms.append(False)
            self._inside = True
        elif tag == "input" and self._inside:
            if attrs.get("name") == "csrfmiddlewaretoken":
                self.forms[-1] = True

    def handle_endtag(self, tag):
        if tag == "form":
            self._inside = False


@pytest.mark.django_db
def test_every_post_form_on_staff_pages_carries_the_token(csrf_client):
    """The staff pages that render for a superuser with an empty database."""
    checked = 0
    for endpoint in ENDPOINTS:
        if endpoint.is_api or endpoint.is_admin or endpoint.name in CSRF_EXEMPT:
            continue
        response = csrf_client.get(endpoint.url)
        if response.status_code != 200 or "html" not in response.get(
            "Content-Type", ""
        ):
            continue
        parser = _PostForms()
        parser.feed(response.content.decode())
        assert all(parser.forms), f"{endpoint}: a POST form without csrf token"
        checked += len(parser.forms)
    assert checked >= 5
