"""The report of a campaign or flow: who got it, who read it, what they bought.

Audience, sent, failed, waiting and not sent (by reason) count the deliveries.
Opens and clicks are unique: the recipients who opened or clicked at least once;
the open rate and the click-through rate are per message sent, click-to-open per
message opened. Unsubscribes are the withdrawals made through this message's
unsubscribe link; bounces and complaints are what the mail provider reported.

How an order is credited to a message (attribution), as staff see it:

- An order counts when it was paid (paid, shipped or delivered; a new, cancelled
  or returned order does not) and one of these holds:
- the recipient placed it within CAMPAIGN_ATTRIBUTION_DAYS days (times 24 hours)
  after their first click in the message, or after they first opened it if they
  never clicked, and opened or clicked no other message of ours in between: the
  last message touched wins, an order placed before the message was read is not
  its conversion;
- or the order used the coupon code this message gave the recipient, whenever it
  was placed and whoever placed it (the code was given to one recipient only).
- Each order counts once per message, and may count for two messages when one
  message's coupon was used after another was touched last.
- Revenue is in the default currency: an order in another currency counts at its
  currency rate; with no rate it counts as a conversion without revenue.

Everything is computed in the database, three queries whatever the audience.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from psycopg import sql

from campaigns.models import Campaign, Delivery, DeliveryEvent, Flow
from consents.models import ConsentEvent
from orders.models import Order

#: The chart shows at most this many points: longer periods are grouped.
TIMELINE_POINTS = 90
CENT = Decimal("0.01")


class ReportDay(NamedTuple):
    """One point of the chart: a local day (or the first day of a group of days)."""

    day: dt.date
    sent: int
    opens: int
    clicks: int
    conversions: int
    revenue: Decimal


@dataclass
class MessageReport:
    """The figures of one campaign or flow (see the module docstring)."""

    audience: int = 0
    sent: int = 0
    failed: int = 0
    pending: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    opens: int = 0
    clicks: int = 0
    unsubscribes: int = 0
    bounces: int = 0
    complaints: int = 0
    coupons_issued: int = 0
    coupons_redeemed: int = 0
    conversions: int = 0
    # Conversions in a currency with no rate: counted, their revenue is not.
    unpriced_conversions: int = 0
    revenue: Decimal = Decimal("0.00")
    timeline: list[ReportDay] = field(default_factory=list)
    # How many days each timeline point stands for (1 unless the period is long).
    timeline_step_days: int = 1

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def open_rate(self) -> float | None:
        return self.opens / self.sent if self.sent else None

    @property
    def click_through_rate(self) -> float | None:
        return self.clicks / self.sent if self.sent else None

    @property
    def click_to_open_rate(self) -> float | None:
        return self.clicks / self.opens if self.opens else None

    @property
    def revenue_per_recipient(self) -> Decimal | None:
        return (self.revenue / self.sent).quantize(CENT) if self.sent else None


def attribution_help() -> str:
    """The attribution rule in one paragraph, for the report page."""
    days = settings.CAMPAIGN_ATTRIBUTION_DAYS
    return ngettext(
        "An order counts for a message when it is paid and was placed within "
        "%(days)d day after the recipient's first click in it (or first open, if "
        "they did not click), with no other message of ours opened or clicked in "
        "between, or when it used the message's coupon code. Orders in a currency "
        "with no rate count without revenue.",
        "An order counts for a message when it is paid and was placed within "
        "%(days)d days after the recipient's first click in it (or first open, if "
        "they did not click), with no other message of ours opened or clicked in "
        "between, or when it used the message's coupon code. Orders in a currency "
        "with no rate count without revenue.",
        days,
    ) % {"days": days}


def campaign_report(campaign: Campaign) -> MessageReport:
    """The report of a campaign: three queries, whatever its audience."""
    return _report("campaign_id", campaign.pk)


def flow_report(flow: Flow) -> MessageReport:
    """The report of a flow over all its messages: three queries."""
    return _report("flow_id", flow.pk)


# Deliveries touched by others: another bounce, complaint or unsubscribe of the
# same delivery counts once.
_EVENTS_SQL = """
WITH d AS MATERIALIZED (
    SELECT id, customer_id FROM campaigns_delivery WHERE {owner} = %(id)s
)
SELECT events.bounces, events.complaints, unsubscribes.n, coupons.issued,
    coupons.redeemed
FROM (
    SELECT count(DISTINCT e.delivery_id) FILTER (WHERE e.kind = %(bounce)s)
            AS bounces,
        count(DISTINCT e.delivery_id) FILTER (WHERE e.kind = %(complaint)s)
            AS complaints
    FROM campaigns_deliveryevent e JOIN d ON d.id = e.delivery_id
    WHERE e.kind IN (%(bounce)s, %(complaint)s)
) events,
(
    -- The unsubscribe page records the delivery's id as the evidence's reference
    -- (consents.links); the customer's own ledger rows are looked at, by index.
    SELECT count(DISTINCT d.id) AS n
    FROM d JOIN consents_consentevent ce ON ce.customer_id = d.customer_id
    WHERE ce.action = %(withdraw)s AND ce.source = %(unsubscribe_link)s
        AND ce.evidence ->> 'reference' = d.id::text
) unsubscribes,
(
    SELECT count(*) AS issued, count(c.redeemed_at) AS redeemed
    FROM campaigns_coupon c JOIN d ON d.id = c.delivery_id
) coupons
"""

# Per local day: messages sent, first opens, first clicks, and the conversions
# (see the module docstring) with their revenue in the default currency.
_DAYS_SQL = """
WITH touched AS (
    SELECT d.id, d.customer_id, coalesce(d.clicked_at, d.opened_at) AS touch_at
    FROM campaigns_delivery d
    WHERE d.{owner} = %(id)s
        AND (d.clicked_at IS NOT NULL OR d.opened_at IS NOT NULL)
),
converted AS (
    SELECT o.id
    FROM touched t
    JOIN orders_order o ON o.customer_id = t.customer_id
        AND o.placed_at >= t.touch_at
        AND o.placed_at < t.touch_at + %(window)s
    WHERE o.status = ANY(%(statuses)s)
        -- Last touch wins: another message opened or clicked after this one's
        -- touch and before the order takes it.
        AND NOT EXISTS (
            SELECT 1 FROM campaigns_delivery other
            WHERE other.customer_id = t.customer_id AND other.id <> t.id
                AND (
                    (other.opened_at > t.touch_at AND other.opened_at < o.placed_at)
                    OR (other.clicked_at > t.touch_at
                        AND other.clicked_at < o.placed_at)
                )
        )
    UNION
    -- The message's coupon, used: always its conversion.
    SELECT o.id
    FROM campaigns_coupon c
    JOIN campaigns_delivery d ON d.id = c.delivery_id
    JOIN orders_order o ON o.id = c.order_id
    WHERE d.{owner} = %(id)s AND o.status = ANY(%(statuses)s)
),
conversions AS (
    SELECT (o.placed_at AT TIME ZONE %(zone)s)::date AS day,
        round(
            o.total * CASE WHEN o.currency = %(currency)s THEN 1 ELSE r.rate END, 2
        ) AS value
    FROM converted
    JOIN orders_order o ON o.id = converted.id
    LEFT JOIN segments_currencyrate r ON r.currency = o.currency
),
activity AS (
    SELECT (x.at AT TIME ZONE %(zone)s)::date AS day, x.kind
    FROM campaigns_delivery d
    CROSS JOIN LATERAL (
        VALUES
            ('sent', CASE WHEN d.status = %(sent)s THEN d.sent_at END),
            ('open', d.opened_at),
            ('click', d.clicked_at)
    ) x (kind, at)
    WHERE d.{owner} = %(id)s AND x.at IS NOT NULL
)
SELECT day, sum(sent)::int, sum(opens)::int, sum(clicks)::int,
    sum(conversions)::int, coalesce(sum(revenue), 0), sum(unpriced)::int
FROM (
    SELECT day, count(*) FILTER (WHERE kind = 'sent') AS sent,
        count(*) FILTER (WHERE kind = 'open') AS opens,
        count(*) FILTER (WHERE kind = 'click') AS clicks,
        0 AS conversions, NULL::numeric AS revenue, 0 AS unpriced
    FROM activity GROUP BY day
    UNION ALL
    SELECT day, 0, 0, 0, count(*), sum(value), count(*) FILTER (WHERE value IS NULL)
    FROM conversions GROUP BY day
) per_day
GROUP BY day
ORDER BY day
"""


def _statement(template: str, owner: str) -> sql.Composed:
    return sql.SQL(template).format(owner=sql.Identifier(owner))


def _report(owner: str, pk: int) -> MessageReport:
    report = MessageReport()
    rows = (
        Delivery.objects.filter(**{owner: pk})
        .values("status", "reason")
        .annotate(n=Count("*"), opens=Count("opened_at"), clicks=Count("clicked_at"))
        .order_by()
    )
    by_status: dict[str, int] = {}
    for row in rows:
        report.audience += row["n"]
        report.opens += row["opens"]
        report.clicks += row["clicks"]
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
        if row["status"] == Delivery.Status.SKIPPED:
            reason = row["reason"]
            report.skipped[reason] = report.skipped.get(reason, 0) + row["n"]
    report.sent = by_status.get(Delivery.Status.SENT, 0)
    report.failed = by_status.get(Delivery.Status.FAILED, 0)
    report.pending = by_status.get(Delivery.Status.PENDING, 0) + by_status.get(
        Delivery.Status.SENDING, 0
    )
    report.skipped = dict(
        sorted(report.skipped.items(), key=lambda item: (-item[1], item[0]))
    )
    params: dict[str, Any] = {
        "id": pk,
        "bounce": DeliveryEvent.Kind.BOUNCE.value,
        "complaint": DeliveryEvent.Kind.COMPLAINT.value,
        "withdraw": ConsentEvent.Action.WITHDRAW.value,
        "unsubscribe_link": ConsentEvent.Source.UNSUBSCRIBE_LINK.value,
        "sent": Delivery.Status.SENT.value,
        "statuses": [str(status) for status in Order.REVENUE_STATUSES],
        "window": dt.timedelta(days=settings.CAMPAIGN_ATTRIBUTION_DAYS),
        "zone": settings.TIME_ZONE,
        "currency": settings.DEFAULT_CURRENCY,
    }
    with connection.cursor() as cursor:
        cursor.execute(_statement(_EVENTS_SQL, owner), params)
        (
            report.bounces,
            report.complaints,
            report.unsubscribes,
            report.coupons_issued,
            report.coupons_redeemed,
        ) = cursor.fetchone()
        cursor.execute(_statement(_DAYS_SQL, owner), params)
        days = cursor.fetchall()
    for _day, _sent, _opens, _clicks, conversions, revenue, unpriced in days:
        report.conversions += conversions
        report.revenue += revenue
        report.unpriced_conversions += unpriced
    report.revenue = report.revenue.quantize(CENT)
    report.timeline, report.timeline_step_days = _timeline(days)
    return report


def _timeline(days: Iterable[tuple]) -> tuple[list[ReportDay], int]:
    """Every day from the first send to the last event, grouped to fit the chart."""
    by_day = {row[0]: row for row in days}
    sent_days = [day for day, row in by_day.items() if row[1]]
    if not sent_days:
        return [], 1
    start, end = min(sent_days), max(by_day)
    span = (end - start).days + 1
    step = math.ceil(span / TIMELINE_POINTS)
    points = []
    for first in range(0, span, step):
        day = start + dt.timedelta(days=first)
        group = [
            by_day[day + dt.timedelta(days=offset)]
            for offset in range(step)
            if day + dt.timedelta(days=offset) in by_day
        ]
        points.append(
            ReportDay(
                day=day,
                sent=sum(row[1] for row in group),
                opens=sum(row[2] for row in group),
                clicks=sum(row[3] for row in group),
                conversions=sum(row[4] for row in group),
                revenue=sum((row[5] for row in group), Decimal("0.00")),
            )
        )
    return points, step


def skipped_reasons(report: MessageReport) -> list[tuple[str, int]]:
    """The report's skipped counts with each reason's label, most frequent first."""
    labels = dict(Delivery.Reason.choices)
    return [
        (str(labels.get(reason) or _("Unknown reason")), count)
        for reason, count in report.skipped.items()
    ]
