"""Admin for the data quality scan's findings: the likely duplicates, read-only.

The pairs are written only by the scan (``customers.quality.duplicates_scan``):
the admin lists them, filtered by reason and found by either customer, with links
to both records and to the compare-and-merge page. "Rescan for duplicates" queues
the scan (``customers.tasks.duplicates_scan_task``); it needs no selection.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

# customers.admin imports this module last: what it defines is there already.
from customers.admin import ReadOnlyAdmin
from customers.models import Customer, DuplicateCandidate
from customers.quality_views import scan_queue


class DuplicateReasonListFilter(admin.SimpleListFilter):
    title = _("why")
    parameter_name = "reason"

    def lookups(self, request, model_admin):
        return DuplicateCandidate.Reason.choices

    def queryset(self, request, queryset):
        if self.value() in DuplicateCandidate.Reason.values:
            return queryset.filter(reason=self.value())
        return queryset


@admin.register(DuplicateCandidate)
class DuplicateCandidateAdmin(ReadOnlyAdmin):
    # Read-only: a pair deleted by hand would come back with the next scan;
    # merging (or changing a record) is what removes it.

    list_display = (
        "customer_link",
        "other_link",
        "reason",
        "key",
        "score",
        "found_at",
        "compare_link",
    )
    list_filter = (DuplicateReasonListFilter,)
    list_select_related = ("customer", "other")
    # The search box finds pairs by either customer (customers' own search).
    search_fields = ("key",)
    search_help_text = _("Email, phone, name or order number of either customer.")
    sortable_by = ("score", "found_at")
    list_per_page = 50
    # No COUNT of the whole table, and the action bar even on an empty list.
    show_full_result_count = False
    actions = ["rescan"]

    @admin.display(description=_("customer"), ordering="customer_id")
    def customer_link(self, pair: DuplicateCandidate) -> str:
        return self._customer_link(pair.customer)

    @admin.display(description=_("likely the same as"), ordering="other_id")
    def other_link(self, pair: DuplicateCandidate) -> str:
        return self._customer_link(pair.other)

    def _customer_link(self, customer: Customer) -> str:
        url = reverse("admin:customers_customer_change", args=[customer.pk])
        return format_html(
            '<a href="{}">{}</a> <span class="quiet">#{}</span>',
            url,
            str(customer),
            customer.pk,
        )

    @admin.display(description=_("compare"))
    def compare_link(self, pair: DuplicateCandidate) -> str:
        try:
            url = reverse("merges:compare", args=[pair.customer_id, pair.other_id])
        except NoReverseMatch:
            return "—"
        return format_html('<a href="{}">{}</a>', url, _("Compare and merge"))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        customers = Customer.objects.search(term).order_by().values("pk")
        return (
            queryset.filter(
                Q(customer_id__in=customers) | Q(other_id__in=customers) | Q(key=term)
            ),
            False,
        )

    def has_rescan_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    @admin.action(description=_("Rescan for duplicates"), permissions=("rescan",))
    def rescan(self, request: HttpRequest, queryset: QuerySet) -> None:
        scan_queue()
        self.message_user(
            request,
            _("The duplicate scan is queued; the list is replaced when it finishes."),
            messages.SUCCESS,
        )

    def changelist_view(self, request: HttpRequest, extra_context=None):
        # The rescan concerns every pair, not the ticked ones: let it run with none
        # ticked (Django refuses an action without a selection) and on an empty list.
        if (
            request.method == "POST"
            and request.POST.get("action") == "rescan"
            and not request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
        ):
            if not self.has_rescan_permission(request):
                return super().changelist_view(request, extra_context)
            self.rescan(request, self.get_queryset(request).none())
            return HttpResponseRedirect(request.get_full_path())
        return super().changelist_view(request, extra_context)
