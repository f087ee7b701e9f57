from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "config.accounts"
    label = "accounts"
    verbose_name = _("Staff accounts")

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from config.accounts.middleware import session_started

        user_logged_in.connect(
            lambda sender, request, user, **kwargs: (
                session_started(request)
                if request is not None and hasattr(request, "session")
                else None
            ),
            weak=False,
            dispatch_uid="accounts.session_started",
        )
