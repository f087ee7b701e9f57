"""The orders app's data quality check: orders without a customer.

Registered from ``OrdersConfig.ready()``. Every order points at a customer record,
but not every record is someone: an order imported from a file that named no
customer gets a record of its own made from the order's name, with no email, no
phone and no id in any store (``orders.importers.orders``): nobody the shop could
reach or recognise. The check lists those orders, and orders still pointing at a
merged-away record (a merge moves a record's orders to the one that survives).
Orders of erased customers are left out: they are kept for accounting on purpose.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from customers.models import CustomerIdentity
from customers.quality import QualityCheck, QualityColumn, register_check
from orders.models import Order


def orders_without_customer() -> QuerySet:
    """Orders whose customer is nobody the shop knows (see the module docstring)."""
    nobody = Q(
        customer__email__isnull=True,
        customer__phone="",
        customer__erased_at__isnull=True,
    ) & ~Q(Exists(CustomerIdentity.objects.filter(customer=OuterRef("customer_id"))))
    return Order.objects.filter(nobody | Q(customer__merged_into__isnull=False))


def _customer(order: Any) -> str:
    customer = order.customer
    return customer.full_name or customer.company or f"#{customer.pk}"


def _problem(order: Any) -> str:
    if order.customer.merged_into_id:
        return str(_("Customer merged away"))
    return str(_("No customer details"))


def register() -> None:
    """Register the orders app's check (from ``OrdersConfig.ready``)."""
    register_check(
        QualityCheck(
            code="orders-without-customer",
            label=_("Orders without a customer"),
            help_text=_(
                "Orders whose customer record has no email, no phone and no id in "
                "any store (imported from a file that named no customer), or is "
                "a record merged into another."
            ),
            model=Order,
            rule=orders_without_customer,
            prepare=lambda orders: orders.select_related("store", "customer"),
            columns=(
                QualityColumn(
                    "number",
                    pgettext_lazy("order number", "Number"),
                    lambda o: o.number,
                ),
                QualityColumn("placed_at", _("Placed at"), lambda o: o.placed_at),
                QualityColumn(
                    "status",
                    _("Status"),
                    lambda o: o.status,
                    lambda o: o.get_status_display(),
                ),
                QualityColumn("total", _("Total"), lambda o: o.total),
                QualityColumn("currency", _("Currency"), lambda o: o.currency),
                QualityColumn(
                    "store", _("Store"), lambda o: o.store.code, lambda o: o.store.name
                ),
                QualityColumn("customer_id", _("Customer id"), lambda o: o.customer_id),
                QualityColumn("customer_name", _("Customer"), _customer),
                QualityColumn("problem", _("Problem"), _problem),
            ),
            customer_ids=lambda order: [order.customer_id],
            url=lambda order: reverse("orders:detail", args=[order.pk]),
            permissions=("customers.view_duplicatecandidate", "orders.view_order"),
            export_permissions=("orders.export_order",),
            position=70,
        )
    )
