"""The dashboard's building blocks: the period, panels and their registry.

The dashboard (``segments.views_dashboard``, under /dashboard/) is a column of
panels. Each panel builds, for a ``DashboardPeriod`` (a store or all stores, a
range of local days and the previous range of the same length), a
``PanelContent``: a ``PanelTable`` of plain values (the "show as table" view and
the panel's CSV download) and, optionally, a ``ChartSpec`` the page draws with
Chart.js (``static/js/dashboard.js``).

The segments app's own panels are in ``segments.dashboard_panels``. Apps to the
right of segments add theirs without segments importing them: they call
``register_panel()`` from their AppConfig.ready() (campaigns' results:
``campaigns.dashboard``). A panel may need a permission of its own besides the
dashboard's (``segments.view_dashboard``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import formats, timezone
from django.utils.functional import Promise

from customers.models import Store
from customers.templatetags.formatting import money

#: The permission to see the dashboard (and the home page it makes for its holders).
VIEW_DASHBOARD = "segments.view_dashboard"


# --- The period -----------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardPeriod:
    """Local days ``start`` to ``end`` (both included) in ``store`` or all stores."""

    start: dt.date
    end: dt.date
    store: Store | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def previous(self) -> DashboardPeriod:
        """The same number of days just before."""
        length = dt.timedelta(days=self.days)
        return replace(self, start=self.start - length, end=self.end - length)

    @property
    def store_id(self) -> int | None:
        return self.store.pk if self.store is not None else None

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """The period as aware moments: [start of the first day, start of the next)."""
        return (
            timezone.make_aware(dt.datetime.combine(self.start, dt.time.min)),
            timezone.make_aware(
                dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time.min)
            ),
        )


# --- What a panel builds --------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column of a panel's table. ``kind``: text, int, money, percent or date.

    Money is in the default currency; a percent is a number from 0 to 100.
    """

    key: str
    label: str | Promise
    kind: str = "text"

    @property
    def is_number(self) -> bool:
        return self.kind in ("int", "money", "percent")


@dataclass
class PanelTable:
    """A panel's figures as rows of plain values (shown, and downloaded as CSV)."""

    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] | None = None

    def display(self, row: dict[str, Any]) -> list[tuple[str, bool]]:
        """One row's cells as (text for people in the active language, is a number)."""
        return [
            (format_value(column.kind, row.get(column.key)), column.is_number)
            for column in self.columns
        ]

    @property
    def display_rows(self) -> list[list[tuple[str, bool]]]:
        return [self.display(row) for row in self.rows]

    @property
    def display_totals(self) -> list[tuple[str, bool]] | None:
        return self.display(self.totals) if self.totals is not None else None


@dataclass
class Dataset:
    """One series of a chart: its label and values (None: no value there)."""

    label: str | Promise
    data: list[float | int | None]
    #: One colour for the series, or one per value (bars, doughnut slices).
    color: str | list[str] = ""
    #: ISO dates standing for each value when they differ from the chart's labels
    #: (the previous period drawn under the current one).
    dates: list[str] | None = None
    stack: str = ""


@dataclass
class ChartSpec:
    """A chart for static/js/dashboard.js: kind bar, line or doughnut.

    ``labels`` are ISO dates when ``dates`` (formatted in the page's language by the
    browser), else text already in the page's language. ``format`` says how values
    read: int, money (default currency) or percent (0-100).
    """

    kind: str
    labels: list[str]
    datasets: list[Dataset]
    format: str = "int"
    dates: bool = False
    horizontal: bool = False
    stacked: bool = False

    @property
    def has_data(self) -> bool:
        return any(value for dataset in self.datasets for value in dataset.data)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "labels": [str(label) for label in self.labels],
            "format": self.format,
            "dates": self.dates,
            "horizontal": self.horizontal,
            "stacked": self.stacked,
            "datasets": [
                {
                    "label": str(dataset.label),
                    "data": [_json_number(value) for value in dataset.data],
                    "color": dataset.color,
                    "dates": dataset.dates,
                    "stack": dataset.stack,
                }
                for dataset in self.datasets
            ],
        }


@dataclass
class PanelContent:
    """What a panel shows for one period."""

    table: PanelTable
    chart: ChartSpec | None = None
    #: A sentence under the panel (what is counted, as of when).
    note: str | Promise = ""
    #: Said instead of the chart and table when there is nothing to show.
    empty: str | Promise = ""
    #: Anything more the panel's own template needs.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.table.rows


@dataclass(frozen=True)
class Panel:
    """A panel of the dashboard (see the module docstring).

    ``key`` names it in the CSV's address (/dashboard/export/<key>.csv);
    ``position`` orders the panels (the segments app's use 10 to 90);
    ``wide`` panels take the whole row; ``template`` draws the panel (the default
    draws the chart above the table).
    """

    key: str
    title: str | Promise
    build: Callable[[DashboardPeriod], PanelContent]
    description: str | Promise = ""
    permission: str = ""
    position: int = 100
    wide: bool = False
    template: str = "segments/dashboard_panel.html"

    def visible_to(self, user: Any) -> bool:
        return not self.permission or user.has_perm(self.permission)


_PANELS: dict[str, Panel] = {}


def register_panel(panel: Panel) -> None:
    """Add a panel to the dashboard; the same key again replaces it."""
    _PANELS[panel.key] = panel


def panels_for(user: Any) -> list[Panel]:
    """The panels ``user`` may see, in their order."""
    return sorted(
        (panel for panel in _PANELS.values() if panel.visible_to(user)),
        key=lambda panel: (panel.position, panel.key),
    )


def panel(key: str) -> Panel | None:
    return _PANELS.get(key)


# --- Values for people ----------------------------------------------------------------


def format_value(kind: str, value: Any) -> str:
    """A table cell as the page shows it, in the active language."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str | Promise):
        return str(value)  # a label where a number would be (a totals line)
    if kind == "int":
        return formats.number_format(value, 0, use_l10n=True, force_grouping=True)
    if kind == "money":
        return money(value, settings.DEFAULT_CURRENCY)
    if kind == "percent":
        return formats.number_format(round(value, 1), 1, use_l10n=True) + "%"
    if kind == "date":
        return formats.date_format(value, "SHORT_DATE_FORMAT")
    if kind == "month":
        return formats.date_format(value, "YEAR_MONTH_FORMAT")
    return str(value)


def month_start(day: dt.date, months: int = 0) -> dt.date:
    """The first day of ``day``'s month, ``months`` months later (or earlier)."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def share(part: float | Decimal | int, whole: float | Decimal | int) -> float | None:
    """``part`` as a percentage of ``whole`` (None when the whole is nothing)."""
    return float(part) * 100 / float(whole) if whole else None


def _json_number(value: Any) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return float(value)
    return value
