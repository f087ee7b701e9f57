"""Django admin for categories, products and orders.

Orders come from the shops (API, imports); the admin shows them and never edits them.
Read-only for everyone, including superusers: no add, no change, lines and amounts
included. Deleting stays with the model permission (Manager and superusers), e.g. for
test orders. Status changes belong to the order services, not to a form field.

Also adds the read-only order list to the customer admin (customers cannot import
orders, so the inline is attached from here).

Import and Export buttons (django-import-export) use ``orders.resources``: an import
writes each order through ``order_upsert``, as the shop's API and CSV imports do.
"""

from __future__ import annotations

from django.contrib import admin
from django.db import models
from django.db.models import Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from customers.admin import (
    CustomerAdmin,
    ReadOnlyTabularInline,
    StoreImportExportMixin,
)
from customers.models import Customer
from customers.paginators import EstimatedCountPaginator
from orders.models import Category, Order, OrderLine, Product
from orders.resources import OrderResource


def money(amount, currency: str) -> str:
    """Format an amount with its currency in the active language: 1234,50 PLN."""
    return f"{number_format(amount, 2)} {currency}"


class RecentValuesListFilter(admin.SimpleListFilter):
    """Filter by a free-text column, offering the values of the latest orders.

    Django's AllValuesFieldListFilter runs SELECT DISTINCT over the whole table;
    the latest ``sample_size`` orders (read through the placed_at index) show every
    value in current use at a bounded cost.
    """

    field_name = ""
    sample_size = 5000

    def lookups(self, request, model_admin):
        recent = Order.objects.order_by("-placed_at").values_list(
            self.field_name, flat=True
        )[: self.sample_size]
        values = {value for value in recent if value}
        if self.value():
            values.add(self.value())
        return [(value, value) for value in sorted(values)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.field_name: self.value()})
        return queryset


class CurrencyListFilter(RecentValuesListFilter):
    title = _("currency")
    parameter_name = "currency"
    field_name = "currency"


class PaymentMethodListFilter(RecentValuesListFilter):
    title = _("payment method")
    parameter_name = "payment_method"
    field_name = "payment_method"


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "parent", "store", "external_id", "is_sensitive")
    list_filter = ("store", "is_sensitive")
    list_select_related = ("store", "parent")
    search_fields = ("name", "external_id")
    autocomplete_fields = ("store", "parent")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_display = (
        "name",
        "sku",
        "store",
        "category",
        "price_display",
        "is_active",
        "is_sensitive",
    )
    list_filter = ("store", "is_active", "is_sensitive")
    list_select_related = ("store", "category")
    search_fields = ("name", "=sku", "=external_id")
    autocomplete_fields = ("store", "category")
    readonly_fields = ("created_at", "updated_at")
    # "shop.pl/p/1" typed without a scheme becomes an https link, not an http one.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.display(description=_("price"), ordering="price")
    def price_display(self, product: Product) -> str:
        return money(product.price, product.currency)


class OrderLineInline(ReadOnlyTabularInline):
    model = OrderLine
    fields = (
        "position",
        "sku",
        "name",
        "product_link",
        "quantity",
        "unit_price",
        "total",
    )
    readonly_fields = fields

    @admin.display(description=_("product"))
    def product_link(self, line: OrderLine) -> str:
        # Only the id: no query per line.
        if line.product_id is None:
            return "—"
        url = reverse("admin:orders_product_change", args=[line.product_id])
        return format_html('<a href="{}">{}</a>', url, _("Product"))


@admin.register(Order)
class OrderAdmin(StoreImportExportMixin, admin.ModelAdmin):
    resource_classes = [OrderResource]
    import_permissions = ("orders.add_order", "orders.change_order")
    export_permission = "orders.export_order"
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    list_display = (
        "number",
        "customer_link",
        "store",
        "status",
        "total_display",
        "placed_at",
    )
    list_select_related = ("customer", "store")
    # Only indexed orderings: sorting millions of orders by total takes seconds.
    sortable_by = ("placed_at",)
    list_filter = (
        "status",
        "store",
        CurrencyListFilter,
        "placed_at",
        PaymentMethodListFilter,
    )
    search_fields = ("number", "external_id", "customer__email")
    search_help_text = _("Order number, external id or the customer's email.")
    raw_id_fields = ("customer",)
    inlines = [OrderLineInline]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("number", "external_id"),
                    ("store", "customer"),
                    "status",
                    "placed_at",
                )
            },
        ),
        (
            _("Amounts"),
            {
                "fields": (
                    ("subtotal", "discount_total", "shipping_total", "total"),
                    "currency",
                    "coupon_code",
                )
            },
        ),
        (
            _("Payment and shipping"),
            {
                "fields": (
                    ("payment_method", "shipping_method"),
                    ("paid_at", "shipped_at", "delivered_at"),
                    ("cancelled_at", "returned_at"),
                    ("billing_address", "shipping_address"),
                )
            },
        ),
        (
            _("Source"),
            {
                "classes": ("collapse",),
                "fields": (
                    "source",
                    ("utm_source", "utm_medium", "utm_campaign"),
                    ("created_at", "updated_at"),
                ),
            },
        ),
    )

    @admin.display(description=_("customer"))
    def customer_link(self, order: Order) -> str:
        url = reverse("admin:customers_customer_change", args=[order.customer_id])
        return format_html('<a href="{}">{}</a>', url, order.customer)

    @admin.display(description=_("total"), ordering="total")
    def total_display(self, order: Order) -> str:
        return money(order.total, order.currency)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(number__iexact=term) | Q(external_id=term)
        if "@" in term:
            # Resolve the customer first: an OR across a join defeats the indexes,
            # while customer_id IN (...) combines with them in a bitmap OR.
            customer_ids = list(
                Customer.objects.by_email(term).values_list("pk", flat=True)
            )
            if customer_ids:
                condition |= Q(customer_id__in=customer_ids)
        return queryset.filter(condition), False

    # Orders come from the shop: see the module docstring.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class LatestOrdersFormSet(BaseInlineFormSet):
    """Only the latest orders: a wholesale customer may have thousands."""

    limit = 20

    def get_queryset(self) -> QuerySet:
        if not hasattr(self, "_latest"):
            self._latest = super().get_queryset()[: self.limit]
        return self._latest


class OrderInline(admin.TabularInline):
    """The customer's latest orders, read-only, each linking to its order page."""

    model = Order
    formset = LatestOrdersFormSet
    fk_name = "customer"
    verbose_name_plural = _("latest orders")
    extra = 0
    can_delete = False
    show_change_link = True  # The row title is the order number, linked.
    fields = ("store", "status", "total_display", "placed_at")
    readonly_fields = fields
    ordering = ("-placed_at",)

    @admin.display(description=_("total"))
    def total_display(self, order: Order) -> str:
        return money(order.total, order.currency)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("store")
            .only(
                "pk",
                "number",
                "customer_id",
                "store__name",
                "status",
                "total",
                "currency",
                "placed_at",
            )
        )

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


CustomerAdmin.inlines = [*CustomerAdmin.inlines, OrderInline]
