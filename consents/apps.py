from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsentsConfig(AppConfig):
    name = "consents"
    verbose_name = _("Consents and data protection")

    def ready(self) -> None:
        # Customers sits left of consents: it sends the signal, the log lives here.
        from consents.access_log import personal_data_accessed_receiver
        from consents.importers import consents_import, customers_consents_import
        from customers.importers import registry
        from customers.signals import personal_data_accessed

        personal_data_accessed.connect(
            personal_data_accessed_receiver,
            dispatch_uid="consents.access_log",
        )

        # Replaces the customers app's own "customers" kind: the consent columns
        # of a customers file go to the ledger in the same transaction.
        registry.register(
            registry.ImportKind(
                name="customers",
                label=_("Customers"),
                run=customers_consents_import,
                permission="customers.change_customer",
            )
        )
        registry.register(
            registry.ImportKind(
                name="consents",
                label=_("Consents"),
                run=consents_import,
                permission="consents.add_consentevent",
            )
        )

        # The data quality page's checks this app knows: undeliverable emails
        # (the suppression list) and leads past the retention period.
        from consents import quality

        quality.register()
