"""A customer's figures and segments over the API: read-only, the calling store's.

The customer is found as ``GET /api/v1/customers/{external_id}/`` finds them: by
the calling store's external id, never an erased one. Both reads are logged in
the access log (profiling results are personal data).
"""

from __future__ import annotations

from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import ServiceTransactionsMixin
from customers.models import Customer
from customers.signals import personal_data_accessed_send
from segments.api.serializers import (
    CustomerMetricsSerializer,
    CustomerSegmentsSerializer,
    metrics_figures,
    rfm_segment_name,
)
from segments.models import CustomerMetrics, RfmSegment, SegmentMembership

EXTERNAL_ID = OpenApiParameter(
    "external_id",
    str,
    OpenApiParameter.PATH,
    description="The store's customer id.",
)


class CustomerReadView(ServiceTransactionsMixin, APIView):
    """A read about one customer of the calling key's store."""

    def get_customer(self, external_id: str) -> Customer:
        return get_object_or_404(
            Customer.objects.not_erased(),
            identities__store=self.request.auth.store,
            identities__external_id=external_id,
        )

    def log_read(self, customer: Customer, purpose: str) -> None:
        personal_data_accessed_send(
            sender=type(self),
            request=self.request,
            customer_ids=[customer.pk],
            action="api_read",
            purpose=purpose,
        )


class CustomerMetricsView(CustomerReadView):
    @extend_schema(
        parameters=[EXTERNAL_ID],
        responses={200: CustomerMetricsSerializer},
        summary="Get a customer's order figures and RFM scores",
        description=(
            "`overall`: over all the business's stores; `store`: in the calling "
            "key's store. Amounts are strings with exact decimals in `currency`, "
            "the business's currency (orders in other currencies count at the "
            "configured rates). The figures count paid, shipped and delivered "
            "orders and are recomputed shortly after an order changes and every "
            "night. A known customer with no such orders (in that scope) is a 200 "
            "with zero counts and amounts and nulls elsewhere, `rfm` included. "
            "`rfm` is also null for customers who objected to profiling or whose "
            "data's processing is restricted; they have no favourites or "
            "predicted next order either. The favourites and the predicted next "
            "order are worked out over all stores only: in `store` they are null."
        ),
    )
    def get(self, request, external_id: str):
        customer = self.get_customer(external_id)
        store = request.auth.store
        rows = {
            metrics.store_id: metrics
            for metrics in CustomerMetrics.objects.filter(
                Q(store__isnull=True) | Q(store=store), customer=customer
            ).select_related("favourite_category")
        }
        self.log_read(customer, "metrics")
        rfm_names = (
            {
                segment.code: rfm_segment_name(segment)
                for segment in RfmSegment.objects.all()
            }
            if any(metrics.rfm_segment for metrics in rows.values())
            else {}
        )
        figures = {
            "external_id": external_id,
            **{
                scope: metrics_figures(rows.get(key), store=store, rfm_names=rfm_names)
                for scope, key in (("overall", None), ("store", store.pk))
            },
        }
        return Response(CustomerMetricsSerializer(figures).data)


class CustomerSegmentsView(CustomerReadView):
    @extend_schema(
        parameters=[EXTERNAL_ID],
        responses={200: CustomerSegmentsSerializer},
        summary="List the segments a customer is in",
        description=(
            "The active segments the customer is a member of, by name, with when "
            "they entered each. A dynamic segment's members are those its rules "
            "selected at its last rebuild. An empty list when they are in none."
        ),
    )
    def get(self, request, external_id: str):
        customer = self.get_customer(external_id)
        memberships = (
            SegmentMembership.objects.filter(customer=customer, segment__is_active=True)
            .select_related("segment")
            .order_by("segment__name", "segment_id")
        )
        self.log_read(customer, "segments")
        return Response(
            CustomerSegmentsSerializer(
                {"external_id": external_id, "segments": memberships}
            ).data
        )
