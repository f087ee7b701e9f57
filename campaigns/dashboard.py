"""The campaigns' panel on the dashboard: the results of the campaigns of the period.

Registered on the segments app's dashboard (``segments.dashboard.register_panel``)
from CampaignsConfig.ready(): segments sits left of campaigns and never imports it.

A campaign is in the period when it was sending in it: it started before the
period's end and had not finished before its start. Its figures are its whole
report (``campaigns.selectors.campaign_report``: messages sent, unique opens and
clicks per message sent, attributed orders and their revenue in the default
currency), whatever part of it fell in the period. Campaigns are not per store:
the panel is the same for every store.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.models import Campaign
from campaigns.selectors import MessageReport, campaign_report
from segments.dashboard import (
    ChartSpec,
    Column,
    DashboardPeriod,
    Dataset,
    Panel,
    PanelContent,
    PanelTable,
    register_panel,
    share,
)

#: Campaigns listed (the newest); the rest are counted in the note.
SHOWN = 12
#: A report is kept this long: each is three queries over the campaign's messages.
REPORT_CACHE_SECONDS = 300
OPEN_COLOR = "#4338ca"
CLICK_COLOR = "#0ea5e9"


def campaigns_in(period: DashboardPeriod) -> Any:
    """Campaigns that were sending at some time during the period, newest first."""
    start, end = period.bounds()
    return (
        Campaign.objects.filter(started_at__isnull=False, started_at__lt=end)
        .filter(Q(finished_at__isnull=True) | Q(finished_at__gte=start))
        .exclude(status__in=[Campaign.Status.DRAFT, Campaign.Status.SCHEDULED])
        .order_by("-started_at", "-pk")
    )


def _report(campaign: Campaign) -> MessageReport:
    key = f"campaigns:dashboard-report:{campaign.pk}"
    report = cache.get(key)
    if report is None:
        report = campaign_report(campaign)
        cache.set(key, report, REPORT_CACHE_SECONDS)
    return report


def campaign_results(period: DashboardPeriod) -> PanelContent:
    """The panel: one row per campaign, the totals, open and click rates charted."""
    found = list(campaigns_in(period)[: SHOWN + 1])
    shown = found[:SHOWN]
    rows = []
    for campaign in shown:
        report = _report(campaign)
        rows.append(
            {
                "name": campaign.name,
                "channel": campaign.get_channel_display(),
                "started": campaign.started_at.date() if campaign.started_at else None,
                "sent": report.sent,
                "opens": report.opens,
                "clicks": report.clicks,
                "open_rate": share(report.opens, report.sent),
                "click_rate": share(report.clicks, report.sent),
                "conversions": report.conversions,
                "revenue": report.revenue,
            }
        )
    sent = sum(row["sent"] for row in rows)
    opens = sum(row["opens"] for row in rows)
    clicks = sum(row["clicks"] for row in rows)
    currency = settings.DEFAULT_CURRENCY
    table = PanelTable(
        columns=[
            Column("name", _("Campaign")),
            Column("channel", _("Channel")),
            Column("started", _("Started"), "date"),
            Column("sent", _("Sent"), "int"),
            Column("open_rate", _("Open rate (%)"), "percent"),
            Column("click_rate", _("Click rate (%)"), "percent"),
            Column("conversions", _("Conversions"), "int"),
            Column("revenue", _("Revenue (%s)") % currency, "money"),
        ],
        rows=rows,
        totals={
            "name": _("Together"),
            "channel": "",
            "started": None,
            "sent": sent,
            "open_rate": share(opens, sent),
            "click_rate": share(clicks, sent),
            "conversions": sum(row["conversions"] for row in rows),
            "revenue": sum((row["revenue"] for row in rows), Decimal(0)),
        },
    )
    chart = ChartSpec(
        kind="bar",
        labels=[row["name"] for row in rows],
        format="percent",
        datasets=[
            Dataset(
                _("Open rate"),
                [round(row["open_rate"] or 0, 1) for row in rows],
                OPEN_COLOR,
            ),
            Dataset(
                _("Click rate"),
                [round(row["click_rate"] or 0, 1) for row in rows],
                CLICK_COLOR,
            ),
        ],
    )
    note = _(
        "Campaigns that were sending in the period, with their whole results: "
        "opens and clicks are unique recipients per message sent; conversions are "
        "the orders attributed to the campaign (as on its report). Campaigns are "
        "not per store."
    )
    if len(found) > SHOWN:
        note += " " + _("Only the %(count)d newest are listed.") % {"count": SHOWN}
    return PanelContent(
        table=table,
        chart=chart,
        note=note,
        empty=_("No campaign was sending in this period."),
    )


def register() -> None:
    """Put the panel on the dashboard (CampaignsConfig.ready)."""
    register_panel(
        Panel(
            "campaigns",
            gettext_lazy("Campaign results"),
            campaign_results,
            permission="campaigns.view_campaign",
            position=80,
            wide=True,
        )
    )
