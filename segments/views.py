"""Staff pages for segments and RFM, under /segments/ in the "segments" namespace.

* ``list`` -- every segment: kind, size, when rebuilt, how often.
* ``create`` / ``edit`` -- the segment builder: name, kind, schedule and, for a
  dynamic segment, the rule tree (``static/js/segment_builder.js`` keeps it in a
  hidden JSON field; ``preview`` counts who it selects as it is edited).
* ``detail`` -- the definition, a size-over-time chart, recent rebuilds and the
  members, paged without counting (the total is ``Segment.size``); ``rebuild``
  asks for a rebuild, ``export`` takes the members as CSV, and for a static
  segment ``members_paste`` / ``member_remove`` keep the list.
* ``rfm`` -- the recency-by-frequency heat map, the named RFM segments and who
  moved between them; ``rfm_customers`` lists a cell's or a segment's customers.

Every write goes through ``segments.services``; rebuilds run in the worker
(``segments.tasks.segment_rebuild_task``), queued once the request commits
(``segment_rebuild_after_commit``).
Pages and files with customers' personal data report them to the access log
(``personal_data_accessed_send``), as the customer pages do.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.postgres.aggregates import ArrayAgg
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import Count, Max, Sum
from django.db.models.functions import TruncDate
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext_lazy
from django.views import View
from django.views.generic import TemplateView

from customers.exports import customers_table, export_response
from customers.forms import add_service_errors
from customers.models import Address, Customer
from customers.signals import personal_data_accessed_send
from customers.views import StaffPageMixin, paginate_without_count
from segments.forms import MembersPasteForm, RfmStoreForm, SegmentForm, rules_from_text
from segments.models import (
    CustomerMetrics,
    RfmCell,
    RfmSegment,
    RfmSegmentMove,
    RfmThreshold,
    Segment,
    SegmentMembership,
    SegmentRebuild,
)
from segments.rules import builder_schema, describe_rules
from segments.services import (
    segment_create,
    segment_members_paste,
    segment_members_remove,
    segment_preview,
    segment_update,
)
from segments.tasks import segment_rebuild_after_commit

VIEW = "segments.view_segment"
ADD = "segments.add_segment"
CHANGE = "segments.change_segment"
EXPORT = "segments.export_segment"
VIEW_MEMBERS = "segments.view_segmentmembership"
ADD_MEMBERS = "segments.add_segmentmembership"
CHANGE_MEMBERS = "segments.change_segmentmembership"
DELETE_MEMBERS = "segments.delete_segmentmembership"
VIEW_METRICS = "segments.view_customermetrics"
VIEW_CUSTOMER = "customers.view_customer"

Trigger = SegmentRebuild.Trigger

#: Members (and RFM customers) on one page.
MEMBERS_PER_PAGE = 50
#: The size chart's window, in days.
CHART_DAYS = 90
#: Rebuilds listed on a segment's page.
RECENT_REBUILDS = 10
#: The RFM page's movement table: over this many days, the most common moves.
MOVES_DAYS = 30
MOVES_TOP = 20
#: Contacts a paste reports as unknown by name; the rest are counted.
UNKNOWN_SHOWN = 20
#: A live count that takes longer than this is given up (the save still works).
PREVIEW_TIMEOUT_MS = 10_000
#: Heat-map classes: heat-0 (nobody) to heat-9 (the fullest cell).
HEAT_LEVELS = 9


# --- Shared pieces --------------------------------------------------------------------


def rfm_segment_label(segment: RfmSegment) -> str:
    """A named RFM segment's name: as staff set it, else the standard one."""
    return segment.name or str(RfmSegment.Code(segment.code).label)


def rfm_segment_names() -> dict[str, str]:
    """Named RFM segment code -> its name (``rfm_segment_label``)."""
    names = {code: str(label) for code, label in RfmSegment.Code.choices}
    names.update(
        {
            segment.code: rfm_segment_label(segment)
            for segment in RfmSegment.objects.all()
        }
    )
    return names


@dataclass
class CustomerRow:
    """One line of a members or RFM customers list."""

    customer: Customer
    city: str
    metrics: CustomerMetrics | None
    rfm_segment: str  # code, '' when not scored
    rfm_segment_name: str
    member: SegmentMembership | None = None


def customer_rows(
    customers: Iterable[Customer],
    *,
    metrics: dict[int, CustomerMetrics] | None = None,
    members: dict[int, SegmentMembership] | None = None,
) -> list[CustomerRow]:
    """The list columns for a page of customers: three queries, whatever the page.

    ``metrics`` defaults to each customer's overall figures; the city is that of
    the default shipping address, else the default billing one.
    """
    customers = list(customers)
    ids = [customer.pk for customer in customers]
    if not ids:
        return []
    if metrics is None:
        metrics = {
            row.customer_id: row
            for row in CustomerMetrics.objects.overall().filter(customer_id__in=ids)
        }
    cities: dict[int, dict[str, str]] = {}
    for customer_id, kind, city in Address.objects.filter(
        customer_id__in=ids, is_default=True
    ).values_list("customer_id", "kind", "city"):
        cities.setdefault(customer_id, {})[kind] = city
    names = rfm_segment_names()
    rows = []
    for customer in customers:
        figures = metrics.get(customer.pk)
        code = figures.rfm_segment if figures else ""
        by_kind = cities.get(customer.pk, {})
        rows.append(
            CustomerRow(
                customer=customer,
                city=by_kind.get(Address.Kind.SHIPPING)
                or by_kind.get(Address.Kind.BILLING, ""),
                metrics=figures,
                rfm_segment=code,
                rfm_segment_name=names.get(code, code),
                member=(members or {}).get(customer.pk),
            )
        )
    return rows


def log_viewed(request: HttpRequest, sender: Any, rows: list[CustomerRow]) -> None:
    """The access log hears of every customer a page lists."""
    if rows:
        personal_data_accessed_send(
            sender=sender,
            request=request,
            customer_ids=[row.customer.pk for row in rows],
            action="view",
        )


# --- The list -------------------------------------------------------------------------


class SegmentListView(StaffPageMixin, TemplateView):
    """Every segment by name, with its size and when it was last rebuilt."""

    permission_required = VIEW
    template_name = "segments/segment_list.html"
    per_page = 100

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        page = paginate_without_count(
            Segment.objects.order_by("name", "pk"),
            self.request.GET.get("page"),
            self.per_page,
        )
        context.update(
            page=page,
            segments=page.object_list,
            known_total=page.known_total,
            can_add=self.request.user.has_perm(ADD),
        )
        return context


# --- The builder ----------------------------------------------------------------------

#: The builder's own words (the fields' and operators' are in builder_schema()).
BUILDER_TEXTS = {
    "and": gettext_lazy("all of these (AND)"),
    "or": gettext_lazy("any of these (OR)"),
    "not": gettext_lazy("not all of these (NOT)"),
    "match": gettext_lazy("Customers who match"),
    "matchGroup": pgettext_lazy("rule group", "Match"),
    "addCondition": gettext_lazy("Add condition"),
    "addGroup": gettext_lazy("Add group"),
    "removeCondition": gettext_lazy("Remove this condition"),
    "removeGroup": gettext_lazy("Remove this group"),
    "field": gettext_lazy("Field"),
    "operator": gettext_lazy("Operator"),
    "value": gettext_lazy("Value"),
    "from": pgettext_lazy("range", "From"),
    "to": pgettext_lazy("range", "To"),
    "and_between": pgettext_lazy("between two values", "and"),
    "days": gettext_lazy("Within the last (days)"),
    "daysUnit": gettext_lazy("days"),
    "chooseField": gettext_lazy("Choose a field…"),
    "empty": gettext_lazy(
        "No conditions: every customer who may be profiled. Add a condition."
    ),
    "emptyGroup": gettext_lazy("An empty group: add a condition or remove it."),
    "unknownField": gettext_lazy("Unknown field"),
    "group": gettext_lazy("Group of conditions"),
    "condition": gettext_lazy("Condition"),
    "choicesHelp": gettext_lazy("Hold Ctrl (⌘ on a Mac) to choose more than one."),
}


class SegmentFormView(StaffPageMixin, View):
    """The builder: GET shows the form, POST saves it through the services.

    Nothing is saved when the services refuse (their messages show on the form);
    when a dynamic segment's rules are new or changed, a rebuild is queued.
    """

    template_name = "segments/segment_form.html"

    def get_segment(self) -> Segment | None:
        return None

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        segment = self.get_segment()
        return self.render(SegmentForm(segment=segment), segment)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        segment = self.get_segment()
        form = SegmentForm(request.POST, segment=segment)
        if form.is_valid():
            try:
                with transaction.atomic():
                    saved, rules_changed = self.save(form, segment)
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                if saved.is_dynamic and rules_changed:
                    segment_rebuild_after_commit(
                        [saved], trigger=Trigger.EDIT, user=request.user
                    )
                    messages.success(
                        request,
                        _(
                            "“%(name)s” is saved. Its members are being selected: "
                            "the size shows once the rebuild is done."
                        )
                        % {"name": saved.name},
                    )
                else:
                    messages.success(
                        request, _("“%(name)s” is saved.") % {"name": saved.name}
                    )
                return redirect("segments:detail", pk=saved.pk)
        return self.render(form, segment)

    def save(self, form: SegmentForm, segment: Segment | None) -> tuple[Segment, bool]:
        values = form.service_kwargs()
        if segment is None:
            created = segment_create(actor=self.request.user, **values)
            return created, created.is_dynamic
        changed = segment_update(segment=segment, actor=self.request.user, **values)
        return segment, changed

    def render(self, form: SegmentForm, segment: Segment | None) -> HttpResponse:
        context = {
            "form": form,
            "segment": segment,
            "kind": form.chosen_kind,
            "schema": builder_schema(),
            "builder_texts": BUILDER_TEXTS,
        }
        return render(self.request, self.template_name, context)


class SegmentCreateView(SegmentFormView):
    permission_required = ADD


class SegmentEditView(SegmentFormView):
    permission_required = CHANGE

    def get_segment(self) -> Segment:
        return get_object_or_404(Segment, pk=self.kwargs["pk"])


def _has_conditions(tree: Any) -> bool:
    """Whether a rule tree holds a condition (one without selects every customer)."""
    if not isinstance(tree, dict):
        return bool(tree)
    if "field" in tree:
        return True
    return any(_has_conditions(node) for node in tree.get("rules") or [])


class SegmentPreviewView(StaffPageMixin, View):
    """The builder's live count: the posted rules -> "N customers" or what is wrong."""

    permission_required = VIEW
    template_name = "segments/_preview.html"

    def has_permission(self) -> bool:
        user = self.request.user
        return super().has_permission() and (
            user.has_perm(ADD) or user.has_perm(CHANGE)
        )

    def post(self, request: HttpRequest) -> HttpResponse:
        context: dict[str, Any] = {"count": None, "errors": [], "everyone": False}
        try:
            rules = rules_from_text(request.POST.get("rules"))
            context["everyone"] = not _has_conditions(rules)
            context["count"] = self.count(rules)
        except ValidationError as error:
            context["errors"] = error.messages
        except OperationalError:
            context["slow"] = True
        response = render(request, self.template_name, context)
        response["Cache-Control"] = "no-store"
        return response

    def count(self, rules: Any) -> int:
        # A savepoint of its own: a count given up leaves the request usable.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(PREVIEW_TIMEOUT_MS)}")
            return segment_preview(rules)


# --- One segment ----------------------------------------------------------------------


@dataclass
class ChartDay:
    day: dt.date
    size: int
    entered: int
    left: int
    x: float = 0.0
    y: float = 0.0


@dataclass
class SizeChart:
    """The size-over-time chart, as SVG coordinates the template draws."""

    days: list[ChartDay]
    width: int
    height: int
    top: int
    bottom: int
    left: int
    right: int
    max_size: int
    start: dt.date
    end: dt.date
    points: str
    area: str
    gridlines: list[tuple[float, int]]


def size_history(segment: Segment, *, today: dt.date) -> list[ChartDay]:
    """Per day of the chart's window: the size after the day's last rebuild.

    One query: the rebuilds grouped by local day (a segment rebuilt hourly has 24
    a day), newest size first in each group.
    """
    since = today - dt.timedelta(days=CHART_DAYS - 1)
    start = timezone.make_aware(dt.datetime.combine(since, dt.time.min))
    rows = (
        SegmentRebuild.objects.filter(segment=segment, started_at__gte=start)
        .annotate(day=TruncDate("started_at"))
        .values("day")
        .annotate(
            sizes=ArrayAgg("size", order_by="-started_at"),
            entered_sum=Sum("entered"),
            left_sum=Sum("left"),
        )
        .order_by("day")
    )
    return [
        ChartDay(
            day=row["day"],
            size=row["sizes"][0],
            entered=row["entered_sum"],
            left=row["left_sum"],
        )
        for row in rows
    ]


def axis_ceiling(value: int) -> int:
    """A chart axis' top: 1, 2 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover


def size_chart(days: list[ChartDay], *, today: dt.date) -> SizeChart | None:
    """A step line of the size over the window, held flat until today."""
    if not days:
        return None
    width, height = 720, 200
    left, right, top, bottom = 56, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    start = today - dt.timedelta(days=CHART_DAYS - 1)
    max_size = axis_ceiling(max(day.size for day in days))

    def x_of(day: dt.date) -> float:
        return round(left + plot_w * (day - start).days / (CHART_DAYS - 1), 1)

    def y_of(size: int) -> float:
        return round(top + plot_h * (1 - size / max_size), 1)

    points: list[tuple[float, float]] = []
    for day in days:
        day.x, day.y = x_of(day.day), y_of(day.size)
        if points:
            points.append((day.x, points[-1][1]))  # the size held until this day
        points.append((day.x, day.y))
    points.append((x_of(today), points[-1][1]))
    line = " ".join(f"{x},{y}" for x, y in points)
    base = top + plot_h
    area = f"{points[0][0]},{base} {line} {points[-1][0]},{base}"
    steps = (0, max_size // 2, max_size) if max_size % 2 == 0 else (0, max_size)
    gridlines = [(y_of(value), value) for value in steps]
    return SizeChart(
        days=days,
        width=width,
        height=height,
        top=top,
        bottom=base,
        left=left,
        right=width - right,
        max_size=max_size,
        start=start,
        end=today,
        points=line,
        area=area,
        gridlines=gridlines,
    )


class SegmentDetailView(StaffPageMixin, TemplateView):
    """A segment: its definition, size over time, rebuilds and members."""

    permission_required = VIEW
    template_name = "segments/segment_detail.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().get(request, *args, **kwargs)
        log_viewed(request, type(self), response.context_data["rows"])
        return response

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        user = self.request.user
        segment = get_object_or_404(
            Segment.objects.select_related("created_by"), pk=self.kwargs["pk"]
        )
        today = timezone.localdate()
        history = size_history(segment, today=today)
        can_view_members = user.has_perm(VIEW_CUSTOMER) and user.has_perm(VIEW_MEMBERS)
        page, rows = None, []
        if can_view_members:
            page = paginate_without_count(
                SegmentMembership.objects.filter(segment=segment)
                .select_related("customer")
                .order_by("customer_id"),
                self.request.GET.get("page"),
                MEMBERS_PER_PAGE,
            )
            rows = customer_rows(
                [member.customer for member in page.object_list],
                members={member.customer_id: member for member in page.object_list},
            )
        definition, definition_error = "", ""
        if segment.is_dynamic:
            try:
                definition = describe_rules(segment.rules or {})
            except ValidationError as error:
                definition_error = " ".join(error.messages)
        list_editable = not segment.is_dynamic
        rebuilds = list(
            segment.rebuilds.select_related("requested_by")[:RECENT_REBUILDS]
        )
        context.update(
            segment=segment,
            definition=definition,
            definition_error=definition_error,
            chart=size_chart(history, today=today),
            chart_days=CHART_DAYS,
            rebuilds=rebuilds,
            # A list changes without rebuilds: its last change is its newest row.
            changed_at=segment.rebuilt_at
            or (rebuilds[0].finished_at if rebuilds else None),
            can_view_members=can_view_members,
            page=page,
            rows=rows,
            known_total=segment.size,
            can_change=user.has_perm(CHANGE),
            can_export=user.has_perm(EXPORT) and user.has_perm(VIEW_CUSTOMER),
            can_paste=list_editable
            and (user.has_perm(ADD_MEMBERS) or user.has_perm(CHANGE_MEMBERS)),
            can_remove=list_editable
            and (user.has_perm(CHANGE_MEMBERS) or user.has_perm(DELETE_MEMBERS)),
            paste_form=MembersPasteForm(),
            currency=settings.DEFAULT_CURRENCY,
        )
        return context


class SegmentObjectMixin:
    kwargs: dict[str, Any]

    def get_segment(self) -> Segment:
        return get_object_or_404(Segment, pk=self.kwargs["pk"])


class SegmentRebuildView(SegmentObjectMixin, StaffPageMixin, View):
    """The "Rebuild now" button: queued for the worker, back to the segment."""

    permission_required = (VIEW, CHANGE)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        segment = self.get_segment()
        segment_rebuild_after_commit(
            [segment], trigger=Trigger.MANUAL, user=request.user
        )
        messages.success(
            request,
            _("A rebuild of “%(name)s” is on its way: reload in a moment.")
            % {"name": segment.name},
        )
        return redirect("segments:detail", pk=segment.pk)


class SegmentExportView(SegmentObjectMixin, StaffPageMixin, View):
    """The members as CSV in the generic customers format (it imports again).

    Formula-safe cells, restricted and erased customers left out, every exported
    customer in the access log (``customers.exports``).
    """

    permission_required = (VIEW, EXPORT, VIEW_CUSTOMER)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        segment = self.get_segment()
        members = Customer.objects.filter(
            segment_memberships__segment=segment
        ).order_by("pk")
        table = dataclasses.replace(
            customers_table(members), name=f"segment-{segment.pk}"
        )
        return export_response(
            table,
            file_format="csv",
            request=request,
            sender=type(self),
            purpose=f"segment {segment.pk}: {segment.name}",
        )


class SegmentListEditMixin(SegmentObjectMixin):
    """A static segment's list: POST only, back to the members."""

    request: HttpRequest

    def get_segment(self) -> Segment:
        segment = super().get_segment()
        if segment.is_dynamic:
            raise Http404(_("A dynamic segment's members come from its rules."))
        return segment

    def back(self, segment: Segment) -> HttpResponseRedirect:
        url = reverse("segments:detail", args=[segment.pk])
        page = self.request.POST.get("page", "")
        query = f"?{urlencode({'page': page})}" if page.isdigit() else ""
        return HttpResponseRedirect(f"{url}{query}#members")


class SegmentMembersPasteView(SegmentListEditMixin, StaffPageMixin, View):
    """Add the customers a pasted list of emails and phones names."""

    permission_required = VIEW

    def has_permission(self) -> bool:
        user = self.request.user
        return super().has_permission() and (
            user.has_perm(ADD_MEMBERS) or user.has_perm(CHANGE_MEMBERS)
        )

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        segment = self.get_segment()
        form = MembersPasteForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Paste at least one email or phone number."))
            return self.back(segment)
        try:
            result = segment_members_paste(
                segment=segment, text=form.cleaned_data["text"], actor=request.user
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return self.back(segment)
        report_paste(request, result)
        return self.back(segment)


def report_paste(request: HttpRequest, result: dict[str, Any]) -> None:
    added, already, unknown = result["added"], result["already"], result["unknown"]
    messages.success(
        request,
        ngettext(
            "%(count)d customer added to the list.",
            "%(count)d customers added to the list.",
            added,
        )
        % {"count": added},
    )
    if already:
        messages.info(
            request,
            ngettext(
                "%(count)d was on the list already.",
                "%(count)d were on the list already.",
                already,
            )
            % {"count": already},
        )
    if unknown:
        shown = ", ".join(unknown[:UNKNOWN_SHOWN])
        more = len(unknown) - UNKNOWN_SHOWN
        text = ngettext(
            "%(count)d contact matches no customer: %(contacts)s",
            "%(count)d contacts match no customer: %(contacts)s",
            len(unknown),
        ) % {"count": len(unknown), "contacts": shown}
        if more > 0:
            text += " " + ngettext(
                "(and %(count)d more)", "(and %(count)d more)", more
            ) % {"count": more}
        messages.warning(request, text)


class SegmentMemberRemoveView(SegmentListEditMixin, StaffPageMixin, View):
    """Take one customer off a static segment's list."""

    permission_required = VIEW

    def has_permission(self) -> bool:
        user = self.request.user
        return super().has_permission() and (
            user.has_perm(CHANGE_MEMBERS) or user.has_perm(DELETE_MEMBERS)
        )

    def post(self, request: HttpRequest, pk: int, customer_id: int) -> HttpResponse:
        segment = self.get_segment()
        customer = get_object_or_404(Customer, pk=customer_id)
        try:
            removed = segment_members_remove(
                segment=segment, customers=[customer.pk], actor=request.user
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return self.back(segment)
        if removed:
            messages.success(
                request,
                _("%(customer)s is off the list.")
                % {"customer": customer.full_name or customer.email or customer.pk},
            )
        else:
            messages.info(request, _("That customer was not on the list."))
        return self.back(segment)


# --- RFM ------------------------------------------------------------------------------


@dataclass
class GridCell:
    recency: int
    frequency: int
    customers: int
    revenue: Decimal
    heat: int
    segment: RfmSegment | None
    name: str
    query: str


@dataclass
class SegmentFigures:
    segment: RfmSegment
    name: str
    customers: int
    revenue: Decimal
    share: float
    average: Decimal | None
    query: str


def heat_level(customers: int, fullest: int) -> int:
    """0 for an empty cell, else 1..HEAT_LEVELS by the share of the fullest cell."""
    if customers <= 0 or fullest <= 0:
        return 0
    return max(1, min(HEAT_LEVELS, -(-customers * HEAT_LEVELS // fullest)))


def _query(store: Any, **params: Any) -> str:
    if store is not None:
        params["store"] = store.pk
    return urlencode(params)


def _scope(store: Any) -> Any:
    metrics = CustomerMetrics.objects.scored()
    return metrics.filter(store=store) if store is not None else metrics.overall()


class RfmView(StaffPageMixin, TemplateView):
    """The R-by-F heat map, the named segments and the moves between them.

    One GROUP BY over the scored rows of the chosen store (or overall) gives both
    the grid and the segments (``customer_metrics_grid_idx``); no row is loaded.
    """

    permission_required = VIEW_METRICS
    template_name = "segments/rfm.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = RfmStoreForm(self.request.GET or None)
        store = form.chosen_store
        groups = list(
            _scope(store)
            .values("recency_score", "frequency_score", "rfm_segment")
            .annotate(customers=Count("*"), revenue=Sum("revenue"))
            .order_by()
        )
        by_cell: dict[tuple[int, int], list[int | Decimal]] = {}
        by_segment: dict[str, list[int | Decimal]] = {}
        for row in groups:
            for totals, key in (
                (by_cell, (row["recency_score"], row["frequency_score"])),
                (by_segment, row["rfm_segment"]),
            ):
                counted = totals.setdefault(key, [0, Decimal(0)])
                counted[0] += row["customers"]
                counted[1] += row["revenue"] or Decimal(0)
        segments = list(RfmSegment.objects.all())
        by_code = {segment.code: segment for segment in segments}
        cells = {
            (cell.recency, cell.frequency): by_code.get(cell.segment.code)
            for cell in RfmCell.objects.select_related("segment")
        }
        fullest = max((count for count, _revenue in by_cell.values()), default=0)
        grid = [
            [
                GridCell(
                    recency=r,
                    frequency=f,
                    customers=by_cell.get((r, f), [0])[0],
                    revenue=by_cell.get((r, f), [0, Decimal(0)])[1],
                    heat=heat_level(by_cell.get((r, f), [0])[0], fullest),
                    segment=cells.get((r, f)),
                    name=rfm_segment_label(cells[r, f]) if cells.get((r, f)) else "",
                    query=_query(store, r=r, f=f),
                )
                for f in range(1, 6)
            ]
            for r in range(5, 0, -1)
        ]
        total = sum(count for count, _revenue in by_segment.values())
        total_revenue = sum(
            (revenue for _count, revenue in by_segment.values()), Decimal(0)
        )
        figures = []
        for segment in segments:
            count, revenue = by_segment.get(segment.code, [0, Decimal(0)])
            figures.append(
                SegmentFigures(
                    segment=segment,
                    name=rfm_segment_label(segment),
                    customers=count,
                    revenue=revenue,
                    share=(100 * count / total) if total else 0.0,
                    average=(revenue / count).quantize(Decimal("0.01"))
                    if count
                    else None,
                    query=_query(store, segment=segment.code),
                )
            )
        last_run = RfmThreshold.objects.aggregate(
            at=Max("computed_at"), without_rate=Max("orders_without_rate")
        )
        computed_at = last_run["at"]
        context.update(
            form=form,
            store=store,
            grid=grid,
            frequencies=range(1, 6),
            figures=figures,
            total=total,
            total_revenue=total_revenue,
            moves=self.moves(),
            moves_days=MOVES_DAYS,
            computed_at=computed_at,
            orders_without_rate=last_run["without_rate"] or 0,
            empty=computed_at is None and not CustomerMetrics.objects.exists(),
            currency=settings.DEFAULT_CURRENCY,
            fixed_thresholds={
                "recency": settings.RFM_RECENCY_DAYS,
                "frequency": settings.RFM_FREQUENCY_ORDERS,
                "monetary": settings.RFM_MONETARY,
            },
            can_list=self.request.user.has_perm(VIEW_CUSTOMER),
        )
        return context

    def moves(self) -> list[dict[str, Any]]:
        """The most common moves between named segments lately (over all stores)."""
        since = timezone.now() - dt.timedelta(days=MOVES_DAYS)
        names = rfm_segment_names()
        rows = list(
            RfmSegmentMove.objects.filter(moved_at__gte=since)
            .values("from_segment", "to_segment")
            .annotate(customers=Count("*"))
            .order_by("-customers", "from_segment", "to_segment")[:MOVES_TOP]
        )
        for row in rows:
            row["from_name"] = names.get(row["from_segment"], row["from_segment"])
            row["to_name"] = names.get(row["to_segment"], row["to_segment"])
        return rows


def _score(value: str | None) -> int:
    try:
        score = int(value or "")
    except ValueError:
        raise Http404(_("Scores run from 1 to 5.")) from None
    if not 1 <= score <= 5:
        raise Http404(_("Scores run from 1 to 5."))
    return score


class RfmCustomersView(StaffPageMixin, TemplateView):
    """The customers of one grid cell (``?r=&f=``) or named segment (``?segment=``).

    Biggest spenders first, paged without counting (the RFM page has the counts).
    """

    permission_required = (VIEW_METRICS, VIEW_CUSTOMER)
    template_name = "segments/rfm_customers.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().get(request, *args, **kwargs)
        log_viewed(request, type(self), response.context_data["rows"])
        return response

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        params = self.request.GET
        form = RfmStoreForm(params or None)
        store = form.chosen_store
        queryset = _scope(store)
        names = rfm_segment_names()
        code = params.get("segment")
        if code:
            if code not in RfmSegment.Code.values:
                raise Http404(_("No such RFM segment."))
            queryset = queryset.filter(rfm_segment=code)
            title = names.get(code, code)
            cell = None
        else:
            recency, frequency = _score(params.get("r")), _score(params.get("f"))
            queryset = queryset.filter(recency_score=recency, frequency_score=frequency)
            cell = (
                RfmCell.objects.select_related("segment")
                .filter(recency=recency, frequency=frequency)
                .first()
            )
            title = _("R %(r)d · F %(f)d") % {"r": recency, "f": frequency}
        page = paginate_without_count(
            queryset.select_related("customer").order_by("-revenue", "customer_id"),
            params.get("page"),
            MEMBERS_PER_PAGE,
        )
        rows = customer_rows(
            [metrics.customer for metrics in page.object_list],
            metrics={metrics.customer_id: metrics for metrics in page.object_list},
        )
        context.update(
            form=form,
            store=store,
            title=title,
            cell=cell,
            cell_name=names.get(cell.segment.code, "") if cell else "",
            page=page,
            rows=rows,
            known_total=page.known_total,
            currency=settings.DEFAULT_CURRENCY,
            back_query=_query(store),
            keep=[(key, params[key]) for key in ("r", "f", "segment") if key in params],
        )
        return context
