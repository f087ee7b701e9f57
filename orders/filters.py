"""Filters for the staff order list; each one reuses a named QuerySet method."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from customers.filters import DateRangeInputs, is_narrowed
from customers.models import Customer, Store
from orders.models import Order, OrderQuerySet


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
