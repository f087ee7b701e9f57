"""A customer's figures, RFM scores and segments, as the shop reads them."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from customers.models import Store
from segments.models import CustomerMetrics, RfmSegment, Segment

ZERO = Decimal("0.00")


class FavouriteCategorySerializer(serializers.Serializer):
    external_id = serializers.CharField(
        allow_null=True,
        help_text=_(
            "The category's id in the calling store; null when it is another "
            "store's category (possible in the figures over all stores)."
        ),
    )
    name = serializers.CharField()


class RfmScoresSerializer(serializers.Serializer):
    r = serializers.IntegerField(
        min_value=1, max_value=5, help_text=_("Recency: 5 for the latest buyers.")
    )
    f = serializers.IntegerField(
        min_value=1, max_value=5, help_text=_("Frequency: 5 for the most orders.")
    )
    m = serializers.IntegerField(
        min_value=1, max_value=5, help_text=_("Monetary: 5 for the highest revenue.")
    )
    segment = serializers.ChoiceField(
        choices=RfmSegment.Code.choices, help_text=_("The named RFM segment's code.")
    )
    segment_name = serializers.CharField(
        help_text=_("The segment's name as the staff set it, or the standard name.")
    )


class MetricsSerializer(serializers.Serializer):
    """One set of figures: over all stores, or in the calling store."""

    orders_count = serializers.IntegerField(
        min_value=0, help_text=_("Paid, shipped or delivered orders.")
    )
    revenue = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        help_text=_("What those orders came to, in `currency`."),
    )
    currency = serializers.CharField(
        help_text=_("The currency of every amount here: the business's own.")
    )
    average_order_value = serializers.DecimalField(max_digits=14, decimal_places=2)
    first_order_at = serializers.DateTimeField(allow_null=True)
    last_order_at = serializers.DateTimeField(allow_null=True)
    days_since_last_order = serializers.IntegerField(allow_null=True)
    average_days_between_orders = serializers.DecimalField(
        max_digits=7,
        decimal_places=1,
        allow_null=True,
        help_text=_("Null with fewer than two orders."),
    )
    favourite_category = FavouriteCategorySerializer(allow_null=True)
    favourite_brand = serializers.CharField(allow_null=True)
    predicted_next_order_on = serializers.DateField(
        allow_null=True, help_text=_("When the next purchase is expected, if known.")
    )
    clv = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        help_text=_(
            "Historical lifetime value: the revenue, or over all stores what the "
            "previous platform reported if that is more."
        ),
    )
    rfm = RfmScoresSerializer(
        allow_null=True,
        help_text=_(
            "Null when the customer is not scored: no orders yet, or they objected "
            "to profiling or their data's processing is restricted."
        ),
    )


class CustomerMetricsSerializer(serializers.Serializer):
    external_id = serializers.CharField(help_text=_("The store's customer id."))
    overall = MetricsSerializer(help_text=_("Over all the business's stores."))
    store = MetricsSerializer(help_text=_("In the calling API key's store only."))


class CustomerSegmentSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="segment_id")
    name = serializers.CharField(source="segment.name")
    kind = serializers.ChoiceField(
        source="segment.kind",
        choices=Segment.Kind.choices,
        help_text=_("`dynamic`: selected by rules; `static`: a list kept by hand."),
    )
    member_since = serializers.DateTimeField(source="entered_at")


class CustomerSegmentsSerializer(serializers.Serializer):
    external_id = serializers.CharField(help_text=_("The store's customer id."))
    segments = CustomerSegmentSerializer(many=True)


def rfm_segment_name(segment: RfmSegment) -> str:
    """The segment's name as the staff set it, else the standard one."""
    return segment.name or str(RfmSegment.Code(segment.code).label)


def metrics_figures(
    metrics: CustomerMetrics | None,
    *,
    store: Store,
    rfm_names: Mapping[str, str],
) -> dict[str, Any]:
    """What MetricsSerializer shows for one row; zeros and nulls without one.

    ``rfm_names`` maps a segment code to its name (the staff's or the standard).
    """
    if metrics is None:  # no paid, shipped or delivered order (yet)
        return {
            "orders_count": 0,
            "revenue": ZERO,
            "currency": settings.DEFAULT_CURRENCY,
            "average_order_value": ZERO,
            "first_order_at": None,
            "last_order_at": None,
            "days_since_last_order": None,
            "average_days_between_orders": None,
            "favourite_category": None,
            "favourite_brand": None,
            "predicted_next_order_on": None,
            "clv": ZERO,
            "rfm": None,
        }
    category = metrics.favourite_category
    scored = metrics.recency_score is not None
    return {
        "orders_count": metrics.orders_count,
        "revenue": metrics.revenue,
        "currency": settings.DEFAULT_CURRENCY,
        "average_order_value": metrics.average_order_value,
        "first_order_at": metrics.first_order_at,
        "last_order_at": metrics.last_order_at,
        "days_since_last_order": metrics.days_since_last_order,
        "average_days_between_orders": metrics.average_days_between_orders,
        "favourite_category": None
        if category is None
        else {
            # Another store's id would mean nothing to (or clash with) this one's.
            "external_id": category.external_id
            if category.store_id == store.pk
            else None,
            "name": category.name,
        },
        "favourite_brand": metrics.favourite_brand or None,
        "predicted_next_order_on": metrics.predicted_next_order_on,
        "clv": metrics.clv,
        "rfm": {
            "r": metrics.recency_score,
            "f": metrics.frequency_score,
            "m": metrics.monetary_score,
            "segment": metrics.rfm_segment,
            "segment_name": rfm_names.get(metrics.rfm_segment)
            or rfm_segment_name(RfmSegment(code=metrics.rfm_segment)),
        }
        if scored
        else None,
    }
