from __future__ import annotations

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from config.api import IdempotentPostMixin, validated_data
from customers.api.serializers import CustomerInputSerializer, CustomerSerializer
from customers.filters import CustomerApiFilter
from customers.models import Customer, CustomerIdentity
from customers.services import customer_upsert

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


class SyncCursorPagination(CursorPagination):
    """Oldest change first, so a client syncs with ``updated_since`` and the cursor."""

    ordering = ("updated_at", "id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class CustomerViewSet(
    IdempotentPostMixin, mixins.ListModelMixin, viewsets.GenericViewSet
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
            Customer.objects.in_store(store)
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

    def retrieve(self, request, external_id: str):
        return Response(CustomerSerializer(self.get_object()).data)

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
