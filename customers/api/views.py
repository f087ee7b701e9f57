from __future__ import annotations

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import (
    IdempotentPostMixin,
    PayloadTooLarge,
    ServiceTransactionsMixin,
    SyncCursorPagination,
    validated_data,
)
from customers.api.serializers import (
    CustomerInputSerializer,
    CustomerSerializer,
    EventBatchInputSerializer,
    EventBatchResultSerializer,
)
from customers.filters import CustomerApiFilter
from customers.models import Customer, CustomerIdentity
from customers.services import EVENT_BATCH_LIMIT, customer_upsert, event_ingest
from customers.signals import personal_data_accessed_send

CUSTOMER_EXAMPLE = OpenApiExample(
    "A customer",
    value={
        "email": "Anna.Nowak@example.pl",
        "phone": "+48 601 234 567",
        "first_name": "Anna",
        "last_name": "Nowak",
        "language": "pl",
        "tags": ["VIP"],
        "attributes": {"interests": ["sport", "podróże"]},
    },
    request_only=True,
)


class CustomerViewSet(
    ServiceTransactionsMixin,
    IdempotentPostMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Customers with an identity in the calling key's store, by its external id."""

    serializer_class = CustomerSerializer
    filterset_class = CustomerApiFilter
    pagination_class = SyncCursorPagination
    lookup_field = "external_id"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Customer.objects.none()
        store = self.request.auth.store
        return (
            Customer.objects.not_erased()
            .in_store(store)
            .prefetch_related(
                Prefetch(
                    "identities", queryset=CustomerIdentity.objects.filter(store=store)
                ),
                "tags",
            )
            .order_by("updated_at", "id")
        )

    def get_object(self) -> Customer:
        return get_object_or_404(
            self.get_queryset(),
            identities__store=self.request.auth.store,
            identities__external_id=self.kwargs["external_id"],
        )

    def _respond(self, customer: Customer, created: bool) -> Response:
        # Not get_queryset(): a customer upserted by email alone has no identity in
        # this store yet, and the caller has just sent what it will see.
        customer = Customer.objects.prefetch_related(
            Prefetch(
                "identities",
                queryset=CustomerIdentity.objects.filter(store=self.request.auth.store),
            ),
            "tags",
        ).get(pk=customer.pk)
        return Response(
            CustomerSerializer(customer).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        personal_data_accessed_send(
            sender=type(self),
            request=request,
            customer_ids=[customer.pk for customer in page],
            action="api_read",
        )
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request, external_id: str):
        customer = self.get_object()
        personal_data_accessed_send(
            sender=type(self),
            request=request,
            customer_ids=[customer.pk],
            action="api_read",
        )
        return Response(CustomerSerializer(customer).data)

    @extend_schema(
        request=CustomerInputSerializer,
        responses={200: CustomerSerializer, 201: CustomerSerializer},
        examples=[CUSTOMER_EXAMPLE],
        summary="Create or update a customer by the store's external id",
    )
    def update(self, request, external_id: str):
        data = validated_data(CustomerInputSerializer, request.data)
        data.pop("external_id", None)
        customer, created = customer_upsert(
            store=request.auth.store,
            external_id=external_id,
            actor=request.auth,
            **data,
        )
        return self._respond(customer, created)

    @extend_schema(
        request=CustomerInputSerializer,
        responses={200: CustomerSerializer},
        summary="Change some fields of a known customer",
    )
    def partial_update(self, request, external_id: str):
        self.get_object()  # 404 for a customer this store does not know
        data = validated_data(CustomerInputSerializer, request.data)
        data.pop("external_id", None)
        customer, _created = customer_upsert(
            store=request.auth.store,
            external_id=external_id,
            actor=request.auth,
            **data,
        )
        return self._respond(customer, False)

    @extend_schema(
        request=CustomerInputSerializer,
        responses={200: CustomerSerializer, 201: CustomerSerializer},
        examples=[CUSTOMER_EXAMPLE],
        summary="Create or update a customer by email (and external id, if given)",
    )
    def create(self, request):
        data = validated_data(CustomerInputSerializer, request.data)
        customer, created = customer_upsert(
            store=request.auth.store, actor=request.auth, **data
        )
        return self._respond(customer, created)


EVENT_BATCH_EXAMPLE = OpenApiExample(
    "Two events of one visitor, the second after logging in",
    value={
        "events": [
            {
                "kind": "product_view",
                "occurred_at": "2026-03-01T12:30:00+01:00",
                "anonymous_id": "v-8f3a2c",
                "external_id": "ev-1001",
                "url": "https://sklep.example.pl/p/kubek-zielony",
                "product_sku": "KUB-01",
                "device": "mobile",
                "os": "Android",
                "browser": "Chrome",
                "ip": "83.12.44.123",
            },
            {
                "kind": "add_to_cart",
                "occurred_at": "2026-03-01T12:31:05+01:00",
                "anonymous_id": "v-8f3a2c",
                "customer": "C-1",
                "external_id": "ev-1002",
                "product_sku": "KUB-01",
            },
        ]
    },
    request_only=True,
)


class EventBatchView(ServiceTransactionsMixin, IdempotentPostMixin, APIView):
    """Behaviour events from the store's site, up to 1,000 per request."""

    @extend_schema(
        request=EventBatchInputSerializer,
        responses={202: EventBatchResultSerializer},
        examples=[EVENT_BATCH_EXAMPLE],
        summary="Record a batch of behaviour events",
        description=(
            "All or nothing: one invalid event (errors keyed `events.<n>.<field>`) "
            "refuses the batch. Events whose `external_id` was already stored are "
            "counted as duplicates and skipped, so a batch can be retried safely."
        ),
    )
    def post(self, request):
        events = request.data.get("events") if isinstance(request.data, dict) else None
        # Before any per-event work: an oversized batch costs nothing to refuse.
        if isinstance(events, list) and len(events) > EVENT_BATCH_LIMIT:
            raise PayloadTooLarge(
                _("At most %(limit)d events per request.")
                % {"limit": EVENT_BATCH_LIMIT}
            )
        data = validated_data(EventBatchInputSerializer, request.data)
        result = event_ingest(store=request.auth.store, events=data["events"])
        return Response(result, status=status.HTTP_202_ACCEPTED)
