"""Staff pages for orders: the order list (and its export) and one order."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import DetailView, TemplateView
from django_countries import countries

from customers.exports import ExportTable
from customers.paginators import table_row_estimate
from customers.validators import format_phone
from customers.views import ExportView, StaffPageMixin, paginate_without_count
from orders.exports import ADDRESS_KEYS, orders_table
from orders.filters import OrderFilter
from orders.models import Order, OrderLine

# Keys of an address snapshot shown as the address itself; anything else the shop sent
# is listed under it as "key: value". Platforms name the same thing differently.
NAME_KEYS = ADDRESS_KEYS["name"]
STREET_KEYS = ADDRESS_KEYS["street"]
STREET2_KEYS = ADDRESS_KEYS["street2"]
POSTCODE_KEYS = ADDRESS_KEYS["postcode"]
CITY_KEYS = ADDRESS_KEYS["city"]
REGION_KEYS = ADDRESS_KEYS["region"]
KNOWN_KEYS = {
    "first_name",
    "last_name",
    "company",
    "country",
    "country_code",
    "phone",
    "email",
    "nip",
    "vat_id",
    *NAME_KEYS,
    *STREET_KEYS,
    *STREET2_KEYS,
    *POSTCODE_KEYS,
    *CITY_KEYS,
    *REGION_KEYS,
}


def _first(data: dict, keys: tuple[str, ...]) -> str:
    for key in keys:
        value = data.get(key)
        if value not in (None, ""):
            return str(value).strip()
    return ""


def address_snapshot(data: dict | None) -> dict[str, Any]:
    """An order's address snapshot (JSON) as lines of a postal address plus extras."""
    data = data if isinstance(data, dict) else {}
    name = (
        _first(data, NAME_KEYS)
        or " ".join(
            str(data.get(key) or "").strip() for key in ("first_name", "last_name")
        ).strip()
    )
    country_code = _first(data, ("country", "country_code")).upper()
    country = str(countries.name(country_code)) if country_code else ""
    city_line = " ".join(
        part for part in (_first(data, POSTCODE_KEYS), _first(data, CITY_KEYS)) if part
    )
    lines = [
        name,
        str(data.get("company") or "").strip(),
        _first(data, STREET_KEYS),
        _first(data, STREET2_KEYS),
        city_line,
        _first(data, REGION_KEYS),
        country or country_code,
    ]
    contact = []
    phone = str(data.get("phone") or "").strip()
    if phone:
        shown = format_phone(phone) if phone.startswith("+") else phone
        contact.append((_("Phone"), shown))
    if data.get("email"):
        contact.append((_("Email"), str(data["email"])))
    tax_id = _first(data, ("nip", "vat_id"))
    if tax_id:
        contact.append((_("NIP"), tax_id))
    extra = [
        (key.replace("_", " "), value)
        for key, value in data.items()
        if key not in KNOWN_KEYS and value not in (None, "", [], {})
    ]
    lines = [line for line in lines if line]
    return {"lines": lines, "contact": contact, "extra": extra}


# The usual life of an order, then the two ways out of it.
TIMELINE = (
    ("placed", "placed_at", gettext_lazy("Placed")),
    ("paid", "paid_at", gettext_lazy("Paid")),
    ("shipped", "shipped_at", gettext_lazy("Shipped")),
    ("delivered", "delivered_at", gettext_lazy("Delivered")),
    ("cancelled", "cancelled_at", gettext_lazy("Cancelled")),
    ("returned", "returned_at", gettext_lazy("Returned")),
)


def order_timeline(order: Order) -> list[dict[str, Any]]:
    """Steps of the order's life: done ones with their time, pending ones greyed.

    Cancelled and returned appear only when they happened; after a cancellation the
    steps that never happened are left out.
    """
    stopped = order.status == Order.Status.CANCELLED
    steps = []
    for key, field, label in TIMELINE:
        at = getattr(order, field)
        optional = key in ("cancelled", "returned")
        if at is None and (optional or stopped):
            continue
        steps.append({"key": key, "label": label, "at": at, "done": at is not None})
    return steps


class OrderFilterMixin:
    """The order list's filters, newest orders first, from the query string."""

    request: HttpRequest

    def get_filterset(self) -> OrderFilter:
        return OrderFilter(
            self.request.GET or None,
            queryset=Order.objects.select_related("store", "customer").order_by(
                "-placed_at", "-pk"
            ),
        )


class OrderListView(OrderFilterMixin, StaffPageMixin, TemplateView):
    """Orders, newest first, with number search and filters; no COUNT of the table."""

    permission_required = "orders.view_order"
    template_name = "orders/order_list.html"
    per_page = 50

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        order_filter = self.get_filterset()
        page = paginate_without_count(
            order_filter.qs, self.request.GET.get("page"), self.per_page
        )
        narrowed = order_filter.is_narrowed
        customer = (
            order_filter.form.cleaned_data.get("customer")
            if order_filter.is_bound and order_filter.form.is_valid()
            else None
        )
        context.update(
            filter=order_filter,
            page=page,
            orders=page.object_list,
            narrowed=narrowed,
            filtered_customer=customer,
            can_export=self.request.user.has_perm("orders.export_order"),
            known_total=page.known_total,
            estimated_total=(
                table_row_estimate(Order.objects.all())
                if not narrowed and page.known_total is None
                else None
            ),
        )
        return context


class OrderExportView(OrderFilterMixin, ExportView):
    """The order list, as filtered, as CSV or XLSX: one row per order line.

    The access log records the customers of the exported orders.
    """

    permission_required = ("orders.view_order", "orders.export_order")
    list_url_name = "orders:list"

    def get_table(self, filterset: OrderFilter) -> ExportTable:
        return orders_table(filterset.qs)


class OrderDetailView(StaffPageMixin, DetailView):
    """One order: status and its timeline, amounts, addresses and lines."""

    permission_required = "orders.view_order"
    template_name = "orders/order_detail.html"
    context_object_name = "order"
    queryset = Order.objects.select_related("store", "customer").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("category"))
    )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        order = self.object
        context.update(
            timeline=order_timeline(order),
            billing=address_snapshot(order.billing_address),
            shipping=address_snapshot(order.shipping_address),
            can_view_customer=self.request.user.has_perm("customers.view_customer"),
            can_change=self.request.user.has_perm("orders.change_order"),
        )
        return context
