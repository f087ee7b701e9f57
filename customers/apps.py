from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = _("Customers")

    def ready(self) -> None:
        from customers.importers import registry
        from customers.importers.customers import customers_import
        from customers.merging import merge_relations_discover
        from customers.models import ApiKey, Store
        from customers.services import api_key_cache_clear

        registry.register(
            registry.ImportKind(
                name="customers",
                label=_("Customers"),
                run=customers_import,
                permission="customers.change_customer",
            )
        )

        # A key or store saved here is read afresh by this process's next request.
        for model in (ApiKey, Store):
            for signal in (post_save, post_delete):
                signal.connect(
                    api_key_cache_clear,
                    sender=model,
                    dispatch_uid=f"api_key_cache_clear_{model.__name__}_{id(signal)}",
                )

        # Every app's declarations of what a merge does with its rows.
        merge_relations_discover()
