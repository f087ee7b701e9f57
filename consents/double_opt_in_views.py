"""The public double opt-in page: the link from the confirmation email. No login.

A GET only shows what is being confirmed, with a button: mail scanners and link
previews open links, and must not consent on the person's behalf. The POST
confirms.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import render
from django.utils import translation
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from config.clients import client_evidence
from consents.double_opt_in import double_opt_in_confirm, double_opt_in_lookup
from consents.models import DoubleOptIn

TEMPLATES = "consents/double_opt_in/"


def _error_code(error: ValidationError) -> str:
    errors = getattr(error, "error_dict", {}).get("token") or error.error_list
    return errors[0].code or "invalid"


# CSRF is off on purpose: the signed, single-use token in the address is the only
# authority here, and no cookie or session grants anything. A forged cross-site
# POST needs the token, and whoever has the token can confirm anyway. Keeping CSRF
# would instead refuse people whose mail app's browser blocks cookies.
@method_decorator([csrf_exempt, never_cache], name="dispatch")
class DoubleOptInConfirmView(View):
    """Show the sign-up and a Confirm button (GET); confirm it (POST)."""

    @classmethod
    def as_view(cls, **initkwargs):
        # The service holds its own transaction; the request needs none.
        return transaction.non_atomic_requests(super().as_view(**initkwargs))

    def get(self, request, token: str):
        try:
            signup = double_opt_in_lookup(token)
        except ValidationError as error:
            return self._refused(request, _error_code(error))
        if signup.confirmed_at is not None:
            return self._done(request, signup, already=True)
        return self._page(request, "confirm.html", signup)

    def post(self, request, token: str):
        try:
            signup = double_opt_in_confirm(
                token=token,
                **client_evidence(request),
            )
        except ValidationError as error:
            code = _error_code(error)
            if code == "used":
                return self.get(request, token)  # the "already confirmed" page
            return self._refused(request, code)
        return self._done(request, signup, already=False)

    def _page(self, request, template: str, signup: DoubleOptIn, **context):
        # The page speaks the language of the text the person is asked about.
        with translation.override(signup.text.language):
            response = render(
                request,
                TEMPLATES + template,
                {
                    "signup": signup,
                    "customer": signup.customer,
                    "text": signup.text,
                    "store": signup.store,
                    **context,
                },
            )
        response.headers["Content-Language"] = signup.text.language
        return response

    def _done(self, request, signup: DoubleOptIn, *, already: bool):
        return self._page(request, "done.html", signup, already=already)

    def _refused(self, request, code: str):
        return render(
            request,
            TEMPLATES + "refused.html",
            {"code": code, "link_days": settings.DOUBLE_OPT_IN_LINK_DAYS},
            status=400,
        )
