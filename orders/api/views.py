from __future__ import annotations

from django.db.models import F, OuterRef, Prefetch
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import (
    IdempotentPostMixin,
    PayloadTooLarge,
    ServiceTransactionsMixin,
    SyncCursorPagination,
    validated_data,
)
from customers.models import CustomerIdentity, identity_external_id
from customers.signals import personal_data_accessed_send
from orders.api.serializers import (
    BulkResultSerializer,
    CartInputSerializer,
    CartSerializer,
    CategoryBulkInputSerializer,
    CategorySerializer,
    OrderInputSerializer,
    OrderSerializer,
    OrderStatusInputSerializer,
    ProductBulkInputSerializer,
    ProductSerializer,
)
from orders.filters import CategoryApiFilter, OrderApiFilter, ProductApiFilter
from orders.models import Cart, Category, Order, Product
from orders.services import (
    CATALOG_BATCH_LIMIT,
    cart_upsert,
    category_upsert_bulk,
    order_set_status,
    order_upsert,
    product_upsert_bulk,
)

ORDER_EXAMPLE = OpenApiExample(
    "A paid order of a known customer",
    value={
        "number": "ZAM/2026/1001",
        "placed_at": "2026-03-01T12:30:00+01:00",
        "status": "paid",
        "paid_at": "2026-03-01T12:31:10+01:00",
        "currency": "PLN",
        "shipping_total": "12.99",
        "payment_method": "blik",
        "shipping_method": "inpost_paczkomat",
        "coupon_code": "WIOSNA10",
        "billing_address": {
            "street": "ul. Długa 5/3",
            "postcode": "00-238",
            "city": "Warszawa",
            "country": "PL",
        },
        "cart_id": "cart-8f3a2c",
        "customer": {
            "external_id": "C-1",
            "email": "anna.nowak@example.pl",
            "first_name": "Anna",
            "last_name": "Nowak",
        },
        "lines": [
            {
                "sku": "KUB-01",
                "name": "Kubek zielony",
                "quantity": 2,
                "unit_price": "39.90",
            },
            {
                "sku": "HER-12",
                "name": "Herbata 100 g",
                "quantity": "1",
                "unit_price": 24.5,
            },
        ],
    },
    request_only=True,
)
PRODUCT_BULK_EXAMPLE = OpenApiExample(
    "Two products",
    value={
        "items": [
            {
                "external_id": "1001",
                "sku": "KUB-01",
                "name": "Kubek zielony",
                "brand": "Ceramika Bolesławiec",
                "category": "kuchnia",
                "price": "39.90",
                "currency": "PLN",
            },
            {
                "external_id": "1002",
                "sku": "WIT-D3",
                "name": "Witamina D3 2000 IU",
                "category": "suplementy",
                "price": 29.99,
                "replenishment_days": 60,
                "is_sensitive": True,
            },
        ]
    },
    request_only=True,
)


def _refuse_oversized(request, limit: int) -> None:
    """413 before any per-item work: an oversized batch costs nothing to refuse."""
    items = request.data.get("items") if isinstance(request.data, dict) else None
    if isinstance(items, list) and len(items) > limit:
        raise PayloadTooLarge(
            _("At most %(limit)d items per request.") % {"limit": limit}
        )


def _log_read(view, request, orders) -> None:
    """Orders carry their buyers' names and addresses: reading them is logged."""
    personal_data_accessed_send(
        sender=type(view),
        request=request,
        customer_ids={order.customer_id for order in orders},
        action="api_read",
        purpose="orders",
    )


class IdCursorPagination(SyncCursorPagination):
    """Oldest first by id: for tables without a change time."""

    ordering = ("id",)


class StoreScopedViewSet(ServiceTransactionsMixin, viewsets.GenericViewSet):
    """Rows of the calling key's store, looked up by the store's external id."""

    model = None
    lookup_field = "external_id"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return self.model.objects.none()
        return self.scoped_queryset(self.request.auth.store)

    def scoped_queryset(self, store):
        return self.model.objects.filter(store=store)

    def get_object(self):
        return get_object_or_404(
            self.get_queryset(), external_id=self.kwargs["external_id"]
        )


class OrderViewSet(IdempotentPostMixin, mixins.ListModelMixin, StoreScopedViewSet):
    """The key's store's orders, by the store's order id."""

    model = Order
    serializer_class = OrderSerializer
    filterset_class = OrderApiFilter
    pagination_class = SyncCursorPagination

    def scoped_queryset(self, store):
        return (
            Order.objects.in_store(store)
            .annotate(
                customer_external_id=identity_external_id(
                    OuterRef("customer_id"), store
                ),
                cart_external_id=F("cart__external_id"),
            )
            .prefetch_related("lines")
            .order_by("updated_at", "id")
        )

    @extend_schema(summary="Get an order with its lines")
    def retrieve(self, request, external_id: str):
        order = self.get_object()
        _log_read(self, request, [order])
        return Response(OrderSerializer(order).data)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        _log_read(self, request, page)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request=OrderInputSerializer,
        responses={200: OrderSerializer, 201: OrderSerializer},
        examples=[ORDER_EXAMPLE],
        summary="Create or replace an order by the store's order id",
        description=(
            "The order and its lines become what is sent; sending the same order "
            "again changes nothing. Status times left out keep their stored values. "
            "201 when the order is new, 200 otherwise."
        ),
    )
    def update(self, request, external_id: str):
        data = validated_data(OrderInputSerializer, request.data)
        customer_data = data.pop("customer")
        cart_id = data.pop("cart_id", None)
        order, created = order_upsert(
            store=request.auth.store,
            external_id=external_id,
            customer_data=customer_data,
            cart_external_id=cart_id,
            actor=request.auth,
            **data,
        )
        # What the answer shows, where the request already tells it.
        customer_external_id = (customer_data.get("external_id") or "").strip()
        if customer_external_id:
            order.customer_external_id = customer_external_id
        if created and not cart_id:
            order.cart_external_id = None
        return Response(
            OrderSerializer(order).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        request=OrderStatusInputSerializer,
        responses={200: OrderSerializer},
        summary="Move an order to another status",
        description=(
            "Allowed: new → paid | cancelled; paid → shipped | cancelled | returned; "
            "shipped → delivered | returned; delivered → returned. Another move is "
            "a 400 (`invalid_transition`); the status it already has is a 200 that "
            "changes nothing."
        ),
    )
    @action(detail=True, methods=["post"], url_path="status")
    def set_status(self, request, external_id: str):
        order = self.get_object()
        data = validated_data(OrderStatusInputSerializer, request.data)
        order_set_status(
            order=order, status=data["status"], at=data.get("at"), actor=request.auth
        )
        return Response(OrderSerializer(self.get_queryset().get(pk=order.pk)).data)


class CartViewSet(StoreScopedViewSet):
    """The key's store's carts, by the store's cart id."""

    model = Cart
    serializer_class = CartSerializer

    def scoped_queryset(self, store):
        return (
            Cart.objects.filter(store=store)
            .select_related("converted_order", "customer")
            .prefetch_related(
                Prefetch(
                    "customer__identities",
                    queryset=CustomerIdentity.objects.filter(store=store),
                )
            )
        )

    @extend_schema(summary="Get a cart")
    def retrieve(self, request, external_id: str):
        return Response(CartSerializer(self.get_object()).data)

    @extend_schema(
        request=CartInputSerializer,
        responses={200: CartSerializer, 201: CartSerializer},
        summary="Create or update a cart by the store's cart id",
        description=(
            "An update older than the stored one (by `updated_at`) is ignored and "
            "answered with the stored cart: webhooks may arrive out of order."
        ),
    )
    def update(self, request, external_id: str):
        data = validated_data(CartInputSerializer, request.data)
        cart, created = cart_upsert(
            store=request.auth.store,
            external_id=external_id,
            customer_data=data.pop("customer", None),
            **data,
        )
        return Response(
            CartSerializer(self.get_queryset().get(pk=cart.pk)).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ProductViewSet(IdempotentPostMixin, mixins.ListModelMixin, StoreScopedViewSet):
    """The key's store's products, as Kartoteka holds them."""

    model = Product
    serializer_class = ProductSerializer
    filterset_class = ProductApiFilter
    pagination_class = SyncCursorPagination

    def scoped_queryset(self, store):
        return (
            Product.objects.filter(store=store)
            .select_related("category")
            .order_by("updated_at", "id")
        )

    @extend_schema(summary="Get a product")
    def retrieve(self, request, external_id: str):
        return Response(ProductSerializer(self.get_object()).data)

    @extend_schema(
        request=ProductBulkInputSerializer,
        responses={200: BulkResultSerializer},
        examples=[PRODUCT_BULK_EXAMPLE],
        summary="Create or update up to 1,000 products",
        description=(
            "All or nothing: one invalid item (errors keyed `items.<n>.<field>`) "
            "refuses the batch. Products are matched by `external_id`; fields left "
            "out keep their stored values. Sending a batch again changes nothing."
        ),
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        _refuse_oversized(request, CATALOG_BATCH_LIMIT)
        data = validated_data(ProductBulkInputSerializer, request.data)
        result = product_upsert_bulk(store=request.auth.store, items=data["items"])
        return Response(result)


class CategoryViewSet(IdempotentPostMixin, mixins.ListModelMixin, StoreScopedViewSet):
    """The key's store's categories, as Kartoteka holds them."""

    model = Category
    serializer_class = CategorySerializer
    filterset_class = CategoryApiFilter
    pagination_class = IdCursorPagination

    def scoped_queryset(self, store):
        return Category.objects.filter(store=store).select_related("parent")

    @extend_schema(summary="Get a category")
    def retrieve(self, request, external_id: str):
        return Response(CategorySerializer(self.get_object()).data)

    @extend_schema(
        request=CategoryBulkInputSerializer,
        responses={200: BulkResultSerializer},
        summary="Create or update up to 1,000 categories",
        description=(
            "All or nothing, like the products' bulk. `parent` may name a category "
            "in the same batch or one already stored; a loop of parents is refused."
        ),
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        _refuse_oversized(request, CATALOG_BATCH_LIMIT)
        data = validated_data(CategoryBulkInputSerializer, request.data)
        result = category_upsert_bulk(store=request.auth.store, items=data["items"])
        return Response(result)
