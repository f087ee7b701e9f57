"""Public pages reached by signed links in emails: no login, no session.

The preference centre (one form per purpose, Django's CSRF protection through
the csrftoken cookie) and one-click unsubscribe (RFC 8058: the mail provider
POSTs without cookies, so that view is CSRF-exempt and sets no cookie). Pages
are shown in the customer's language. See consents/links.py for the tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from config.clients import client_evidence
from consents.links import (
    preference_token,
    read_preference_token,
    read_unsubscribe_token,
)
from consents.models import ConsentEvent, ConsentPurpose, ConsentState, ConsentText
from consents.services import (
    consent_purpose,
    consent_set,
    consent_text_current,
)
from customers.models import Customer

Source = ConsentEvent.Source
TRUE_VALUES = frozenset({"1", "true", "on", "yes"})


@dataclass(frozen=True)
class PurposeRow:
    """One line of the preference centre."""

    purpose: ConsentPurpose
    granted: bool
    text: ConsentText | None
    changed_at: object
    overridden_by: str  # "", "marketing_objection" or "profiling_objection"


def _page(
    request: HttpRequest,
    template: str,
    context: dict,
    *,
    language: str | None = None,
    status: int = 200,
) -> HttpResponse:
    """Render a public page in ``language`` (the customer's), marked not for robots."""
    language = language or translation.get_language()
    with translation.override(language):
        response = render(
            request,
            f"consents/public/{template}",
            {**context, "page_language": language},
            status=status,
        )
    response["Content-Language"] = language
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _invalid_link(request: HttpRequest) -> HttpResponse:
    return _page(request, "invalid_link.html", {}, status=400)


# --- Preference centre ------------------------------------------------------------


def _rows(customer: Customer) -> list[PurposeRow]:
    states = {
        state.purpose_id: state
        for state in ConsentState.objects.filter(customer=customer)
    }
    rows = []
    for purpose in ConsentPurpose.objects.filter(is_active=True):
        state = states.get(purpose.pk)
        try:
            text = consent_text_current(purpose=purpose, language=customer.language)
        except ValidationError:
            text = None
        overridden_by = ""
        if purpose.is_marketing and customer.marketing_objection_at:
            overridden_by = "marketing_objection"
        elif (
            purpose.code == ConsentPurpose.Code.PROFILING
            and customer.profiling_objection_at
        ):
            overridden_by = "profiling_objection"
        rows.append(
            PurposeRow(
                purpose=purpose,
                granted=bool(state and state.granted),
                text=text,
                changed_at=state.changed_at if state else None,
                overridden_by=overridden_by,
            )
        )
    return rows


def _preference_change(
    request: HttpRequest, customer: Customer
) -> tuple[str, str]:  # (message level, message)
    """Apply one purpose's switch from the posted form; return the message to show."""
    try:
        purpose = consent_purpose(request.POST.get("purpose", ""))
    except ValidationError:
        return "error", _("This choice is not available any more.")
    granted = request.POST.get("granted", "").lower() in TRUE_VALUES
    text = None
    if granted:
        try:
            text = consent_text_current(purpose=purpose, language=customer.language)
        except ValidationError:
            return "error", _("This choice is not available any more.")
        if request.POST.get("text_version") != str(text.version):
            # The person must agree to the words they read.
            return "warning", _(
                "The wording of “%(purpose)s” has changed. Please read it "
                "again and choose once more."
            ) % {"purpose": purpose}
    consent_set(
        customer=customer,
        purpose=purpose,
        granted=granted,
        text=text,
        source=Source.PREFERENCE_CENTRE,
        evidence={"page": "preference_centre"},
        **client_evidence(request),
    )
    if granted:
        return "success", _("Saved: you agreed to “%(purpose)s”.") % {
            "purpose": purpose
        }
    return "success", _("Saved: you no longer agree to “%(purpose)s”.") % {
        "purpose": purpose
    }


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    """The preference centre: every active purpose with its text and a switch."""
    try:
        customer = read_preference_token(token)
    except ValidationError:
        return _invalid_link(request)
    if request.method == "POST":
        with translation.override(customer.language):
            try:
                level, message = _preference_change(request, customer)
            except ValidationError as error:
                level, message = "error", " ".join(error.messages)
            getattr(messages, level)(request, message)
        return HttpResponseRedirect(reverse("consents:preferences", args=[token]))
    return _page(
        request,
        "preferences.html",
        {"customer": customer, "rows": _rows(customer), "token": token},
        language=customer.language,
    )


# --- One-click unsubscribe (RFC 8058) ---------------------------------------------


def _unsubscribe_once(
    request: HttpRequest, customer: Customer, purpose: ConsentPurpose, reference: str
) -> bool:
    """Withdraw ``purpose`` unless already withdrawn; whether a withdrawal was added.

    Mail providers and people repeat the POST: only the first records anything.
    """
    _event, created = consent_set(
        customer=customer,
        purpose=purpose,
        granted=False,
        source=Source.UNSUBSCRIBE_LINK,
        evidence={"reference": reference, "one_click": True},
        **client_evidence(request),
    )
    return created


@csrf_exempt  # Mail providers POST without cookies or a CSRF token (RFC 8058).
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks for confirmation and changes nothing; POST withdraws, answers 200."""
    try:
        customer, purpose, reference = read_unsubscribe_token(token)
    except ValidationError:
        return _invalid_link(request)
    context = {
        "purpose": purpose,
        "preferences_path": reverse(
            "consents:preferences", args=[preference_token(customer)]
        ),
    }
    if request.method == "POST":
        try:
            with translation.override(customer.language):
                _unsubscribe_once(request, customer, purpose, reference)
        except ValidationError:
            return _invalid_link(request)
        return _page(request, "unsubscribed.html", context, language=customer.language)
    state = ConsentState.objects.filter(customer=customer, purpose=purpose).first()
    context["already"] = state is not None and not state.granted
    return _page(request, "unsubscribe.html", context, language=customer.language)
