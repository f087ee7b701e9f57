"""Security headers and policies: the Content Security Policy on every page, the
headers Django's SecurityMiddleware adds, secure cookies and HSTS in production,
and no template that the policy would break (inline script, event handler, style
element or attribute). The browser side is tests/e2e/test_csp.py."""

import datetime as dt
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from consents.models import DataSubjectRequest
from tests.factories.campaigns import EmailTemplateFactory
from tests.factories.consents import DataSubjectRequestFactory

BASE_DIR = Path(__file__).resolve().parent.parent

# Rendered into emails, never served as pages: mail clients need inline styles.
EMAIL_TEMPLATES = {"consents/double_opt_in/email.html"}


def policy(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: [sources]}."""
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


@pytest.fixture
def manager_client(client, make_staff):
    client.force_login(make_staff("Manager"))
    return client


def test_staff_page_has_a_strict_content_security_policy(manager_client):
    response = manager_client.get(reverse("customers:list"))
    assert response.status_code == 200
    assert "Content-Security-Policy-Report-Only" not in response
    directives = policy(response)
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'self'"]
    assert directives["form-action"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["frame-src"] == ["'self'"]
    for sources in directives.values():
        assert "'unsafe-inline'" not in sources
        assert "'unsafe-eval'" not in sources
        assert "*" not in sources


def test_security_headers_on_pages(manager_client):
    response = manager_client.get(reverse("customers:list"))
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_login_page_and_admin_have_the_policy_too(client, manager_client):
    assert (
        "default-src 'self'" in client.get(reverse("login"))["Content-Security-Policy"]
    )
    response = manager_client.get(reverse("admin:index"))
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_campaign_preview_frame_keeps_its_own_stricter_policy(manager_client):
    template = EmailTemplateFactory()
    response = manager_client.get(
        reverse("campaigns:template_frame"), {"template": template.pk}
    )
    assert response.status_code == 200
    directives = policy(response)
    assert "sandbox" in directives
    assert directives["default-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'self'"]
    assert response["X-Frame-Options"] == "SAMEORIGIN"


def test_cookies_are_secure_with_debug_off(client, make_staff, settings):
    assert settings.DEBUG is False
    make_staff("Manager", username="marta")
    page = client.get(reverse("login"))
    assert page.cookies["csrftoken"]["secure"] is True
    response = client.post(
        reverse("login"), {"username": "marta", "password": "test-pass-123"}
    )
    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["secure"] is True
    assert session["httponly"] is True


def test_hsts_on_https_requests(client, db):
    response = client.get(reverse("login"), secure=True)
    assert response["Strict-Transport-Security"] == (
        "max-age=31536000; includeSubDomains; preload"
    )


PRINT_SETTINGS = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'debug': s.DEBUG, 'session_secure': s.SESSION_COOKIE_SECURE, "
    "'csrf_secure': s.CSRF_COOKIE_SECURE, 'ssl_redirect': s.SECURE_SSL_REDIRECT, "
    "'hsts': s.SECURE_HSTS_SECONDS, 'referrer': s.SECURE_REFERRER_POLICY, "
    "'csp': 'csp.middleware.CSPMiddleware' in s.MIDDLEWARE, "
    "'script_src': s.CONTENT_SECURITY_POLICY['DIRECTIVES']['script-src']}))"
)


@pytest.mark.parametrize("debug", ["false", "true"])
def test_settings_secure_in_production_and_policy_in_both(debug):
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "manage.py", "shell", "-c", PRINT_SETTINGS],
        cwd=BASE_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "ENV_FILE": "/dev/null",
            "DEBUG": debug,
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "crm.example.com",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    production = debug == "false"
    assert values["debug"] is not production
    assert values["session_secure"] is production
    assert values["csrf_secure"] is production
    assert values["ssl_redirect"] is production
    assert (values["hsts"] >= 31536000) is production
    assert values["referrer"] == "same-origin"
    # The policy holds in development too, so a page that breaks it breaks there.
    assert values["csp"] is True
    assert values["script_src"] == ["'self'"]


def page_templates():
    for path in sorted(BASE_DIR.glob("*/templates/**/*.html")) + sorted(
        BASE_DIR.glob("templates/**/*.html")
    ):
        if ".venv" in path.parts:
            continue
        name = path.as_posix().split("/templates/", 1)[1]
        if name not in EMAIL_TEMPLATES:
            yield name, path


INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*application/json)", re.I)
EVENT_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)
STYLE_ATTRIBUTE = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I)
STYLE_ELEMENT = re.compile(r"<style\b", re.I)


def test_no_page_template_carries_what_the_policy_refuses():
    """Inline code or styles would be refused by the browser: move them to static/."""
    problems = []
    templates = list(page_templates())
    assert len(templates) > 50
    for name, path in templates:
        # Django comments may mention <style> or onclick while explaining them.
        text = re.sub(r"\{#.*?#\}", "", path.read_text(encoding="utf-8"))
        text = re.sub(r"\{% comment %\}.*?\{% endcomment %\}", "", text, flags=re.S)
        for label, pattern in (
            ("inline <script>", INLINE_SCRIPT),
            ("event handler attribute", EVENT_HANDLER),
            ("style attribute", STYLE_ATTRIBUTE),
            ("<style> element", STYLE_ELEMENT),
        ):
            if pattern.search(text):
                problems.append(f"{name}: {label}")
    assert problems == []


def test_request_actions_are_buttons_of_one_form(client, make_staff, customer):
    """The actions' forms were inline-styled; now one form, a button per action."""
    request = DataSubjectRequestFactory(
        customer=customer,
        kind=DataSubjectRequest.Kind.RESTRICTION,
        due_on=dt.date(2026, 2, 28),
    )
    client.force_login(make_staff("Data protection officer"))
    content = client.get(
        reverse("consents:request_detail", args=[request.pk])
    ).content.decode()
    action = reverse("consents:request_action", args=[request.pk])
    assert content.count(f'action="{action}"') == 1
    assert '<button type="submit" class="button" name="action" value="restrict">' in (
        content
    )
    client.post(action, {"action": "restrict"})
    customer.refresh_from_db()
    assert customer.restricted_at is not None


def test_admin_columns_carry_no_style_attributes():
    """HTML the admin classes build passes the CSP too (classes, data attributes).

    Email HTML (campaigns.rendering, demo templates) is not a web page: left out.
    """
    offenders = [
        str(path.relative_to(BASE_DIR))
        for app in ("customers", "orders", "consents", "segments", "campaigns")
        for path in (BASE_DIR / app).glob("admin*.py")
        if "style=" in path.read_text()
    ]
    assert offenders == []
