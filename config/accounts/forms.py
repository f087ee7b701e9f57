from __future__ import annotations

from django import forms
from django.contrib.auth.forms import PasswordResetForm
from django.db import transaction
from django.template import loader
from django.utils.translation import gettext_lazy as _

from config.accounts import devices
from config.accounts.tasks import send_password_reset_task

WRONG_CODE = _(
    "This code is not right. Check that the time on your phone is correct, or use "
    "one of your recovery codes."
)
TOO_MANY = _("Too many wrong codes in a row. Wait a moment, then try again.")


class CodeForm(forms.Form):
    """The second factor: a code from the app, or a recovery code."""

    code = forms.CharField(
        label=_("Code"),
        max_length=32,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autocapitalize": "off",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )

    def __init__(self, *args, user, device=None, **kwargs):
        """``device``: check only this app (enrolment), not the user's devices."""
        super().__init__(*args, **kwargs)
        self.user = user
        self.device = device
        self.verification: devices.Verification | None = None

    def clean_code(self) -> str:
        code = self.cleaned_data["code"]
        if self.device is not None:
            verification = devices.confirm_app(self.device, code)
        else:
            verification = devices.verify(self.user, code)
        if verification.throttled and verification.device is None:
            raise forms.ValidationError(TOO_MANY, code="throttled")
        if verification.device is None:
            raise forms.ValidationError(WRONG_CODE, code="wrong")
        self.verification = verification
        return code


class QueuedPasswordResetForm(PasswordResetForm):
    """Django's reset form, with the email sent by a worker.

    The page then answers as fast for an address that has an account as for one
    that has none: nobody learns from the timing who works here.
    """

    def send_mail(
        self,
        subject_template_name,
        email_template_name,
        context,
        from_email,
        to_email,
        html_email_template_name=None,
    ):
        subject = "".join(
            loader.render_to_string(subject_template_name, context).splitlines()
        )
        body = loader.render_to_string(email_template_name, context)
        transaction.on_commit(
            lambda: send_password_reset_task.delay(
                subject=subject, body=body, to_email=to_email
            )
        )
