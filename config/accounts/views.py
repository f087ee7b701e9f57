"""Sign-in in two steps, the second factor, recovery codes and passwords.

Sign-in: the password (``LoginView``) signs the user in half way; until the second
factor (``SecondFactorView``, or ``SetupView`` at the first sign-in) every other page
treats them as anonymous (``SecondFactorMiddleware``). Wrong codes count as failed
sign-ins for the lock-out, like wrong passwords.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth import user_login_failed
from django.contrib.auth import views as auth_views
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.generic import FormView, TemplateView
from django_otp import login as otp_login

from config.accounts import devices
from config.accounts.forms import CodeForm, QueuedPasswordResetForm
from config.accounts.middleware import unverified_user

NEW_CODES_SESSION_KEY = "accounts_new_recovery_codes"
# Fewer recovery codes than this left: the pages say to make new ones.
FEW_CODES_LEFT = 3


def _next_url(request: HttpRequest) -> str:
    """The safe ``next`` of the request, or ''."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return ""


def _to(name: str, next_url: str) -> HttpResponseRedirect:
    url = reverse(name)
    if next_url:
        url += "?" + urlencode({"next": next_url})
    return HttpResponseRedirect(url)


def locked_out(request, response=None, credentials=None):
    """django-axes' answer to a locked-out sign-in: the same for every username."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return render(
        request, "accounts/locked.html", {"cooloff_minutes": minutes}, status=429
    )


class LoginView(auth_views.LoginView):
    """The password step. Its errors are the same for every failure."""

    redirect_authenticated_user = True

    def dispatch(self, request, *args, **kwargs):
        if unverified_user(request) is not None:
            return _to("accounts:second-factor", self.get_redirect_url())
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form):
        auth_login(self.request, form.get_user())
        return _to("accounts:second-factor", self.get_redirect_url())


class LogoutView(auth_views.LogoutView):
    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        # Messages live in a cookie first, so this survives the session flush.
        messages.info(request, _("You have been signed out."))
        return response


class _SecondFactorStep(FormView):
    """A page for the user signed in with the password alone."""

    form_class = CodeForm
    # The page also serves a user who has given the second factor already.
    allow_verified = False

    @method_decorator(sensitive_post_parameters("code"))
    @method_decorator(never_cache)
    def dispatch(self, request, *args, **kwargs):
        self.next_url = _next_url(request)
        self.half_signed_in = unverified_user(request) is not None
        self.user = unverified_user(request)
        if self.user is None and self.allow_verified:
            self.user = request.user if request.user.is_authenticated else None
        if self.user is None:
            if request.user.is_authenticated:
                return HttpResponseRedirect(self.next_url or resolve_url("home"))
            return redirect_to_login(self.next_url or resolve_url("home"))
        return self.elsewhere() or super().dispatch(request, *args, **kwargs)

    def elsewhere(self) -> HttpResponseRedirect | None:
        """Where to send the user instead of this page, if anywhere."""
        return None

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.user}

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            next=self.next_url, staff_user=self.user, **kwargs
        )

    def _signed_in(self, device) -> None:
        # django_otp.login marks the session for the user it is given.
        self.request.user = self.user
        otp_login(self.request, device)


class SecondFactorView(_SecondFactorStep):
    """The code from the app, or a recovery code."""

    template_name = "accounts/second_factor.html"

    def elsewhere(self):
        if not devices.has_second_factor(self.user):
            return _to("accounts:two-factor-setup", self.next_url)
        return None

    def form_valid(self, form):
        verification = form.verification
        self._signed_in(verification.device)
        if verification.recovery_code:
            left = devices.recovery_codes_left(self.user)
            message = ngettext(
                "You signed in with a recovery code: %(left)d code is left.",
                "You signed in with a recovery code: %(left)d codes are left.",
                left,
            ) % {"left": left}
            if left < FEW_CODES_LEFT:
                message += " " + str(_("Make new recovery codes on your account page."))
            messages.warning(self.request, message)
        return HttpResponseRedirect(self.next_url or resolve_url("home"))

    def form_invalid(self, form):
        # Counted with the wrong passwords: enough of either locks the account.
        user_login_failed.send(
            sender=__name__,
            credentials={"username": self.user.get_username()},
            request=self.request,
        )
        if getattr(self.request, "axes_locked_out", False):
            auth_logout(self.request)
        return super().form_invalid(form)


class SetupView(_SecondFactorStep):
    """Enrol an authenticator app: at the first sign-in, or to replace the app."""

    template_name = "accounts/setup.html"
    allow_verified = True

    def elsewhere(self):
        if self.half_signed_in and devices.has_second_factor(self.user):
            # Whoever has only the password cannot swap the app: the code first.
            return _to("accounts:second-factor", self.next_url)
        return None

    def get_form_kwargs(self):
        self.device = devices.pending_app(self.user)
        return {**super().get_form_kwargs(), "device": self.device}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["qr_code"] = devices.qr_code_data_uri(self.device)
        context["secret"] = devices.secret_for_typing(self.device)
        context["replacing"] = not self.half_signed_in
        return context

    def form_valid(self, form):
        codes = devices.enrol_app(self.device)
        self._signed_in(self.device)
        self.request.session[NEW_CODES_SESSION_KEY] = codes
        messages.success(self.request, _("Two-step sign-in is on for your account."))
        return _to("accounts:recovery-codes", self.next_url)


@method_decorator(never_cache, name="dispatch")
class RecoveryCodesView(LoginRequiredMixin, TemplateView):
    """New recovery codes, shown once; how many are left."""

    template_name = "accounts/recovery_codes.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        return super().get_context_data(
            new_codes=self.request.session.pop(NEW_CODES_SESSION_KEY, None),
            codes_left=devices.recovery_codes_left(user),
            next=_next_url(self.request),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        request.session[NEW_CODES_SESSION_KEY] = devices.new_recovery_codes(
            request.user
        )
        messages.success(
            request, _("New recovery codes made: the old ones no longer work.")
        )
        return HttpResponseRedirect(reverse("accounts:recovery-codes"))


class AccountView(LoginRequiredMixin, TemplateView):
    template_name = "accounts/account.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        app = devices.confirmed_app(user)
        return super().get_context_data(
            app=app,
            codes_left=devices.recovery_codes_left(user),
            few_codes_left=FEW_CODES_LEFT,
            **kwargs,
        )


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:account")

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, _("Your password has been changed."))
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """The same answer whether the address has an account or not."""

    form_class = QueuedPasswordResetForm
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password-reset-done")


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """A new password from the emailed link; the second factor is still asked."""

    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password-reset-complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"
