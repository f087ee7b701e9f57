"""The segments app's dashboard panels, and the reads behind them.

Everything is read from the pre-aggregated rows of ``segments.rollups`` (a year of
five million orders is a few thousand rows there), never from the orders:

- money is converted to the default currency at the current ``CurrencyRate`` as
  it is read, as the RFM figures do; orders in a currency with no rate count as
  orders but not as revenue, and the page says how many there are;
- the average order value is the revenue over the orders that have a price in the
  default currency (the RFM rule);
- customers are counted once however often they ordered in the period. With
  ``DailyCustomers`` that is exact for any period: the customer-days of the period,
  less the pairs of a customer's consecutive order days that both fall inside it
  (a customer with k order days in the period has k - 1 of them). Each day's row
  holds, cumulated by gap, the pairs ending that day, so the pairs inside a period
  starting on ``start`` are, summed over its days d, ``repeat_gaps[d - start]``;
- a new customer placed their first order (in the store, or in any store for all
  stores) in the period; a returning one ordered before the period and again in it;
- the repeat purchase rate is the share of the period's customers who have ordered
  on at least two different days by the end of the period: the returning customers
  and the new ones who came back within the period (those whose second order day
  is in the period: ``second_order_gaps``, as above).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Max, Sum
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from orders.models import Category
from segments.dashboard import (
    ChartSpec,
    Column,
    DashboardPeriod,
    Dataset,
    Panel,
    PanelContent,
    PanelTable,
    format_value,
    month_start,
    register_panel,
    share,
)
from segments.models import (
    CurrencyRate,
    DailyBrandSales,
    DailyCategorySales,
    DailySales,
    DashboardRefresh,
    DashboardSnapshot,
    RfmSegment,
)
from segments.rfm import SEGMENT_COLORS
from segments.rollups import COHORT_MONTHS, first_cohort

CENT = Decimal("0.01")
#: Periods up to this many days are drawn day by day, longer ones week by week.
DAILY_UP_TO_DAYS = 92
#: Categories and brands in their top lists.
TOP = 10
#: The charts' colours: the current period, the previous one, and a series palette.
CURRENT_COLOR = "#4338ca"
PREVIOUS_COLOR = "#94a3b8"
NEW_COLOR = "#0ea5e9"
RETURNING_COLOR = "#4338ca"
EMAIL_COLOR = "#4338ca"
SMS_COLOR = "#0d9488"
BAR_COLOR = "#6366f1"


# --- Money ------------------------------------------------------------------------


def currency_rates() -> dict[str, Decimal]:
    """Currency -> value of one unit in the default currency (itself: 1)."""
    rates = dict(CurrencyRate.objects.values_list("currency", "rate"))
    rates[settings.DEFAULT_CURRENCY] = Decimal(1)
    return rates


def _in_store(queryset: Any, period: DashboardPeriod) -> Any:
    queryset = queryset.filter(day__range=(period.start, period.end))
    if period.store is not None:
        queryset = queryset.filter(store=period.store)
    return queryset


# --- Sales ------------------------------------------------------------------------


@dataclass(frozen=True)
class SalesFigures:
    revenue: Decimal
    orders: int
    priced_orders: int

    @property
    def orders_without_rate(self) -> int:
        return self.orders - self.priced_orders

    @property
    def average_order_value(self) -> Decimal | None:
        if not self.priced_orders:
            return None
        return (self.revenue / self.priced_orders).quantize(CENT)


def sales_figures(
    period: DashboardPeriod, rates: dict[str, Decimal] | None = None
) -> SalesFigures:
    """Revenue (default currency), orders and the orders with a price, in the period."""
    rates = rates if rates is not None else currency_rates()
    revenue, orders, priced = Decimal(0), 0, 0
    for row in (
        _in_store(DailySales.objects, period)
        .values("currency")
        .annotate(orders_sum=Sum("orders"), revenue_sum=Sum("revenue"))
        .order_by()
    ):
        orders += row["orders_sum"]
        rate = rates.get(row["currency"])
        if rate is not None:
            priced += row["orders_sum"]
            revenue += row["revenue_sum"] * rate
    return SalesFigures(
        revenue=revenue.quantize(CENT), orders=orders, priced_orders=priced
    )


def _buckets(period: DashboardPeriod) -> int:
    """Days per point of the period's time charts."""
    return 1 if period.days <= DAILY_UP_TO_DAYS else 7


def revenue_by_bucket(
    period: DashboardPeriod, step: int, rates: dict[str, Decimal]
) -> list[Decimal]:
    """The revenue of each ``step`` days of the period, from its first day."""
    points = [Decimal(0)] * -(-period.days // step)
    for row in (
        _in_store(DailySales.objects, period)
        .values("day", "currency")
        .annotate(revenue_sum=Sum("revenue"))
        .order_by()
    ):
        rate = rates.get(row["currency"])
        if rate is not None:
            points[(row["day"] - period.start).days // step] += (
                row["revenue_sum"] * rate
            )
    return [point.quantize(CENT) for point in points]


# --- Customers --------------------------------------------------------------------


def _store_condition(period: DashboardPeriod) -> str:
    return "store_id IS NULL" if period.store is None else "store_id = %(store)s"


def _pairs(column: str, origin: str) -> str:
    """The pairs of ``column`` (repeat_gaps...) whose earlier day is on/after origin."""
    return f"coalesce(sum({column}[least(day - {origin}, cardinality({column}))]), 0)"


@dataclass(frozen=True)
class CustomerFigures:
    customers: int
    new: int
    new_repeating: int  # new customers who ordered again within the period

    @property
    def returning(self) -> int:
        return self.customers - self.new

    @property
    def repeat_rate(self) -> float | None:
        return share(self.returning + self.new_repeating, self.customers)


def customer_figures(period: DashboardPeriod) -> CustomerFigures:
    """Distinct customers, new ones and new ones who came back, in the period."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT coalesce(sum(customers), 0) - {_pairs("repeat_gaps", "%(start)s")},
                coalesce(sum(new_customers), 0),
                {_pairs("second_order_gaps", "%(start)s")}
            FROM segments_dailycustomers
            WHERE day BETWEEN %(start)s AND %(end)s AND {_store_condition(period)}
            """,  # noqa: S608
            {"start": period.start, "end": period.end, "store": period.store_id},
        )
        customers, new, new_repeating = cursor.fetchone()
    return CustomerFigures(
        customers=int(customers), new=int(new), new_repeating=int(new_repeating)
    )


def customers_by_bucket(period: DashboardPeriod, step: int) -> list[tuple[int, int]]:
    """(customers, new customers) of each ``step`` days of the period."""
    points = [(0, 0)] * -(-period.days // step)
    with connection.cursor() as cursor:
        # A bucket starts (day - start) % step days before the day.
        cursor.execute(
            f"""
            SELECT (day - %(start)s) / %(step)s AS bucket,
                coalesce(sum(customers), 0) - {
                _pairs("repeat_gaps", "(day - (day - %(start)s) %% %(step)s)")
            },
                coalesce(sum(new_customers), 0)
            FROM segments_dailycustomers
            WHERE day BETWEEN %(start)s AND %(end)s AND {_store_condition(period)}
            GROUP BY 1
            """,  # noqa: S608
            {
                "start": period.start,
                "end": period.end,
                "store": period.store_id,
                "step": step,
            },
        )
        for bucket, customers, new in cursor.fetchall():
            points[bucket] = (int(customers), int(new))
    return points


# --- Key figures ------------------------------------------------------------------


@dataclass
class Kpi:
    """One key figure, now and in the previous period."""

    key: str
    label: str
    kind: str  # money, int or percent
    value: Any
    previous: Any
    help: str = ""

    @property
    def change(self) -> float | None:
        """Per cent change; for a percentage, the change in percentage points."""
        if self.value is None or self.previous is None:
            return None
        if self.kind == "percent":
            return float(self.value) - float(self.previous)
        if not self.previous:
            return None
        return (float(self.value) - float(self.previous)) * 100 / float(self.previous)

    @property
    def direction(self) -> str:
        change = self.change
        if change is None:
            return "none"
        if round(change, 1) > 0:
            return "up"
        if round(change, 1) < 0:
            return "down"
        return "flat"

    @property
    def value_display(self) -> str:
        return format_value(self.kind, self.value)

    @property
    def previous_display(self) -> str:
        return format_value(self.kind, self.previous)

    @property
    def change_display(self) -> str:
        change = self.change
        if change is None:
            return "—"
        text = formats.number_format(abs(round(change, 1)), 1, use_l10n=True)
        sign = {"up": "+", "down": "−"}.get(self.direction, "±")
        unit = _("pp") if self.kind == "percent" else "%"
        return (
            f"{sign}{text}\u00a0{unit}" if self.kind == "percent" else f"{sign}{text}%"
        )


def kpis(period: DashboardPeriod, sales: SalesFigures | None = None) -> list[Kpi]:
    """The key figures of the period and the previous one (``sales``: if known)."""
    rates = currency_rates()
    sales = sales or sales_figures(period, rates)
    before = sales_figures(period.previous, rates)
    people = customer_figures(period)
    people_before = customer_figures(period.previous)
    return [
        Kpi("revenue", _("Revenue"), "money", sales.revenue, before.revenue),
        Kpi("orders", _("Orders"), "int", sales.orders, before.orders),
        Kpi(
            "average_order_value",
            _("Average order value"),
            "money",
            sales.average_order_value,
            before.average_order_value,
        ),
        Kpi(
            "customers",
            _("Customers"),
            "int",
            people.customers,
            people_before.customers,
        ),
        Kpi("new_customers", _("New customers"), "int", people.new, people_before.new),
        Kpi(
            "returning_customers",
            _("Returning customers"),
            "int",
            people.returning,
            people_before.returning,
        ),
        Kpi(
            "repeat_rate",
            _("Repeat purchase rate"),
            "percent",
            people.repeat_rate,
            people_before.repeat_rate,
            help=_(
                "Customers of the period who have ordered on at least two different "
                "days by its end."
            ),
        ),
    ]


def summary_panel(period: DashboardPeriod) -> PanelContent:
    sales = sales_figures(period)
    figures = kpis(period, sales)
    table = PanelTable(
        columns=[
            Column("label", _("Figure")),
            Column("value", _("This period")),
            Column("previous", _("Previous period")),
            Column("change", _("Change")),
        ],
        rows=[
            {
                "label": kpi.label,
                "value": kpi.value,
                "previous": kpi.previous,
                "change": None if kpi.change is None else round(kpi.change, 1),
            }
            for kpi in figures
        ],
    )
    return PanelContent(
        table=table,
        extra={"kpis": figures, "orders_without_rate": sales.orders_without_rate},
    )


# --- Revenue over time ------------------------------------------------------------


def _bucket_starts(period: DashboardPeriod, step: int) -> list[dt.date]:
    return [
        period.start + dt.timedelta(days=offset)
        for offset in range(0, period.days, step)
    ]


def revenue_panel(period: DashboardPeriod) -> PanelContent:
    rates = currency_rates()
    step = _buckets(period)
    current = revenue_by_bucket(period, step, rates)
    previous = revenue_by_bucket(period.previous, step, rates)
    days = _bucket_starts(period, step)
    previous_days = _bucket_starts(period.previous, step)
    currency = settings.DEFAULT_CURRENCY
    table = PanelTable(
        columns=[
            Column("day", _("Day") if step == 1 else _("Week from"), "date"),
            Column("revenue", _("Revenue (%s)") % currency, "money"),
            Column(
                "previous_day",
                _("Previous period: day")
                if step == 1
                else _("Previous period: week from"),
                "date",
            ),
            Column("previous_revenue", _("Previous period (%s)") % currency, "money"),
        ],
        rows=[
            {
                "day": day,
                "revenue": revenue,
                "previous_day": previous_day,
                "previous_revenue": before,
            }
            for day, revenue, previous_day, before in zip(
                days, current, previous_days, previous, strict=True
            )
        ],
        totals={
            "day": _("Total"),
            "revenue": sum(current, Decimal(0)),
            "previous_day": "",
            "previous_revenue": sum(previous, Decimal(0)),
        },
    )
    chart = ChartSpec(
        kind="line",
        labels=[day.isoformat() for day in days],
        dates=True,
        format="money",
        datasets=[
            Dataset(_("This period"), list(current), CURRENT_COLOR),
            Dataset(
                _("Previous period"),
                list(previous),
                PREVIOUS_COLOR,
                dates=[day.isoformat() for day in previous_days],
            ),
        ],
    )
    note = (
        _("Day by day.")
        if step == 1
        else _("Week by week, from the first day of the period.")
    )
    return PanelContent(table=table, chart=chart, note=note)


# --- New and returning customers --------------------------------------------------


def customers_panel(period: DashboardPeriod) -> PanelContent:
    step = _buckets(period)
    points = customers_by_bucket(period, step)
    days = _bucket_starts(period, step)
    rows = [
        {
            "day": day,
            "new": new,
            "returning": customers - new,
            "customers": customers,
        }
        for day, (customers, new) in zip(days, points, strict=True)
    ]
    figures = customer_figures(period)
    table = PanelTable(
        columns=[
            Column("day", _("Day") if step == 1 else _("Week from"), "date"),
            Column("new", _("New customers"), "int"),
            Column("returning", _("Returning customers"), "int"),
            Column("customers", _("Customers"), "int"),
        ],
        rows=rows,
        totals={
            "day": _("Whole period"),
            "new": figures.new,
            "returning": figures.returning,
            "customers": figures.customers,
        },
    )
    chart = ChartSpec(
        kind="bar",
        labels=[day.isoformat() for day in days],
        dates=True,
        stacked=True,
        datasets=[
            Dataset(_("New customers"), [row["new"] for row in rows], NEW_COLOR),
            Dataset(
                _("Returning customers"),
                [row["returning"] for row in rows],
                RETURNING_COLOR,
            ),
        ],
    )
    note = _(
        "A customer counts once per day or week however many orders they placed; "
        "the whole period's line counts each customer once."
    )
    return PanelContent(
        table=table,
        chart=chart,
        note=note,
        empty=_("Nobody ordered in this period."),
    )


# --- Top categories and brands ----------------------------------------------------


def _top_rows(
    rows: list[dict[str, Any]], rates: dict[str, Decimal], key: str
) -> tuple[list[dict[str, Any]], Decimal]:
    """Rows per currency -> rows per ``key`` in the default currency, best first."""
    merged: dict[Any, dict[str, Any]] = {}
    for row in rows:
        rate = rates.get(row["currency"])
        item = merged.setdefault(
            row[key],
            {key: row[key], "revenue": Decimal(0), "lines": 0, "quantity": Decimal(0)},
        )
        item["lines"] += row["lines_sum"]
        item["quantity"] += row["quantity_sum"]
        if rate is not None:
            item["revenue"] += row["revenue_sum"] * rate
    total = sum((item["revenue"] for item in merged.values()), Decimal(0))
    ranked = sorted(
        merged.values(), key=lambda item: (-item["revenue"], str(item[key]))
    )
    for item in ranked:
        item["revenue"] = item["revenue"].quantize(CENT)
        item["share"] = share(item["revenue"], total)
    return ranked, total.quantize(CENT)


def _top_content(
    ranked: list[dict[str, Any]], total: Decimal, name_label: str, note: str
) -> PanelContent:
    top = ranked[:TOP]
    currency = settings.DEFAULT_CURRENCY
    table = PanelTable(
        columns=[
            Column("name", name_label),
            Column("revenue", _("Revenue (%s)") % currency, "money"),
            Column("share", _("Share (%)"), "percent"),
            Column("quantity", _("Units"), "int"),
        ],
        rows=top,
        totals={
            "name": _("All (%(count)d)") % {"count": len(ranked)},
            "revenue": total,
            "share": 100.0 if total else None,
            "quantity": sum((item["quantity"] for item in ranked), Decimal(0)),
        },
    )
    chart = ChartSpec(
        kind="bar",
        labels=[str(item["name"]) for item in top],
        horizontal=True,
        format="money",
        datasets=[Dataset(_("Revenue"), [item["revenue"] for item in top], BAR_COLOR)],
    )
    return PanelContent(
        table=table, chart=chart, note=note, empty=_("No sales in this period.")
    )


def categories_panel(period: DashboardPeriod) -> PanelContent:
    rates = currency_rates()
    rows = list(
        _in_store(DailyCategorySales.objects, period)
        .values("category_id", "currency")
        .annotate(
            lines_sum=Sum("lines"),
            quantity_sum=Sum("quantity"),
            revenue_sum=Sum("revenue"),
        )
        .order_by()
    )
    names = dict(
        Category.objects.filter(
            pk__in={row["category_id"] for row in rows}
        ).values_list("pk", "name")
    )
    for row in rows:
        row["name"] = names.get(row["category_id"], "?")
    # All stores: a category of the same name in two stores is one line.
    key = "name" if period.store is None else "category_id"
    ranked, total = _top_rows(rows, rates, key)
    if key == "category_id":
        for item in ranked:
            item["name"] = names.get(item["category_id"], "?")
    note = _(
        "Order lines' totals (before order discounts and shipping); over all "
        "stores, categories of the same name count together."
    )
    return _top_content(ranked, total, _("Category"), note)


def brands_panel(period: DashboardPeriod) -> PanelContent:
    rates = currency_rates()
    rows = list(
        _in_store(DailyBrandSales.objects, period)
        .values("brand", "currency")
        .annotate(
            lines_sum=Sum("lines"),
            quantity_sum=Sum("quantity"),
            revenue_sum=Sum("revenue"),
        )
        .order_by()
    )
    for row in rows:
        row["name"] = row["brand"]
    ranked, total = _top_rows(rows, rates, "name")
    note = _("Order lines' totals of products with a brand.")
    return _top_content(ranked, total, _("Brand"), note)


# --- The snapshot's panels --------------------------------------------------------


def snapshot(period: DashboardPeriod) -> DashboardSnapshot | None:
    return DashboardSnapshot.objects.filter(store=period.store).first()


def _sentences(*parts: Any) -> str:
    return " ".join(str(part) for part in parts if part)


def _as_of(found: DashboardSnapshot | None) -> str:
    if found is None:
        return ""
    return _("As of %(when)s, whatever the period.") % {
        "when": formats.date_format(
            timezone.localtime(found.computed_at), "SHORT_DATETIME_FORMAT"
        )
    }


NOT_COMPUTED = gettext_lazy(
    "Not computed yet: the figures are computed every night (or run "
    "“python manage.py refresh_dashboard”)."
)


#: Retention cells' shading: heat-0 (nobody) to heat-9 (the best cell's share).
HEAT_LEVELS = 9


def cohorts_panel(period: DashboardPeriod) -> PanelContent:
    found = snapshot(period)
    today = timezone.localdate()
    data = (found.cohorts if found else {}) or {}
    first = (
        dt.date.fromisoformat(data["first"])
        if data.get("first")
        else first_cohort(today)
    )
    current = today.replace(day=1)
    offsets = list(range(1, COHORT_MONTHS))
    months = data.get("months") or {}
    rows = []
    for index in range(COHORT_MONTHS):
        month = month_start(first, index)
        counts = months.get(month.isoformat(), [0] * COHORT_MONTHS)
        row: dict[str, Any] = {"month": month, "customers": counts[0], "cells": []}
        for offset in offsets:
            seen = month_start(month, offset) <= current
            value = share(counts[offset], counts[0]) if seen else None
            row[f"m{offset}"] = None if value is None else round(value, 1)
            row["cells"].append(
                {
                    "offset": offset,
                    "value": value,
                    "display": format_value("percent", value) if seen else "",
                    "customers": counts[offset] if seen else None,
                    "future": not seen,
                }
            )
        rows.append(row)
    best = max((cell["value"] or 0 for row in rows for cell in row["cells"]), default=0)
    for row in rows:
        for cell in row["cells"]:
            value = cell["value"] or 0
            cell["heat"] = (
                max(1, min(HEAT_LEVELS, math.ceil(value * HEAT_LEVELS / best)))
                if value and best
                else 0
            )
    table = PanelTable(
        columns=[
            Column("month", _("First order in"), "month"),
            Column("customers", _("Customers"), "int"),
            *(
                Column(f"m{offset}", _("Month +%(n)d (%%)") % {"n": offset}, "percent")
                for offset in offsets
            ),
        ],
        rows=rows if found and any(row["customers"] for row in rows) else [],
    )
    note = _(
        "A cohort is the customers whose first order was in that month; each "
        "column is the share of them who ordered again in the n-th month after it."
    )
    note = _sentences(note, _as_of(found))
    return PanelContent(
        table=table,
        note=note,
        empty=NOT_COMPUTED if found is None else _("No first orders in these months."),
        extra={"offsets": offsets},
    )


def lifetime_values_panel(period: DashboardPeriod) -> PanelContent:
    found = snapshot(period)
    data = (found.lifetime_values if found else {}) or {}
    edges = data.get("edges") or []
    counts = data.get("counts") or []
    sums = data.get("sums") or []
    currency = settings.DEFAULT_CURRENCY
    customers = data.get("customers") or 0
    rows = []
    labels = []
    for index, low in enumerate(edges):
        high = edges[index + 1] if index + 1 < len(edges) else None
        low_text = format_value("int", low)
        label = (
            f"{low_text}–{format_value('int', high)}"
            if high is not None
            else _("%(amount)s and more") % {"amount": low_text}
        )
        labels.append(label)
        rows.append(
            {
                "range": label,
                "low": low,
                "high": high,
                "customers": counts[index],
                "share": share(counts[index], customers),
                "revenue": Decimal(sums[index]),
            }
        )
    table = PanelTable(
        columns=[
            Column("range", _("Lifetime value (%s)") % currency),
            Column("customers", _("Customers"), "int"),
            Column("share", _("Share (%)"), "percent"),
            Column("revenue", _("Their revenue (%s)") % currency, "money"),
        ],
        rows=rows if customers else [],
        totals={
            "range": _("All buyers"),
            "customers": customers,
            "share": 100.0 if customers else None,
            "revenue": Decimal(data.get("total") or 0),
        },
    )
    chart = ChartSpec(
        kind="bar",
        labels=labels,
        datasets=[Dataset(_("Customers"), list(counts), BAR_COLOR)],
    )
    median = data.get("median")
    note = ""
    if median is not None:
        note = _(
            "Revenue over each buyer's whole history (or what the previous "
            "platform reported, if more). Median %(median)s."
        ) % {"median": format_value("money", Decimal(median))}
    note = _sentences(note, _as_of(found))
    return PanelContent(table=table, chart=chart, note=note, empty=NOT_COMPUTED)


def rfm_panel(period: DashboardPeriod) -> PanelContent:
    found = snapshot(period)
    mix = (found.rfm_mix if found else {}) or {}
    segments = list(RfmSegment.objects.all())
    total = sum(item["customers"] for item in mix.values())
    rows = []
    for segment in segments:
        item = mix.get(segment.code, {"customers": 0, "revenue": "0"})
        rows.append(
            {
                "code": segment.code,
                "name": segment.name or str(RfmSegment.Code(segment.code).label),
                "customers": item["customers"],
                "share": share(item["customers"], total),
                "revenue": Decimal(item["revenue"]),
                "color": segment.color or SEGMENT_COLORS.get(segment.code, "#64748b"),
            }
        )
    currency = settings.DEFAULT_CURRENCY
    table = PanelTable(
        columns=[
            Column("name", _("RFM segment")),
            Column("customers", _("Customers"), "int"),
            Column("share", _("Share (%)"), "percent"),
            Column("revenue", _("Revenue (%s)") % currency, "money"),
        ],
        rows=rows if total else [],
        totals={
            "name": _("All scored buyers"),
            "customers": total,
            "share": 100.0 if total else None,
            "revenue": sum((row["revenue"] for row in rows), Decimal(0)),
        },
    )
    shown = [row for row in rows if row["customers"]]
    chart = ChartSpec(
        kind="doughnut",
        labels=[row["name"] for row in shown],
        datasets=[
            Dataset(
                _("Customers"),
                [row["customers"] for row in shown],
                [row["color"] for row in shown],
            )
        ],
    )
    note = _sentences(
        _("Scored buyers by named segment (see the RFM page)."), _as_of(found)
    )
    return PanelContent(
        table=table,
        chart=chart,
        note=note,
        empty=NOT_COMPUTED if found is None else _("No scored buyers yet."),
        extra={"rfm_url": reverse("segments:rfm")},
    )


def consents_panel(period: DashboardPeriod) -> PanelContent:
    found = snapshot(period)
    data = (found.consent_coverage if found else {}) or {}
    customers = data.get("customers") or 0
    rows = [
        {
            "code": "email",
            "channel": _("Email"),
            "reachable": data.get("email", 0),
            "share": share(data.get("email", 0), customers),
        },
        {
            "code": "sms",
            "channel": pgettext("channel", "SMS"),
            "reachable": data.get("sms", 0),
            "share": share(data.get("sms", 0), customers),
        },
    ]
    table = PanelTable(
        columns=[
            Column("channel", _("Channel")),
            Column("reachable", _("Reachable customers"), "int"),
            Column("share", _("Share (%)"), "percent"),
        ],
        rows=rows if customers else [],
        totals={"channel": _("Customers"), "reachable": customers, "share": None},
    )
    chart = ChartSpec(
        kind="bar",
        labels=[str(row["channel"]) for row in rows],
        format="percent",
        horizontal=True,
        datasets=[
            Dataset(
                _("Reachable customers (%)"),
                [round(row["share"] or 0, 1) for row in rows],
                [EMAIL_COLOR, SMS_COLOR],
            )
        ],
    )
    note = _(
        "Of the customers who may be processed (in the store, for one store): "
        "by email, those with an address, email marketing consent and no objection, "
        "not on the suppression list; by SMS, the same with a phone number and SMS "
        "consent."
    )
    note = _sentences(note, _as_of(found))
    return PanelContent(table=table, chart=chart, note=note, empty=NOT_COMPUTED)


# --- Freshness --------------------------------------------------------------------


def refreshed_at() -> dict[str, Any]:
    """When the daily rows and the snapshot were last rebuilt (None: never)."""
    last = {
        kind: at
        for kind, at in DashboardRefresh.objects.values_list("kind")
        .annotate(at=Max("finished_at"))
        .order_by()
    }
    daily = max(
        (
            at
            for kind, at in last.items()
            if kind in (DashboardRefresh.Kind.RECENT, DashboardRefresh.Kind.FULL)
        ),
        default=None,
    )
    return {"daily": daily, "snapshot": last.get(DashboardRefresh.Kind.SNAPSHOT)}


def register_builtin_panels() -> None:
    """The segments app's panels (called from SegmentsConfig.ready)."""
    for item in (
        Panel(
            "summary",
            gettext_lazy("Key figures"),
            summary_panel,
            position=10,
            wide=True,
            template="segments/dashboard_kpis.html",
        ),
        Panel(
            "revenue",
            gettext_lazy("Revenue over time"),
            revenue_panel,
            description=gettext_lazy("This period against the previous one."),
            position=20,
            wide=True,
        ),
        Panel(
            "customers",
            gettext_lazy("New and returning customers"),
            customers_panel,
            position=30,
        ),
        Panel(
            "consents",
            gettext_lazy("Consent coverage"),
            consents_panel,
            description=gettext_lazy("Who a campaign can reach, by channel."),
            position=35,
        ),
        Panel(
            "categories", gettext_lazy("Top categories"), categories_panel, position=40
        ),
        Panel("brands", gettext_lazy("Top brands"), brands_panel, position=45),
        Panel(
            "cohorts",
            gettext_lazy("Monthly cohort retention"),
            cohorts_panel,
            position=50,
            wide=True,
            template="segments/dashboard_cohorts.html",
        ),
        Panel(
            "lifetime-values",
            gettext_lazy("Customer lifetime value"),
            lifetime_values_panel,
            description=gettext_lazy("How many buyers have spent how much."),
            position=60,
        ),
        Panel(
            "rfm",
            gettext_lazy("RFM segment mix"),
            rfm_panel,
            permission="segments.view_customermetrics",
            position=65,
        ),
    ):
        register_panel(item)
