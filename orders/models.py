from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import URLValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _

from customers.models import Customer, Store, currency_validator

MONEY = {"max_digits": 12, "decimal_places": 2}
# Links sent to customers: no ftp, no relative paths (URLField alone allows ftp).
http_url_validator = URLValidator(
    schemes=["http", "https"], message=_("Enter an absolute http or https address.")
)


class Category(models.Model):
    """A product category; categories form a tree through ``parent``."""

    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.PROTECT,
        related_name="categories",
    )
    external_id = models.CharField(_("external id"), max_length=100)
    name = models.CharField(_("name"), max_length=200)
    parent = models.ForeignKey(
        "self",
        verbose_name=_("parent"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
    )
    is_sensitive = models.BooleanField(
        _("sensitive"),
        default=False,
        help_text=_(
            "Health, intimate or similar goods: never used in individual marketing. "
            "Products in this category count as sensitive."
        ),
    )

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "external_id"],
                name="category_store_external_id_unique",
            ),
            models.CheckConstraint(
                condition=~Q(parent=F("pk")), name="category_not_own_parent"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def ancestors(self) -> list[Category]:
        """The chain from the root down to this category's parent."""
        chain, node, seen = [], self.parent, {self.pk}
        while node is not None and node.pk not in seen:
            seen.add(node.pk)
            chain.append(node)
            node = node.parent
        return list(reversed(chain))

    @property
    def path(self) -> str:
        return " › ".join([*(c.name for c in self.ancestors()), self.name])


class ProductQuerySet(models.QuerySet):
    def marketable(self) -> ProductQuerySet:
        """Products that may be used in individual marketing (not sensitive)."""
        return self.filter(is_sensitive=False).exclude(category__is_sensitive=True)

    def replenishable(self) -> ProductQuerySet:
        """Products bought again after a known number of days."""
        return self.filter(replenishment_days__isnull=False)


class Product(models.Model):
    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.PROTECT,
        related_name="products",
    )
    external_id = models.CharField(_("external id"), max_length=100)
    sku = models.CharField(_("SKU"), max_length=64)
    name = models.CharField(_("name"), max_length=255)
    brand = models.CharField(_("brand"), max_length=100, blank=True)
    category = models.ForeignKey(
        Category,
        verbose_name=_("category"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="products",
    )
    price = models.DecimalField(_("price"), **MONEY)
    currency = models.CharField(
        _("currency"),
        max_length=3,
        default=settings.DEFAULT_CURRENCY,
        validators=[currency_validator],
    )
    # db_default too: raw INSERT writers (the catalogue upsert, benchmarks) may
    # leave the links out.
    url = models.URLField(
        _("product page"),
        max_length=2000,
        blank=True,
        default="",
        db_default="",
        validators=[http_url_validator],
    )
    image_url = models.URLField(
        _("image"),
        max_length=2000,
        blank=True,
        default="",
        db_default="",
        validators=[http_url_validator],
    )
    replenishment_days = models.PositiveSmallIntegerField(
        _("replenishment days"),
        null=True,
        blank=True,
        help_text=_("Typical days until a customer needs this product again."),
    )
    is_sensitive = models.BooleanField(
        _("sensitive: never use in individual marketing"), default=False
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "external_id"], name="product_store_external_id_unique"
            ),
            models.UniqueConstraint(
                fields=["store", "sku"], name="product_store_sku_unique"
            ),
            models.CheckConstraint(
                condition=Q(price__gte=0), name="product_price_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(replenishment_days__isnull=True)
                | Q(replenishment_days__gt=0),
                name="product_replenishment_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class OrderQuerySet(models.QuerySet):
    def in_store(self, store: Store) -> OrderQuerySet:
        """Orders placed in the given store."""
        return self.filter(store=store)

    def completed(self) -> OrderQuerySet:
        """Orders that count as revenue: paid, shipped or delivered."""
        return self.filter(status__in=Order.REVENUE_STATUSES)

    def placed_between(self, start, end) -> OrderQuerySet:
        """Orders placed in the half-open interval [start, end)."""
        return self.filter(placed_at__gte=start, placed_at__lt=end)


class Order(models.Model):
    class Status(models.TextChoices):
        NEW = "new", _("New")
        PAID = "paid", _("Paid")
        SHIPPED = "shipped", _("Shipped")
        DELIVERED = "delivered", _("Delivered")
        CANCELLED = "cancelled", _("Cancelled")
        RETURNED = "returned", _("Returned")

    REVENUE_STATUSES = (Status.PAID, Status.SHIPPED, Status.DELIVERED)

    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.PROTECT,
        related_name="orders",
        db_index=False,  # order_store_external_id_unique leads with it
    )
    external_id = models.CharField(_("external id"), max_length=100)
    number = models.CharField(_("number"), max_length=64)
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.PROTECT,
        related_name="orders",
        db_index=False,  # order_customer_placed_idx leads with it
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.NEW
    )
    placed_at = models.DateTimeField(_("placed at"))
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    shipped_at = models.DateTimeField(_("shipped at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    returned_at = models.DateTimeField(_("returned at"), null=True, blank=True)
    currency = models.CharField(
        _("currency"),
        max_length=3,
        default=settings.DEFAULT_CURRENCY,
        validators=[currency_validator],
    )
    subtotal = models.DecimalField(_("subtotal"), **MONEY, default=Decimal("0"))
    discount_total = models.DecimalField(_("discount"), **MONEY, default=Decimal("0"))
    shipping_total = models.DecimalField(_("shipping"), **MONEY, default=Decimal("0"))
    total = models.DecimalField(_("total"), **MONEY)
    payment_method = models.CharField(_("payment method"), max_length=64, blank=True)
    shipping_method = models.CharField(_("shipping method"), max_length=64, blank=True)
    coupon_code = models.CharField(_("coupon code"), max_length=64, blank=True)
    source = models.CharField(_("source"), max_length=64, blank=True)
    utm_source = models.CharField(_("UTM source"), max_length=100, blank=True)
    utm_medium = models.CharField(_("UTM medium"), max_length=100, blank=True)
    utm_campaign = models.CharField(_("UTM campaign"), max_length=200, blank=True)
    billing_address = models.JSONField(_("billing address"), default=dict, blank=True)
    shipping_address = models.JSONField(_("shipping address"), default=dict, blank=True)
    # db_default too: COPY-based writers (seed_demo, imports) may leave it out.
    note = models.TextField(_("note"), blank=True, default="", db_default="")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-placed_at"]
        permissions = [("export_order", _("Can export orders"))]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "external_id"], name="order_store_external_id_unique"
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=[
                        "new",
                        "paid",
                        "shipped",
                        "delivered",
                        "cancelled",
                        "returned",
                    ]
                ),
                name="order_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="order_currency_iso"
            ),
            models.CheckConstraint(
                condition=Q(subtotal__gte=0)
                & Q(discount_total__gte=0)
                & Q(shipping_total__gte=0)
                & Q(total__gte=0),
                name="order_amounts_non_negative",
            ),
        ]
        indexes = [
            models.Index(
                fields=["customer", "-placed_at"], name="order_customer_placed_idx"
            ),
            models.Index(fields=["store", "-placed_at"], name="order_store_placed_idx"),
            models.Index(fields=["-placed_at"], name="order_placed_idx"),
            models.Index(fields=["updated_at"], name="order_updated_idx"),
            models.Index(Upper("number"), name="order_number_ci_idx"),
            models.Index(fields=["external_id"], name="order_external_id_idx"),
        ]

    def __str__(self) -> str:
        return self.number

    def counts_as_revenue(self) -> bool:
        return self.status in self.REVENUE_STATUSES


class OrderLine(models.Model):
    order = models.ForeignKey(
        Order,
        verbose_name=_("order"),
        on_delete=models.CASCADE,
        related_name="lines",
        db_index=False,  # order_line_order_idx leads with it
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    product = models.ForeignKey(
        Product,
        verbose_name=_("product"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="order_lines",
        db_index=False,  # order_line_product_idx leads with it
    )
    sku = models.CharField(_("SKU"), max_length=64, blank=True)
    name = models.CharField(_("name"), max_length=255)
    category = models.ForeignKey(
        Category,
        verbose_name=_("category"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="order_lines",
        db_index=False,  # order_line_category_idx leads with it
    )
    quantity = models.DecimalField(_("quantity"), max_digits=10, decimal_places=3)
    unit_price = models.DecimalField(_("unit price"), **MONEY)
    total = models.DecimalField(_("total"), **MONEY)

    class Meta:
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        ordering = ["order", "position"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="order_line_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0) & Q(total__gte=0),
                name="order_line_amounts_non_negative",
            ),
        ]
        indexes = [
            models.Index(fields=["order", "position"], name="order_line_order_idx"),
            # "Who bought this category / product": the orders come straight from
            # the index (an index-only scan), the lines' rows are never read.
            models.Index(fields=["category", "order"], name="order_line_category_idx"),
            models.Index(fields=["product", "order"], name="order_line_product_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.name}"


class CartQuerySet(models.QuerySet):
    def open(self) -> CartQuerySet:
        """Carts not (yet) turned into an order."""
        return self.filter(converted_at__isnull=True)

    def abandoned_since(self, moment) -> CartQuerySet:
        """Open carts with items, last changed before ``moment``."""
        return self.open().filter(updated_at__lt=moment, value__gt=0)


class Cart(models.Model):
    """A shopping cart as the store last reported it; flows use it for reminders."""

    store = models.ForeignKey(
        Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="carts"
    )
    external_id = models.CharField(_("external id"), max_length=100)
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="carts",
    )
    anonymous_id = models.CharField(_("anonymous id"), max_length=64, blank=True)
    currency = models.CharField(
        _("currency"),
        max_length=3,
        default=settings.DEFAULT_CURRENCY,
        validators=[currency_validator],
    )
    value = models.DecimalField(_("value"), **MONEY, default=Decimal("0"))
    # [{"sku", "name", "quantity", "unit_price", "product_id"}], as last reported.
    items = models.JSONField(_("items"), default=list, blank=True)
    updated_at = models.DateTimeField(_("updated at (in the store)"))
    converted_order = models.OneToOneField(
        Order,
        verbose_name=_("order"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="cart",
    )
    converted_at = models.DateTimeField(_("converted at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    modified_at = models.DateTimeField(_("modified at"), auto_now=True)

    objects = CartQuerySet.as_manager()

    class Meta:
        verbose_name = _("cart")
        verbose_name_plural = _("carts")
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "external_id"], name="cart_store_external_id_unique"
            ),
            models.CheckConstraint(
                condition=~Q(customer__isnull=True, anonymous_id=""),
                name="cart_has_customer_or_visitor",
            ),
            models.CheckConstraint(
                condition=Q(value__gte=0), name="cart_value_non_negative"
            ),
        ]
        indexes = [
            models.Index(
                fields=["updated_at"],
                condition=Q(converted_at__isnull=True),
                name="cart_open_updated_idx",
            ),
            models.Index(fields=["customer", "-updated_at"], name="cart_customer_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.store.code}:{self.external_id}"
