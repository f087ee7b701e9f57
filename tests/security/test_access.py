"""Who may reach what: anonymous visitors and each staff role, for every URL.

The patterns come from the resolver (``endpoints.all_endpoints``), not from a
hand list: a page added later is checked by these tests the day it lands, and a
public one has to be named in ``PUBLIC`` with the reason it may be public.
"""

from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.contrib.auth.models import Group
from django.shortcuts import resolve_url
from django.test import RequestFactory
from django.urls import reverse

from tests.security.endpoints import all_endpoints
from tests.staff import StaffClient

ENDPOINTS = all_endpoints()

# Public by design, by URL name. Everything else refuses anonymous visitors.
PUBLIC = {
    # Signing in and out.
    "login": "the sign-in form itself",
    "logout": "signing out needs no sign-in (POST only, CSRF-protected)",
    "admin:login": "the admin's sign-in form",
    "admin-login": "sends the admin's sign-in to the one sign-in page (two steps)",
    # Setting a forgotten password: by email; the answer is the same for every
    # address, the link is a single-use token, the second factor is still asked.
    "accounts:password-reset": "asks for a reset link by email",
    "accounts:password-reset-done": "says a link may be on its way",
    "accounts:password-reset-confirm": "the emailed single-use link",
    "accounts:password-reset-complete": "says the password is set",
    "admin:logout": "the admin's sign-out (redirects home when signed out)",
    # Probes for load balancers and orchestrators: a status code, nothing personal.
    "health": "liveness probe (config/observability)",
    "ready": "readiness probe (config/observability)",
    # Django's language switch: sets a cookie, shows nothing.
    "set_language": "sets the language cookie; reveals and changes no data",
    # Reached by signed, single-use or per-person tokens in emails: the token is
    # the authority, there is no account to sign in with.
    "consents:preferences": "the customer's own preferences page, token-signed",
    "consents:unsubscribe": "one-click unsubscribe (RFC 8058), token-signed",
    "consents:double-opt-in-confirm": "double opt-in confirmation, token-signed",
    "campaigns:open": "open-tracking pixel in sent messages, token-signed",
    "campaigns:click": "click-tracking redirect in sent messages, token-signed",
    "campaigns:email_events": "the mail provider's webhook, HMAC-signed body",
    # The API's description: no data, and the shops' developers read it without
    # a key (SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"] is AllowAny on purpose).
    "api-schema": "OpenAPI schema of the public API (no data)",
    "api-docs": "interactive API docs (no data)",
}

# Pages that only redirect elsewhere; the redirect chain must end at the login page.
REDIRECT_ONLY = {
    "home": "picks the dashboard or the customer list, both staff pages",
}

# A signed-in person's own account (their second factor, recovery codes, password):
# every staff member has one, whatever their role; no permission names it.
OWN_ACCOUNT = {
    "accounts:account": "the account page",
    "accounts:second-factor": "the second sign-in step (signed in: goes on)",
    "accounts:two-factor-setup": "enrolling or replacing the authenticator app",
    "accounts:recovery-codes": "the user's own recovery codes",
    "accounts:password-change": "changing one's own password",
}

ROLES = ["Support", "Marketing", "Manager", "Data protection officer"]


def _login_url(*, admin: bool = False) -> str:
    return reverse("admin:login") if admin else resolve_url(settings.LOGIN_URL)


def _assert_redirects_to_login(response, endpoint, *, admin: bool = False) -> None:
    assert response.status_code == 302, (
        f"{endpoint} ({response.request['REQUEST_METHOD']}) answered "
        f"{response.status_code} to an anonymous visitor, not a redirect to login"
    )
    target = urlsplit(response["Location"])
    assert target.path == _login_url(admin=admin), (
        f"{endpoint} redirects anonymous visitors to {response['Location']}"
    )
    assert "next=" in target.query


def test_the_allow_lists_name_real_patterns():
    """A renamed or removed public page must leave the allow-list too."""
    names = {endpoint.name for endpoint in ENDPOINTS}
    assert set(PUBLIC) <= names, set(PUBLIC) - names
    assert set(REDIRECT_ONLY) <= names, set(REDIRECT_ONLY) - names
    assert set(OWN_ACCOUNT) <= names, set(OWN_ACCOUNT) - names


def test_every_url_is_enumerated():
    """The walk reaches every app's pages, the API and the admin."""
    routes = [endpoint.route for endpoint in ENDPOINTS]
    for prefix in (
        "customers/",
        "orders/",
        "imports/",
        "support/",
        "segments/",
        "dashboard/",
        "quality/",
        "merges/",
        "rodo/",
        "campaigns/",
        "api/v1/",
        "admin/",
    ):
        assert any(route.startswith(prefix) for route in routes), prefix


@pytest.mark.django_db
@pytest.mark.parametrize(
    "endpoint",
    [e for e in ENDPOINTS if e.name not in PUBLIC and not e.is_api],
    ids=str,
)
def test_anonymous_visitors_are_sent_to_login(client, endpoint):
    """Staff pages and the admin redirect to their login page, GET and POST alike.

    The login check comes before any object lookup (StaffPageMixin, admin_view), so
    a 404 would mean the check is missing: it is not accepted as a refusal.
    """
    if endpoint.name in REDIRECT_ONLY:
        response = client.get(endpoint.url, follow=True)
        assert response.redirect_chain, endpoint
        final = urlsplit(response.redirect_chain[-1][0])
        assert final.path == resolve_url(settings.LOGIN_URL), response.redirect_chain
        return
    for method in (client.get, client.post):
        response = method(endpoint.url)
        _assert_redirects_to_login(response, endpoint, admin=endpoint.is_admin)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "endpoint",
    [e for e in ENDPOINTS if e.name not in PUBLIC and not e.is_api],
    ids=str,
)
def test_staff_without_the_second_factor_reach_nothing(django_user_model, endpoint):
    """A superuser who gave the password but not the code is refused everywhere.

    Every staff page and the admin answer as to a stranger (to the sign-in page,
    which sends them on to the second step), GET and POST alike.
    """
    client = StaffClient()
    user = django_user_model.objects.create_superuser("root", "", "x")
    client.force_login(user, second_factor=False)
    if endpoint.name in REDIRECT_ONLY:
        response = client.get(endpoint.url, follow=True)
        final = urlsplit(response.redirect_chain[-1][0])
        assert final.path.startswith("/account/two-factor/"), endpoint
        return
    if endpoint.name == "accounts:second-factor":
        assert client.get(endpoint.url).status_code == 302  # to the app's set-up
        return
    if endpoint.name == "accounts:two-factor-setup":
        assert client.get(endpoint.url).status_code == 200  # where they must go
        return
    for method in (client.get, client.post):
        response = method(endpoint.url)
        _assert_redirects_to_login(response, endpoint, admin=endpoint.is_admin)
    page = client.get(response["Location"], follow=True)
    assert urlsplit(page.redirect_chain[-1][0]).path.startswith("/account/two-factor/")


@pytest.mark.django_db
@pytest.mark.parametrize("role", [*ROLES, None], ids=lambda role: role or "no role")
def test_every_signed_in_person_has_their_own_account_pages(make_staff, role):
    client = StaffClient()
    client.force_login(make_staff(*([role] if role else [])))
    for name in OWN_ACCOUNT:
        if name == "accounts:second-factor":
            response = client.get(reverse(name) + "?next=/customers/")
            assert response.status_code == 302
            assert response["Location"] == "/customers/"
        else:
            assert client.get(reverse(name)).status_code == 200, name


@pytest.mark.django_db
@pytest.mark.parametrize(
    "endpoint",
    [e for e in ENDPOINTS if e.name not in PUBLIC and e.is_api],
    ids=str,
)
def test_anonymous_api_calls_are_refused(client, endpoint):
    """The API answers 401/403 without a key, whatever the method."""
    for method in (client.get, client.post):
        response = method(endpoint.url)
        assert response.status_code in (401, 403), (
            f"{endpoint} answered {response.status_code} without an API key"
        )


@pytest.mark.django_db
def test_a_session_does_not_open_the_api(client, django_user_model):
    """Staff signed in to the pages get no API access: only an API key opens it."""
    client.force_login(django_user_model.objects.create_superuser("root", "", "x"))
    for endpoint in (e for e in ENDPOINTS if e.is_api and e.name not in PUBLIC):
        response = client.get(endpoint.url)
        assert response.status_code in (401, 403), endpoint


def _staff_endpoints():
    """Staff pages: neither public, nor the API, nor the admin, nor a redirect."""
    return [
        e
        for e in ENDPOINTS
        if e.name not in PUBLIC
        and e.name not in REDIRECT_ONLY
        and e.name not in OWN_ACCOUNT
        and not e.is_api
        and not e.is_admin
    ]


def test_every_staff_page_requires_a_permission():
    """Signing in is not enough anywhere: each staff page names its permission.

    Without ``permission_required`` any signed-in account, a role-less one
    included, would see the page.
    """
    missing = []
    for endpoint in _staff_endpoints():
        view_class = endpoint.view_class
        if not (view_class and issubclass(view_class, PermissionRequiredMixin)):
            missing.append(f"{endpoint}: not a PermissionRequiredMixin view")
        elif not view_class.permission_required:
            missing.append(f"{endpoint}: empty permission_required")
    assert not missing, "\n".join(missing)


def _required(endpoint) -> tuple[str, ...]:
    required = endpoint.view_class.permission_required or ()
    return (required,) if isinstance(required, str) else tuple(required)


def _has_permission(endpoint, user) -> bool:
    """The view's own rule: ``permission_required``, narrowed by an override.

    A few views add a condition in ``has_permission`` (segments: previewing needs
    add or change besides view); an override may narrow the rule, never widen it.
    """
    view = endpoint.view_class()
    view.request = RequestFactory().get(endpoint.url)
    view.request.user = user
    view.kwargs = {}
    return view.has_permission()


@pytest.mark.django_db
@pytest.mark.parametrize("role", [*ROLES, None], ids=lambda role: role or "no role")
def test_each_role_gets_403_exactly_where_it_lacks_the_permission(make_staff, role):
    """One GET per staff page: 403 if the role fails the view's permission rule.

    A role that holds the permissions must not get 403 (a 404 for an object that
    does not exist, or a 405 for a POST-only action, is fine). A staff account
    without any role is refused everywhere.
    """
    user = make_staff(*([role] if role else []))
    client = StaffClient()
    client.force_login(user)
    wrong = []
    refused = 0
    for endpoint in _staff_endpoints():
        required = _required(endpoint)
        allowed = _has_permission(endpoint, user)
        if allowed and not user.has_perms(required):
            wrong.append(
                f"{endpoint}: has_permission() lets {role} in without {required}"
            )
        response = client.get(endpoint.url)
        if allowed and response.status_code == 403:
            wrong.append(f"{endpoint}: 403 although {role} holds {required}")
        elif not allowed and response.status_code != 403:
            wrong.append(
                f"{endpoint}: {response.status_code} although {role} lacks {required}"
            )
        refused += not allowed
    assert not wrong, "\n".join(wrong)
    # The roles are real: each is refused somewhere, and no role is refused all.
    assert refused > 0
    if role is None:
        assert refused == len(_staff_endpoints())
    else:
        assert refused < len(_staff_endpoints())


@pytest.mark.django_db
def test_a_superuser_is_refused_nowhere(django_user_model):
    client = StaffClient()
    client.force_login(django_user_model.objects.create_superuser("root", "", "x"))
    refused = [
        str(endpoint)
        for endpoint in _staff_endpoints()
        if client.get(endpoint.url).status_code == 403
    ]
    assert not refused


@pytest.mark.django_db
def test_role_users_are_not_admin_users(make_staff):
    """The admin lets in staff by their model permissions; check a role-less user."""
    client = StaffClient()
    client.force_login(make_staff())
    response = client.get(reverse("admin:auth_user_changelist"))
    assert response.status_code == 403
    assert Group.objects.filter(name__in=ROLES).count() == len(ROLES)
