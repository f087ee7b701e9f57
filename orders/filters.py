"""Filters for the staff order list and the API; each reuses a named QuerySet rule."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from config.api import StrictFilterSet, UtcDateTimeFilter
from customers.filters import DateRangeInputs, is_narrowed
from customers.models import Customer, Store
from orders.models import Category, Order, OrderQuerySet, Product


class OrderFilter(django_filters.FilterSet):
    """Number search, status, store, placed between and the customer's orders."""

    q = django_filters.CharFilter(
        label=_("Order number"), method="filter_number", widget=forms.SearchInput
    )
    status = django_filters.ChoiceFilter(
        label=_("Status"), choices=Order.Status.choices, empty_label=_("Any status")
    )
    store = django_filters.ModelChoiceFilter(
        label=_("Store"),
        queryset=Store.objects.all(),
        method="filter_store",
        empty_label=_("Any store"),
    )
    placed = django_filters.DateFromToRangeFilter(
        label=_("Placed between"), field_name="placed_at", widget=DateRangeInputs
    )
    customer = django_filters.ModelChoiceFilter(
        label=_("Customer"), queryset=Customer.objects.all(), widget=forms.HiddenInput
    )

    class Meta:
        model = Order
        fields: list[str] = []

    def filter_number(self, queryset: OrderQuerySet, name: str, value: str):
        value = value.strip()
        return queryset.filter(Q(number__iexact=value) | Q(external_id=value))

    def filter_store(self, queryset: OrderQuerySet, name: str, value: Store):
        return queryset.in_store(value)

    @property
    def is_narrowed(self) -> bool:
        """True when any filter is applied."""
        return is_narrowed(self)


class OrderApiFilter(StrictFilterSet):
    """Filters of GET /api/v1/orders/ (the queryset is already the key's store)."""

    customer = django_filters.CharFilter(
        method="filter_customer",
        help_text=_("The store's customer id."),
    )
    status = django_filters.ChoiceFilter(choices=Order.Status.choices)
    placed_after = UtcDateTimeFilter(
        field_name="placed_at",
        lookup_expr="gte",
        help_text=_("Placed at or after this time (ISO 8601)."),
    )
    placed_before = UtcDateTimeFilter(
        field_name="placed_at",
        lookup_expr="lt",
        help_text=_("Placed before this time (ISO 8601)."),
    )
    updated_since = UtcDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text=_("Changed at or after this time (ISO 8601)."),
    )

    class Meta:
        model = Order
        fields = ("customer", "status", "placed_after", "placed_before")

    def filter_customer(self, queryset: OrderQuerySet, name: str, value: str):
        # (store, external id) is unique, so the join matches one identity at most.
        return queryset.filter(
            customer__identities__store=self.request.auth.store,
            customer__identities__external_id=value,
        )


class ProductApiFilter(StrictFilterSet):
    """Filters of GET /api/v1/products/."""

    sku = django_filters.CharFilter()
    external_id = django_filters.CharFilter()
    updated_since = UtcDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text=_("Changed at or after this time (ISO 8601)."),
    )

    class Meta:
        model = Product
        fields = ("sku", "external_id")


class CategoryApiFilter(StrictFilterSet):
    """Filters of GET /api/v1/categories/."""

    external_id = django_filters.CharFilter()

    class Meta:
        model = Category
        fields = ("external_id",)
