from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsentsConfig(AppConfig):
    name = "consents"
    verbose_name = _("Consents and data protection")

    def ready(self) -> None:
        # Customers sits left of consents: it sends the signal, the log lives here.
        from consents.access_log import personal_data_accessed_receiver
        from customers.signals import personal_data_accessed

        personal_data_accessed.connect(
            personal_data_accessed_receiver,
            dispatch_uid="consents.access_log",
        )
