from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = _("Orders")

    def ready(self) -> None:
        from customers.importers import registry
        from orders.importers.orders import orders_import

        registry.register(
            registry.ImportKind(
                name="orders",
                label=_("Orders"),
                run=orders_import,
                permission="orders.change_order",
            )
        )

        # The data quality page's check of orders without a customer.
        from orders import quality

        quality.register()
