from __future__ import annotations

import django_filters
from django.db.models import F, OuterRef, Prefetch
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import (
    IdempotentPostMixin,
    PayloadTooLarge,
    ServiceTransactionsMixin,
    StrictFilterSet,
    SyncCursorPagination,
    UtcDateTimeFilter,
    validated_data,
)
from customers.api.serializers import (
    SHOP_KIND_CHOICES,
    SHOP_KINDS,
    CustomerInputSerializer,
    CustomerSerializer,
    EventBatchInputSerializer,
    EventBatchResultSerializer,
    InteractionInputSerializer,
    InteractionSerializer,
)
from customers.filters import CustomerApiFilter
from customers.interactions import interaction_post
from customers.models import (
    Customer,
    CustomerIdentity,
    Interaction,
    Store,
    identity_external_id,
)
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


# --- Support log (interactions) ------------------------------------------------------

INTERACTION_EXAMPLE = OpenApiExample(
    "A five-star review of an order",
    value={
        "external_id": "rev-5521",
        "kind": "review",
        "customer": {"external_id": "C-1", "email": "anna.nowak@example.pl"},
        "order": "1001",
        "subject": "Świetny kubek",
        "body": "Dotarł cały i szybko, polecam.",
        "occurred_at": "2026-03-02T09:30:00+01:00",
        "rating": 5,
        "rating_scale": "stars",
    },
    request_only=True,
)
COMPLAINT_EXAMPLE = OpenApiExample(
    "A complaint from the shop's form",
    value={
        "external_id": "rma-311",
        "kind": "complaint",
        "customer": {"email": "jan.kowalski@example.pl", "first_name": "Jan"},
        "order": "1002",
        "subject": "Pęknięty kubek",
        "body": "Kubek przyszedł pęknięty, w załączeniu zdjęcie opakowania.",
    },
    request_only=True,
)


class InteractionApiFilter(StrictFilterSet):
    """Filters of GET /api/v1/interactions/ (the queryset is the key's store's)."""

    customer = django_filters.CharFilter(
        method="filter_customer", help_text=gettext_lazy("The store's customer id.")
    )
    kind = django_filters.ChoiceFilter(choices=SHOP_KIND_CHOICES)
    status = django_filters.ChoiceFilter(choices=Interaction.Status.choices)
    external_id = django_filters.CharFilter(
        help_text=gettext_lazy("The shop's id of what it posted.")
    )
    updated_since = UtcDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text=gettext_lazy("Changed at or after this time (ISO 8601)."),
    )

    class Meta:
        model = Interaction
        fields = ("customer", "kind", "status", "external_id", "updated_since")

    def filter_customer(self, queryset, name: str, value: str):
        # (store, external id) is unique, so the join matches one identity at most.
        return queryset.filter(
            customer__identities__store=self.request.auth.store,
            customer__identities__external_id=value,
        )


class InteractionViewSet(
    ServiceTransactionsMixin,
    IdempotentPostMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Reviews, inquiries, complaints, returns and feedback of the key's store.

    Staff conversations and notes, and what other stores posted, are not shown.
    """

    serializer_class = InteractionSerializer
    filterset_class = InteractionApiFilter
    pagination_class = SyncCursorPagination
    # Any path segment reaches the view, which answers a bad id with the API's 404.
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Interaction.objects.none()
        return self._annotated(self.request.auth.store).filter(
            kind__in=SHOP_KINDS, customer__erased_at__isnull=True
        )

    def _annotated(self, store: Store):
        return (
            Interaction.objects.filter(store=store)
            .annotate(
                customer_external_id=identity_external_id(
                    OuterRef("customer_id"), store
                ),
                order_external_id=F("order__external_id"),
            )
            .order_by("updated_at", "id")
        )

    def _log_read(self, request, interactions) -> None:
        """What customers wrote is their personal data: reading it is logged."""
        personal_data_accessed_send(
            sender=type(self),
            request=request,
            customer_ids={interaction.customer_id for interaction in interactions},
            action="api_read",
            purpose="interactions",
        )

    @extend_schema(summary="List the store's reviews, inquiries and complaints")
    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        self._log_read(request, page)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(summary="Get one review, inquiry or complaint with its status")
    def retrieve(self, request, pk: str):
        interaction = generics.get_object_or_404(self.get_queryset(), pk=pk)
        self._log_read(request, [interaction])
        return Response(InteractionSerializer(interaction).data)

    @extend_schema(
        request=InteractionInputSerializer,
        responses={200: InteractionSerializer, 201: InteractionSerializer},
        examples=[INTERACTION_EXAMPLE, COMPLAINT_EXAMPLE],
        summary="Post a review, an inquiry, a complaint, a return or feedback",
        description=(
            "201 when it is new, 200 when `external_id` names one the store posted "
            "before: that one is updated (text, rating, order), and sending the same "
            "again changes nothing. Its kind and customer cannot change (400 "
            "`external_id_taken`), nor can a complaint's status, which the staff "
            "move. A complaint or return is answered with `status` `open` and "
            "`due_at`, the date by which the shop must answer (14 days after "
            "`occurred_at`), to show the customer."
        ),
    )
    def create(self, request):
        data = validated_data(InteractionInputSerializer, request.data)
        store = request.auth.store
        interaction, created = interaction_post(
            store=store,
            api_key=request.auth,
            customer=data["customer"],
            order_external_id=data.get("order") or "",
            kind=data["kind"],
            external_id=data.get("external_id", ""),
            channel=data["channel"],
            subject=data.get("subject", ""),
            body=data.get("body", ""),
            occurred_at=data.get("occurred_at"),
            rating=data.get("rating"),
            rating_scale=data.get("rating_scale") or "",
        )
        return Response(
            InteractionSerializer(self._annotated(store).get(pk=interaction.pk)).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
