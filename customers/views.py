"""Staff pages for customers, and the pieces every staff page builds on.

``StaffPageMixin`` (login, then a model permission, 403 for the logged-in without it),
``paginate_without_count`` and ``ExportView`` (a list's filter as a CSV or XLSX
download) are used by the pages of every app to the right of this one. Orders are
read through the reverse relation ``customer.orders`` only: customers sits left of
orders in the layering and never imports from it. The customer page's timeline is
``customers.selectors.customer_timeline``; its quick log posts to the support desk's
views (``customers.support_views``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import (
    CharField,
    Count,
    Max,
    Min,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import formats
from django.utils.cache import patch_vary_headers
from django.utils.dateparse import parse_date
from django.utils.translation import gettext as _
from django.views.generic import DetailView, RedirectView, TemplateView, View
from django_filters import FilterSet

from customers.exports import FORMATS as EXPORT_FORMATS
from customers.exports import ExportTable, customers_table, export_response
from customers.filters import CustomerFilter
from customers.forms import RECENT_ORDERS, QuickLogForm
from customers.merging import customer_merges_context, merged_into_final
from customers.models import (
    AttributeDefinition,
    Customer,
    CustomerIdentity,
)
from customers.paginators import PageLinks, table_row_estimate
from customers.selectors import customer_timeline, timeline_sources
from customers.signals import personal_data_accessed_send

# The newest orders shown on a customer's page. A catch-all "guest" customer can hold
# tens of thousands of orders; the rest are one click away in the order list.
CUSTOMER_PAGE_ORDERS = 250
# The newest consent ledger entries shown on a customer's page.
CUSTOMER_PAGE_CONSENT_EVENTS = 20
# The newest RFM segment moves on a customer's page.
CUSTOMER_PAGE_RFM_MOVES = 5
# Entries on one page of a customer's timeline.
TIMELINE_PER_PAGE = 25
# The id of the element the timeline's htmx requests swap (and send as HX-Target).
TIMELINE_TARGET = "timeline"


def is_htmx(request: HttpRequest) -> bool:
    """Whether htmx sent the request (and wants a fragment, not a page).

    A history restore (htmx found no copy of the page it goes back to) wants the
    whole page.
    """
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )


class StaffPageMixin(LoginRequiredMixin, PermissionRequiredMixin):
    """Login first (redirect to the login page), then ``permission_required``.

    A logged-in user without the permission gets the 403 page in the layout, never a
    redirect to a login form they cannot use.
    """

    raise_exception = True

    def handle_no_permission(self):
        if not self.request.user.is_authenticated:
            return redirect_to_login(self.request.get_full_path())
        raise PermissionDenied


@dataclass
class CheapPage(PageLinks):
    """One page of a list, found without counting the whole list.

    ``paginate_without_count`` fetches ``per_page + 1`` rows: the extra row only says
    whether a next page exists. A million-row table is never COUNTed; the price is that
    the number of pages is unknown, so the pager offers previous/next, and the total
    is shown only when it is known for free (the last page) or estimated from
    pg_class.reltuples (``customers.paginators.table_row_estimate``) on an unfiltered
    list.
    """

    object_list: list
    number: int
    per_page: int
    has_next: bool

    @property
    def start_index(self) -> int:
        return (self.number - 1) * self.per_page + 1 if self.object_list else 0

    @property
    def end_index(self) -> int:
        return (self.number - 1) * self.per_page + len(self.object_list)

    @property
    def known_total(self) -> int | None:
        """The total row count when this page proves it (the last page), else None."""
        return None if self.has_next else self.end_index

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self) -> int:
        return len(self.object_list)


def paginate_without_count(queryset: QuerySet, page: Any, per_page: int) -> CheapPage:
    """Return page ``page`` (1-based; junk means 1) of an ordered queryset; no COUNT."""
    try:
        number = max(1, int(page))
    except (TypeError, ValueError):
        number = 1
    offset = (number - 1) * per_page
    rows = list(queryset[offset : offset + per_page + 1])
    return CheapPage(
        object_list=rows[:per_page],
        number=number,
        per_page=per_page,
        has_next=len(rows) > per_page,
    )


class HomeView(RedirectView):
    """``/``: the dashboard for those who may see it, else the customer list.

    The Manager and Marketing start their day on the figures, everyone else on the
    customers. The dashboard is the segments app's (right of this one): reached by
    its URL name and its permission's name, never imported.
    """

    DASHBOARD_PERMISSION = "segments.view_dashboard"

    def get_redirect_url(self, *args: Any, **kwargs: Any) -> str:
        if self.request.user.has_perm(self.DASHBOARD_PERMISSION):
            return reverse("dashboard:index")
        return reverse("customers:list")


class ExportView(StaffPageMixin, View):
    """A list's current filter and order as a download: ``…/export/csv/`` or ``xlsx``.

    Subclasses give the list's own ``get_filterset()`` (so the file holds exactly
    what the list shows, on every page) and ``get_table(filterset)``. A filter the
    list would reject sends the user back to the list, which says what is wrong.
    """

    list_url_name = ""

    def get_filterset(self) -> FilterSet:
        raise NotImplementedError

    def get_table(self, filterset: FilterSet) -> ExportTable:
        raise NotImplementedError

    def get(
        self, request: HttpRequest, file_format: str, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        if file_format not in EXPORT_FORMATS:
            raise Http404
        filterset = self.get_filterset()
        if filterset.is_bound and not filterset.form.is_valid():
            list_url = reverse(self.list_url_name)
            return HttpResponseRedirect(f"{list_url}?{request.GET.urlencode()}")
        return export_response(
            self.get_table(filterset),
            file_format=file_format,
            request=request,
            sender=type(self),
        )


class CustomerFilterMixin:
    """The customer list's search, filters and order, from the query string."""

    request: HttpRequest

    def get_filterset(self) -> CustomerFilter:
        return CustomerFilter(
            self.request.GET or None, queryset=Customer.objects.not_merged()
        )


class CustomerListView(CustomerFilterMixin, StaffPageMixin, TemplateView):
    """Search, filter, order and page through customers.

    A search alone (the header search box) that finds exactly one order number or
    exactly one customer goes straight to that page.
    """

    permission_required = "customers.view_customer"
    template_name = "customers/customer_list.html"
    per_page = 50

    def get(self, request, *args, **kwargs):
        target = self.single_match_url()
        if target:
            return HttpResponseRedirect(target)
        return super().get(request, *args, **kwargs)

    def single_match_url(self) -> str | None:
        given = {key for key, value in self.request.GET.items() if value.strip()}
        if given != {"q"}:
            return None
        query = self.request.GET["q"].strip()
        if self.request.user.has_perm("orders.view_order"):
            # The Order model through the reverse relation: no import from orders.
            order_model = Customer._meta.get_field("orders").related_model
            orders = list(
                order_model.objects.filter(number__iexact=query).values_list(
                    "pk", flat=True
                )[:2]
            )
            if len(orders) == 1:
                return reverse("orders:detail", args=[orders[0]])
        customers = list(
            Customer.objects.search(query).order_by().values_list("pk", flat=True)[:2]
        )
        if len(customers) == 1:
            return reverse("customers:detail", args=[customers[0]])
        return None

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        customer_filter = self.get_filterset()
        queryset = customer_filter.qs.prefetch_related("tags")
        page = paginate_without_count(
            queryset, self.request.GET.get("page"), self.per_page
        )
        narrowed = customer_filter.is_narrowed
        context.update(
            filter=customer_filter,
            page=page,
            customers=page.object_list,
            narrowed=narrowed,
            ordering=customer_filter.ordering or CustomerFilter.DEFAULT_ORDERING,
            can_export=self.request.user.has_perm("customers.export_customer"),
            known_total=page.known_total,
            estimated_total=(
                table_row_estimate(Customer.objects.all())
                if not narrowed and page.known_total is None
                else None
            ),
        )
        return context


class CustomerExportView(CustomerFilterMixin, ExportView):
    """The customer list, as filtered and ordered, as CSV or XLSX (generic columns).

    External ids are those of the store the list is filtered by (see
    ``customers_table``); the access log records every exported customer.
    """

    permission_required = ("customers.view_customer", "customers.export_customer")
    list_url_name = "customers:list"

    def get_table(self, filterset: CustomerFilter) -> ExportTable:
        store = filterset.form.cleaned_data.get("store") if filterset.is_bound else None
        return customers_table(filterset.qs, store=store)


def attribute_display(definition: AttributeDefinition, value: Any) -> str:
    """A custom attribute value as text for people, in the active language."""
    kind = AttributeDefinition.Kind
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    if definition.kind == kind.BOOLEAN or isinstance(value, bool):
        return _("Yes") if value else _("No")
    if definition.kind == kind.DATE:
        parsed = value if isinstance(value, dt.date) else parse_date(str(value))
        return formats.date_format(parsed) if parsed else str(value)
    if definition.kind == kind.NUMBER:
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return str(value)
        return formats.number_format(number, use_l10n=True, force_grouping=True)
    return str(value)


def customer_attribute_rows(customer: Customer) -> list[tuple[str, str]]:
    """(label, value) for each active attribute definition the customer has filled."""
    rows = []
    for definition in AttributeDefinition.objects.filter(is_active=True):
        value = (customer.attributes or {}).get(definition.code)
        if value is None or value == "" or value == []:
            continue
        rows.append((definition.label, attribute_display(definition, value)))
    return rows


def customer_order_summary(customer: Customer) -> dict[str, Any]:
    """Lifetime figures: order count, first/last order, revenue and AOV per currency.

    Revenue counts only orders in a revenue status (paid, shipped, delivered); orders
    may be in any currency, so amounts are never added across currencies. One query,
    grouped by currency; the totals over all currencies are summed here.
    """
    orders = customer.orders.all()
    revenue_statuses = Q(status__in=orders.model.REVENUE_STATUSES)
    per_currency = list(
        orders.order_by("currency")
        .values("currency")
        .annotate(
            count=Count("pk"),
            first=Min("placed_at"),
            last=Max("placed_at"),
            orders=Count("pk", filter=revenue_statuses),
            revenue=Sum("total", filter=revenue_statuses),
        )
    )
    revenue = [
        {
            "currency": row["currency"],
            "orders": row["orders"],
            "revenue": row["revenue"],
            "average": (row["revenue"] / row["orders"]).quantize(Decimal("0.01")),
        }
        for row in per_currency
        if row["orders"]
    ]
    return {
        "count": sum(row["count"] for row in per_currency),
        "first": min((row["first"] for row in per_currency), default=None),
        "last": max((row["last"] for row in per_currency), default=None),
        "revenue": revenue,
    }


class CustomerDetailView(StaffPageMixin, DetailView):
    """Everything about one customer on one page, in a bounded number of queries."""

    permission_required = "customers.view_customer"
    template_name = "customers/customer_detail.html"
    context_object_name = "customer"
    # Identities with their store in one query (a nested prefetch would take two).
    queryset = Customer.objects.prefetch_related(
        Prefetch(
            "identities", queryset=CustomerIdentity.objects.select_related("store")
        ),
        "addresses",
        "tags",
    )

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.request.user.has_perm("segments.view_customermetrics"):
            queryset = queryset.prefetch_related(*customer_segments_prefetches())
        return queryset

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        customer = self.object
        addresses = sorted(
            customer.addresses.all(),
            key=lambda a: (not a.is_default, a.kind, -a.updated_at.timestamp()),
        )
        orders = list(
            customer.orders.select_related("store")
            .prefetch_related("lines")
            .order_by("-placed_at", "-pk")[:CUSTOMER_PAGE_ORDERS]
        )
        summary = customer_order_summary(customer)
        context.update(
            addresses=addresses,
            channels=[
                Customer.Channel(code).label
                for code in customer.preferred_channels or []
                if code in Customer.Channel.values
            ],
            attribute_rows=customer_attribute_rows(customer),
            summary=summary,
            orders=orders,
            orders_hidden=max(0, summary["count"] - len(orders)),
            can_change=self.request.user.has_perm("customers.change_customer"),
            **customer_merges_context(self.request, customer),
            can_view_orders=self.request.user.has_perm("orders.view_order"),
            **customer_consents_context(customer),
            # The page's orders are the newest ones: the timeline's are among them.
            **customer_timeline_context(
                self.request, customer, known={"orders": orders}
            ),
            quick_log_form=(
                QuickLogForm(customer=customer, recent_orders=orders[:RECENT_ORDERS])
                if self.request.user.has_perm("customers.add_interaction")
                else None
            ),
        )
        return context

    def merged_redirect(
        self, request: HttpRequest, customer: Customer
    ) -> HttpResponseRedirect:
        """A merged-away record lives on in its survivor: go there."""
        survivor = merged_into_final(customer)
        if survivor is None:
            raise Http404
        messages.info(
            request, _("Record #%(id)s was merged into this one.") % {"id": customer.pk}
        )
        return HttpResponseRedirect(reverse("customers:detail", args=[survivor.pk]))

    def get(self, request, *args, **kwargs):
        if is_htmx(request) and request.headers.get("HX-Target") == TIMELINE_TARGET:
            # A filter or a page of the timeline (or its reload after a quick log):
            # only the timeline, none of the rest of the page's queries.
            self.object = get_object_or_404(Customer, pk=kwargs["pk"])
            response = render(
                request,
                "customers/support/_timeline.html",
                {
                    "customer": self.object,
                    **customer_timeline_context(request, self.object),
                },
            )
        else:
            self.object = self.get_object()
            if self.object.merged_into_id is not None:
                return self.merged_redirect(request, self.object)
            response = self.render_to_response(
                self.get_context_data(object=self.object)
            )
        patch_vary_headers(response, ["HX-Request", "HX-Target"])
        personal_data_accessed_send(
            sender=type(self),
            request=request,
            customer_ids=[self.object.pk],
            action="view",
        )
        return response


def customer_timeline_context(
    request: HttpRequest, customer: Customer, *, known: dict | None = None
) -> dict[str, Any]:
    """What customers/support/_timeline.html shows: a page of the timeline, filtered.

    ``?timeline=<source>`` picks a kind (orders, interactions, consents,
    behaviour), ``?tpage=<n>`` the page; see ``customers.selectors``.
    """
    user = request.user
    page = customer_timeline(
        customer,
        kinds=request.GET.getlist("timeline"),
        page=request.GET.get("tpage"),
        per_page=TIMELINE_PER_PAGE,
        user=user,
        known=known,
    )
    return {
        "timeline": page,
        "timeline_sources": timeline_sources(user),
        "timeline_kind": page.kinds[0] if len(page.kinds) == 1 else "",
    }


def customer_consents_context(customer: Customer) -> dict[str, Any]:
    """What consents/customer_consents.html shows: each active purpose, the ledger.

    Consents sit right of customers: their models are reached by relation and app
    label, never imported. Two queries (three with a long ledger).
    """
    purpose_model = apps.get_model("consents", "ConsentPurpose")
    state = customer.consent_states.model.objects.filter(
        customer=customer, purpose=OuterRef("pk")
    )
    events = list(
        customer.consent_events.select_related("purpose", "text")[
            : CUSTOMER_PAGE_CONSENT_EVENTS + 1
        ]
    )
    return {
        # consent_granted is None for a purpose the customer was never asked about.
        "consent_purposes": purpose_model.objects.filter(is_active=True).annotate(
            consent_granted=Subquery(state.values("granted")),
            consent_changed_at=Subquery(state.values("changed_at")),
        ),
        "consent_events": events[:CUSTOMER_PAGE_CONSENT_EVENTS],
        # Counted only when the page does not show them all.
        "consent_event_count": (
            customer.consent_events.count()
            if len(events) > CUSTOMER_PAGE_CONSENT_EVENTS
            else len(events)
        ),
    }


def customer_segments_prefetches() -> list[Prefetch]:
    """What segments/_customer_panel.html reads: overall metrics, segments, moves.

    Segments sits right of customers: its models are reached by relation and app
    label, never imported. Three queries.
    """
    metrics = Customer._meta.get_field("metrics").related_model
    memberships = Customer._meta.get_field("segment_memberships").related_model
    moves = Customer._meta.get_field("rfm_moves").related_model
    rfm_segment = apps.get_model("segments", "RfmSegment")
    return [
        Prefetch(
            "metrics",
            queryset=metrics.objects.filter(store__isnull=True)
            .select_related("favourite_category")
            .annotate(
                # A renamed segment's name ('' = the standard one).
                rfm_segment_name=Subquery(
                    rfm_segment.objects.filter(code=OuterRef("rfm_segment")).values(
                        "name"
                    )[:1]
                ),
                default_currency=Value(
                    settings.DEFAULT_CURRENCY, output_field=CharField()
                ),
            ),
        ),
        Prefetch(
            "segment_memberships",
            queryset=memberships.objects.select_related("segment").order_by(
                "segment__name"
            ),
        ),
        # A sliced prefetch needs its own attribute.
        Prefetch(
            "rfm_moves",
            queryset=moves.objects.order_by("-moved_at", "-pk")[
                :CUSTOMER_PAGE_RFM_MOVES
            ],
            to_attr="recent_rfm_moves",
        ),
    ]
