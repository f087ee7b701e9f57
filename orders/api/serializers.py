"""What the shop sends about orders, carts and the catalogue, and what it reads back."""

from __future__ import annotations

from decimal import Decimal

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api import ReadSerializer, StrictCharField, StrictSerializer
from customers.api.serializers import CustomerInputSerializer
from customers.models import CustomerIdentity
from orders.models import Cart, Category, Order, OrderLine, Product
from orders.services import CART_ITEM_LIMIT, CATALOG_BATCH_LIMIT

ORDER_LINE_LIMIT = 500


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "pattern": r"^\d{1,10}(\.\d{1,2})?$"},
            {"type": "number", "minimum": 0},
        ],
        "example": "129.99",
    }
)
class MoneyField(serializers.DecimalField):
    """An amount of zero or more, as a string ("129.99") or a JSON number."""

    def __init__(self, **kwargs):
        super().__init__(
            max_digits=12, decimal_places=2, min_value=Decimal("0"), **kwargs
        )

    def validate_empty_values(self, data):
        # DecimalField takes "" for null; here null is null and "" no amount.
        if isinstance(data, str) and not data.strip():
            self.fail("invalid")
        return super().validate_empty_values(data)

    def to_internal_value(self, data):
        if isinstance(data, bool):  # a bool is an int to Python, not an amount
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "pattern": r"^\d{1,7}(\.\d{1,3})?$"},
            {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        ],
        "example": "2",
    }
)
class QuantityField(serializers.DecimalField):
    """A quantity above zero, up to three decimals (0.5 kg), string or number."""

    def __init__(self, **kwargs):
        super().__init__(
            max_digits=10, decimal_places=3, min_value=Decimal("0.001"), **kwargs
        )

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "type": "string",
        "enum": list(Order.Status.values),
        "description": "new, paid, shipped, delivered, cancelled or returned.",
    },
    component_name="OrderStatus",
)
class OrderStatusField(serializers.ChoiceField):
    """An order status; one named schema component (customers have a status too)."""

    def __init__(self, **kwargs):
        super().__init__(choices=Order.Status.choices, **kwargs)


class AddressField(serializers.DictField):
    """An address as the shop has it (street, postcode, city, country...)."""


# --- Orders ----------------------------------------------------------------------


class OrderLineInputSerializer(StrictSerializer):
    sku = StrictCharField(max_length=64, required=False, allow_blank=True)
    name = StrictCharField(
        max_length=255,
        required=False,
        allow_blank=True,
        help_text=_("Required unless the SKU is a known product."),
    )
    quantity = QuantityField()
    unit_price = MoneyField()
    total = MoneyField(
        required=False,
        allow_null=True,
        help_text=_("The line's total; quantity × unit price if left out."),
    )


class OrderInputSerializer(StrictSerializer):
    """An order as the shop sends it; order_upsert makes it so."""

    number = StrictCharField(
        max_length=64,
        required=False,
        help_text=_("The number the customer sees; the external id if left out."),
    )
    placed_at = serializers.DateTimeField(
        help_text=_("ISO 8601; without an offset, Europe/Warsaw.")
    )
    status = OrderStatusField(default=Order.Status.NEW)
    currency = StrictCharField(
        min_length=3,
        max_length=3,
        required=False,
        help_text=_("ISO 4217; the store's currency if left out."),
    )
    subtotal = MoneyField(
        required=False,
        allow_null=True,
        help_text=_("The sum of the lines if left out."),
    )
    discount_total = MoneyField(required=False)
    shipping_total = MoneyField(required=False)
    total = MoneyField(
        required=False,
        allow_null=True,
        help_text=_("Subtotal − discount + shipping if left out."),
    )
    payment_method = StrictCharField(max_length=64, required=False, allow_blank=True)
    shipping_method = StrictCharField(max_length=64, required=False, allow_blank=True)
    coupon_code = StrictCharField(max_length=64, required=False, allow_blank=True)
    source = StrictCharField(max_length=64, required=False, allow_blank=True)
    utm_source = StrictCharField(max_length=100, required=False, allow_blank=True)
    utm_medium = StrictCharField(max_length=100, required=False, allow_blank=True)
    utm_campaign = StrictCharField(max_length=200, required=False, allow_blank=True)
    billing_address = AddressField(required=False)
    shipping_address = AddressField(required=False)
    paid_at = serializers.DateTimeField(required=False, allow_null=True)
    shipped_at = serializers.DateTimeField(required=False, allow_null=True)
    delivered_at = serializers.DateTimeField(required=False, allow_null=True)
    cancelled_at = serializers.DateTimeField(required=False, allow_null=True)
    returned_at = serializers.DateTimeField(required=False, allow_null=True)
    cart_id = StrictCharField(
        max_length=100,
        required=False,
        help_text=_("The store's id of the cart this order came from."),
    )
    customer = CustomerInputSerializer(
        help_text=_(
            "Who placed the order: found by the store's customer id, else by email, "
            "and created or updated like PUT /customers/."
        )
    )
    lines = serializers.ListField(
        child=OrderLineInputSerializer(),
        max_length=ORDER_LINE_LIMIT,
        required=False,
    )


class OrderStatusInputSerializer(StrictSerializer):
    status = OrderStatusField()
    at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text=_("When it happened; now if left out."),
    )


class OrderLineSerializer(ReadSerializer):
    class Meta:
        model = OrderLine
        fields = (
            "id",
            "position",
            "sku",
            "name",
            "product",
            "quantity",
            "unit_price",
            "total",
        )
        read_only_fields = fields


class OrderSerializer(ReadSerializer):
    """An order with its lines, as the calling store sees it."""

    customer_external_id = serializers.SerializerMethodField(
        help_text=_("The store's id of the customer, if it has one.")
    )
    cart_id = serializers.SerializerMethodField(
        help_text=_("The store's id of the cart the order came from, if known.")
    )
    status = OrderStatusField(read_only=True)
    lines = OrderLineSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = (
            "id",
            "external_id",
            "number",
            "status",
            "placed_at",
            "paid_at",
            "shipped_at",
            "delivered_at",
            "cancelled_at",
            "returned_at",
            "currency",
            "subtotal",
            "discount_total",
            "shipping_total",
            "total",
            "payment_method",
            "shipping_method",
            "coupon_code",
            "source",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "billing_address",
            "shipping_address",
            "customer",
            "customer_external_id",
            "cart_id",
            "lines",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    # The queryset (or the view, which knows them) annotates both ids; an order
    # without the annotations costs a query for each.
    def get_customer_external_id(self, order: Order) -> str | None:
        if hasattr(order, "customer_external_id"):
            return order.customer_external_id
        identity = (
            CustomerIdentity.objects.filter(
                store_id=order.store_id, customer_id=order.customer_id
            )
            .order_by("pk")
            .values_list("external_id", flat=True)
            .first()
        )
        return identity

    def get_cart_id(self, order: Order) -> str | None:
        if hasattr(order, "cart_external_id"):
            return order.cart_external_id
        try:
            return order.cart.external_id
        except Cart.DoesNotExist:
            return None


# --- Carts -----------------------------------------------------------------------


class CartItemInputSerializer(StrictSerializer):
    sku = StrictCharField(max_length=64, required=False, allow_blank=True)
    name = StrictCharField(
        max_length=255,
        required=False,
        allow_blank=True,
        help_text=_("Required unless the SKU is a known product."),
    )
    quantity = QuantityField()
    unit_price = MoneyField()


class CartInputSerializer(StrictSerializer):
    """A cart's state as the shop last saw it; cart_upsert keeps the newest."""

    updated_at = serializers.DateTimeField(
        help_text=_(
            "When the cart reached this state in the shop. An update older than the "
            "stored one is ignored."
        )
    )
    items = serializers.ListField(
        child=CartItemInputSerializer(), max_length=CART_ITEM_LIMIT
    )
    currency = StrictCharField(min_length=3, max_length=3, required=False)
    value = MoneyField(
        required=False,
        allow_null=True,
        help_text=_("The sum of the items if left out."),
    )
    customer = CustomerInputSerializer(
        required=False,
        help_text=_("Whose cart it is, if known: by the store's id or by email."),
    )
    anonymous_id = StrictCharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text=_("The visitor's anonymous id, for a cart without a customer."),
    )


class CartItemSerializer(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=10, decimal_places=3)
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    product_id = serializers.IntegerField(allow_null=True)


class CartSerializer(ReadSerializer):
    customer_external_id = serializers.SerializerMethodField()
    converted_order = serializers.SlugRelatedField(
        slug_field="external_id",
        read_only=True,
        allow_null=True,
        help_text=_("The store's id of the order this cart became."),
    )
    items = CartItemSerializer(many=True, read_only=True)

    class Meta:
        model = Cart
        fields = (
            "id",
            "external_id",
            "customer",
            "customer_external_id",
            "anonymous_id",
            "currency",
            "value",
            "items",
            "updated_at",
            "converted_order",
            "converted_at",
            "created_at",
            "modified_at",
        )
        read_only_fields = fields

    def get_customer_external_id(self, cart: Cart) -> str | None:
        if cart.customer is None:
            return None
        identities = list(cart.customer.identities.all())
        return identities[0].external_id if identities else None


# --- Catalogue ------------------------------------------------------------------


class ProductInputSerializer(StrictSerializer):
    """One product of a bulk request; product_upsert_bulk validates it.

    The bulk view validates only the envelope with DRF, as the event batch does:
    this class documents the item, and a test keeps it equal to PRODUCT_FIELDS.
    """

    external_id = StrictCharField(max_length=100)
    sku = StrictCharField(max_length=64, help_text=_("Unique in the store."))
    name = StrictCharField(max_length=255)
    brand = StrictCharField(max_length=100, required=False, allow_blank=True)
    category = StrictCharField(
        max_length=100,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text=_("The store's category id; null removes the category."),
    )
    price = MoneyField()
    currency = StrictCharField(min_length=3, max_length=3, required=False)
    replenishment_days = serializers.IntegerField(
        min_value=1,
        max_value=32767,
        required=False,
        allow_null=True,
        help_text=_("Typical days until a customer needs the product again."),
    )
    is_sensitive = serializers.BooleanField(
        required=False,
        help_text=_("Never used in individual marketing. Left out: kept as is."),
    )
    is_active = serializers.BooleanField(required=False)
    # Plain strings in the schema, not format "uri": the service decides what a
    # link is (absolute http or https), and says so per item.
    url = StrictCharField(
        max_length=2000,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text=_(
            "The product page: an absolute http or https address, used in "
            "recommendations. Null or empty removes it."
        ),
    )
    image_url = StrictCharField(
        max_length=2000,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text=_(
            "The product image: an absolute http or https address. Null or empty "
            "removes it."
        ),
    )


class CategoryInputSerializer(StrictSerializer):
    """One category of a bulk request; category_upsert_bulk validates it."""

    external_id = StrictCharField(max_length=100)
    name = StrictCharField(max_length=200)
    parent = StrictCharField(
        max_length=100,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text=_(
            "The parent's store id: in this batch or already stored. Null makes a "
            "top-level category; left out keeps the stored parent."
        ),
    )
    is_sensitive = serializers.BooleanField(required=False)


class CatalogItemField(serializers.Field):
    """An item passed on as is; the bulk service checks it, listing every bad item."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


@extend_schema_field(ProductInputSerializer)
class ProductItemField(CatalogItemField):
    pass


@extend_schema_field(CategoryInputSerializer)
class CategoryItemField(CatalogItemField):
    pass


class ProductBulkInputSerializer(StrictSerializer):
    items = serializers.ListField(
        child=ProductItemField(), max_length=CATALOG_BATCH_LIMIT
    )


class CategoryBulkInputSerializer(StrictSerializer):
    items = serializers.ListField(
        child=CategoryItemField(), max_length=CATALOG_BATCH_LIMIT
    )


class BulkResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField(
        help_text=_("Items equal to what was stored: nothing written.")
    )


class ProductSerializer(ReadSerializer):
    category = serializers.SlugRelatedField(
        slug_field="external_id",
        read_only=True,
        help_text=_("The store's category id."),
    )

    class Meta:
        model = Product
        fields = (
            "id",
            "external_id",
            "sku",
            "name",
            "brand",
            "category",
            "price",
            "currency",
            "replenishment_days",
            "is_sensitive",
            "is_active",
            "url",
            "image_url",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class CategorySerializer(ReadSerializer):
    parent = serializers.SlugRelatedField(
        slug_field="external_id",
        read_only=True,
        help_text=_("The parent's store id; null for a top-level category."),
    )

    class Meta:
        model = Category
        fields = ("id", "external_id", "name", "parent", "is_sensitive")
        read_only_fields = fields
