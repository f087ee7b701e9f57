"""The dashboard, under /dashboard/ in the "dashboard" namespace.

* ``index`` -- the panels (``segments.dashboard``) for a store or all stores and a
  period (the filter form: last 7, 30 or 90 days, this or last month, this year, or
  from-to), each against the previous period of the same length. The charts are
  drawn in the browser by Chart.js (``static/js/dashboard.js``) from the figures the
  page hands over with ``json_script``; every chart's numbers are also in a table
  under it.
* ``export`` -- one panel's table as CSV, for the same filters.

Everything is read from the pre-aggregated rows (``segments.rollups``); nothing here
writes. The figures are aggregates, never a person's data: no access log.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext_lazy as _
from django.views import View
from django.views.generic import TemplateView

from customers.exports import csv_lines, export_cell
from customers.models import Store
from customers.views import StaffPageMixin
from segments.dashboard import (
    VIEW_DASHBOARD,
    DashboardPeriod,
    PanelTable,
    month_start,
    panel,
    panels_for,
)
from segments.dashboard_panels import refreshed_at

#: The earliest day a custom period may start on, and its longest length.
EARLIEST_DAY = dt.date(2000, 1, 1)
MAX_PERIOD_DAYS = 3 * 366


def preset_period(code: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """The days of a named period, today included where it runs until today."""
    if code in ("7", "30", "90"):
        return today - dt.timedelta(days=int(code) - 1), today
    if code == "month":
        return today.replace(day=1), today
    if code == "last_month":
        first = month_start(today, -1)
        return first, today.replace(day=1) - dt.timedelta(days=1)
    if code == "year":
        return today.replace(month=1, day=1), today
    raise ValueError(code)


class DashboardFilterForm(forms.Form):
    """The dashboard's store and period (GET); a bad custom period says why."""

    PERIODS = [
        ("7", _("Last 7 days")),
        ("30", _("Last 30 days")),
        ("90", _("Last 90 days")),
        ("month", _("This month")),
        ("last_month", _("Last month")),
        ("year", _("This year")),
        ("custom", _("From – to")),
    ]
    DEFAULT = "30"

    store = forms.ModelChoiceField(
        label=_("Store"),
        queryset=Store.objects.order_by("name"),
        required=False,
        empty_label=_("All stores"),
    )
    period = forms.ChoiceField(
        label=_("Period"), choices=PERIODS, required=False, initial=DEFAULT
    )
    start = forms.DateField(
        label=_("From"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    end = forms.DateField(
        label=_("To"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def __init__(self, data: Any = None, *, today: dt.date, **kwargs: Any) -> None:
        if data is not None and not data.get("period"):
            # The select shows what is used: dates alone mean "from - to".
            data = data.copy()
            data["period"] = (
                "custom" if data.get("start") or data.get("end") else self.DEFAULT
            )
        super().__init__(data, **kwargs)
        self.today = today
        for name in ("start", "end"):
            self.fields[name].widget.attrs.update(
                min=EARLIEST_DAY.isoformat(), max=today.isoformat()
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if cleaned.get("period") != "custom":
            return cleaned
        if "start" in self.errors or "end" in self.errors:
            return cleaned
        if start is None:
            self.add_error(
                "start", forms.ValidationError(_("Give the first day."), "required")
            )
        if end is None:
            self.add_error(
                "end", forms.ValidationError(_("Give the last day."), "required")
            )
        if start is None or end is None:
            return cleaned
        if start > end:
            self.add_error(
                "end",
                forms.ValidationError(
                    _("The last day cannot be before the first."), "order"
                ),
            )
        elif end > self.today:
            self.add_error(
                "end",
                forms.ValidationError(
                    _("The period cannot end after today."), "future"
                ),
            )
        elif start < EARLIEST_DAY:
            self.add_error(
                "start",
                forms.ValidationError(
                    _("The period cannot start before %(day)s."),
                    "too_early",
                    params={"day": EARLIEST_DAY.isoformat()},
                ),
            )
        elif (end - start).days + 1 > MAX_PERIOD_DAYS:
            self.add_error(
                "end",
                forms.ValidationError(
                    _("A period can be at most %(days)d days long."),
                    "too_long",
                    params={"days": MAX_PERIOD_DAYS},
                ),
            )
        return cleaned

    def chosen_period(self) -> DashboardPeriod:
        """The period asked for, or the last 30 days of all stores if it is wrong."""
        if self.is_bound and self.is_valid():
            data = self.cleaned_data
            if data["period"] == "custom":
                return DashboardPeriod(data["start"], data["end"], data["store"])
            start, end = preset_period(data["period"], self.today)
            return DashboardPeriod(start, end, data["store"])
        start, end = preset_period(self.DEFAULT, self.today)
        return DashboardPeriod(start, end, None)


def _filters(request: HttpRequest) -> DashboardFilterForm:
    return DashboardFilterForm(request.GET or None, today=timezone.localdate())


class DashboardView(StaffPageMixin, TemplateView):
    """The panels for the chosen store and period (see the module docstring)."""

    permission_required = VIEW_DASHBOARD
    template_name = "segments/dashboard.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = _filters(self.request)
        period = form.chosen_period()
        query = (
            self.request.GET.urlencode() if form.is_bound and form.is_valid() else ""
        )
        shown = []
        charts: dict[str, Any] = {}
        for item in panels_for(self.request.user):
            content = item.build(period)
            if content.chart is not None and content.chart.has_data:
                charts[item.key] = content.chart.as_json()
            shown.append(
                {
                    "panel": item,
                    "content": content,
                    "chart": item.key in charts,
                    "csv_url": reverse("dashboard:export", args=[item.key])
                    + (f"?{query}" if query else ""),
                }
            )
        context.update(
            form=form,
            period=period,
            previous=period.previous,
            panels=shown,
            charts={"currency": settings.DEFAULT_CURRENCY, "charts": charts},
            refreshed=refreshed_at(),
            currency=settings.DEFAULT_CURRENCY,
        )
        return context


class DashboardExportView(StaffPageMixin, View):
    """One panel's table as CSV (UTF-8 with a BOM, as every export of ours)."""

    permission_required = VIEW_DASHBOARD

    def get(self, request: HttpRequest, key: str) -> HttpResponse:
        found = panel(key)
        if found is None:
            raise Http404(_("No such panel."))
        if not found.visible_to(request.user):
            return self.handle_no_permission()
        form = _filters(request)
        if form.is_bound and not form.is_valid():
            # The page says what is wrong with the filters.
            url = reverse("dashboard:index")
            return HttpResponseRedirect(f"{url}?{request.GET.urlencode()}")
        period = form.chosen_period()
        table = found.build(period).table
        scope = f"-{period.store.code}" if period.store is not None else ""
        filename = (
            f"dashboard-{key}{scope}-{period.start:%Y-%m-%d}-{period.end:%Y-%m-%d}.csv"
        )
        response = HttpResponse(
            "".join(csv_lines(_header(table), _cells(table))),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = content_disposition_header(True, filename)
        response["Cache-Control"] = "private, no-store"
        return response


def _header(table: PanelTable) -> list[str]:
    return [export_cell(str(column.label)) for column in table.columns]


def _cells(table: PanelTable) -> list[list[str]]:
    """Plain values: amounts and dates as ISO text, as the other exports write them."""
    rows = list(table.rows)
    if table.totals is not None:
        rows.append(table.totals)
    return [
        [export_cell(_plain(row.get(column.key))) for column in table.columns]
        for row in rows
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 2)
    if value is not None and not isinstance(value, str | int | dt.date):
        return str(value)  # lazy text, Decimal
    return value
