"""The messages a customer was sent, on the customer timeline.

Customers sits left of campaigns, so this app adds its entries itself: the
source below is registered with ``customers.selectors.timeline_source_register``
from ``CampaignsConfig.ready()``. An entry is a Delivery that was sent, failed,
or was not sent for a reason about this customer (no consent, objected,
suppressed address, ...): support and the DPO answer "why did I (not) get
this?" from them. Waiting messages have not happened yet, and those stopped
before sending (a campaign cancelled, a flow switched off) say nothing about the
customer: neither is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from campaigns.models import Delivery
from customers.models import Customer
from customers.selectors import TimelineSource, timeline_rows

SOURCE_KEY = "messages"


def _message_rows(customer: Customer) -> QuerySet:
    shown = customer.deliveries.exclude(
        status__in=(Delivery.Status.PENDING, Delivery.Status.SENDING)
    ).exclude(Q(status=Delivery.Status.SKIPPED) & Q(reason=Delivery.Reason.CANCELLED))
    return timeline_rows(
        # Never sent (failed, not sent): when the message was prepared.
        shown.annotate(shown_at=Coalesce("sent_at", "created_at")).order_by(
            "-shown_at", "-pk"
        ),
        source=SOURCE_KEY,
        ref=F("pk"),
        at=F("shown_at"),
        kind=F("channel"),
    )


def _message_objects(customer: Customer, ids: Sequence[int]) -> dict[int, Any]:
    return customer.deliveries.select_related(
        "campaign__template", "flow", "coupon__order"
    ).in_bulk(ids)


messages_source = TimelineSource(
    key=SOURCE_KEY,
    label=_("Messages"),
    rows=_message_rows,
    fetch=_message_objects,
    template="campaigns/timeline/_message.html",
    permission="campaigns.view_delivery",
)
