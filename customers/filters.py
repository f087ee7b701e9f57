"""Filters for customer lists (staff page, API); each reuses a named QuerySet rule."""

from __future__ import annotations

import django_filters
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django_filters.widgets import DateRangeWidget, SuffixedMultiWidget

from config.api import StrictFilterSet, UtcDateTimeFilter
from customers.models import Customer, CustomerQuerySet, Store, Tag
from customers.validators import normalize_phone


class DateRangeInputs(DateRangeWidget):
    """Two browser date pickers, submitted as ``<name>_after`` and ``<name>_before``."""

    template_name = "customers/widgets/date_range.html"

    def __init__(self, attrs=None):
        widgets = (
            forms.DateInput({"type": "date", "aria-label": _("from")}, "%Y-%m-%d"),
            forms.DateInput({"type": "date", "aria-label": _("to")}, "%Y-%m-%d"),
        )
        SuffixedMultiWidget.__init__(self, widgets, attrs)


def is_narrowed(filterset: django_filters.FilterSet, *, ignore: tuple = ()) -> bool:
    """True when a valid bound filterset has a value in any field outside ``ignore``."""
    if not filterset.is_bound or not filterset.form.is_valid():
        return False
    for name, value in filterset.form.cleaned_data.items():
        if name in ignore or value in (None, "", []):
            continue
        if isinstance(value, slice) and value.start is None and value.stop is None:
            continue
        return True
    return False


class CustomerFilter(django_filters.FilterSet):
    """Search box, filters and ordering of the customer list.

    ``ORDERINGS`` maps the ``o`` parameter to columns; every ordering ends in the
    primary key so that pages never repeat or skip rows that tie.
    """

    ORDERINGS = {
        "-created": ("-created_at", "-pk"),
        "created": ("created_at", "pk"),
        "name": ("last_name", "first_name", "pk"),
        "-name": ("-last_name", "-first_name", "-pk"),
        "email": ("email", "pk"),
        "-email": ("-email", "-pk"),
        "status": ("status", "-created_at", "-pk"),
        "-status": ("-status", "-created_at", "-pk"),
    }
    DEFAULT_ORDERING = "-created"

    q = django_filters.CharFilter(
        label=_("Search"), method="filter_search", widget=forms.SearchInput
    )
    status = django_filters.ChoiceFilter(
        label=_("Status"), choices=Customer.Status.choices, empty_label=_("Any status")
    )
    store = django_filters.ModelChoiceFilter(
        label=_("Store"),
        queryset=Store.objects.all(),
        method="filter_store",
        empty_label=_("Any store"),
    )
    tag = django_filters.ModelChoiceFilter(
        label=_("Tag"),
        queryset=Tag.objects.all(),
        method="filter_tag",
        empty_label=_("Any tag"),
    )
    language = django_filters.ChoiceFilter(
        label=_("Language"), choices=settings.LANGUAGES, empty_label=_("Any language")
    )
    created = django_filters.DateFromToRangeFilter(
        label=_("Created between"), field_name="created_at", widget=DateRangeInputs
    )
    o = django_filters.ChoiceFilter(
        label=_("Order by"),
        choices=[(key, key) for key in ORDERINGS],
        method="filter_ordering",
        empty_label=None,
    )

    class Meta:
        model = Customer
        fields: list[str] = []

    def filter_search(self, queryset: CustomerQuerySet, name: str, value: str):
        return queryset.search(value)

    def filter_store(self, queryset: CustomerQuerySet, name: str, value: Store):
        return queryset.in_store(value)

    def filter_tag(self, queryset: CustomerQuerySet, name: str, value: Tag):
        return queryset.with_tag(value)

    def filter_ordering(self, queryset: CustomerQuerySet, name: str, value: str):
        return queryset.order_by(*self.ORDERINGS[value])

    @property
    def qs(self):
        queryset = super().qs
        if not self.ordering:
            queryset = queryset.order_by(*self.ORDERINGS[self.DEFAULT_ORDERING])
        return queryset

    @property
    def ordering(self) -> str:
        """The chosen ``o`` value, or "" for the default."""
        if not self.is_bound or not self.form.is_valid():
            return ""
        return self.form.cleaned_data.get("o") or ""

    @property
    def is_narrowed(self) -> bool:
        """True when a search or filter is applied (ordering alone does not count)."""
        return is_narrowed(self, ignore=("o",))


class CustomerApiFilter(StrictFilterSet):
    """Filters of GET /api/v1/customers/; each reuses a named QuerySet rule."""

    email = django_filters.CharFilter(method="filter_email")
    phone = django_filters.CharFilter(method="filter_phone")
    external_id = django_filters.CharFilter(method="filter_external_id")
    updated_since = UtcDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    tag = django_filters.CharFilter(field_name="tags__name", lookup_expr="iexact")

    class Meta:
        model = Customer
        fields = ("email", "phone", "external_id", "updated_since", "tag")

    def filter_email(self, queryset, name, value):
        return queryset.by_email(value.strip())

    def filter_external_id(self, queryset, name, value):
        return queryset.filter(
            identities__store=self.request.auth.store, identities__external_id=value
        )

    def filter_phone(self, queryset, name, value):
        try:
            return queryset.filter(phone=normalize_phone(value))
        except ValidationError:
            return queryset.none()
