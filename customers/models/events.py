from __future__ import annotations

from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from customers.models.customer import Customer, Store


class Visitor(models.Model):
    """An anonymous visitor id from a store's site, and who they turned out to be."""

    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.CASCADE,
        related_name="visitors",
        db_index=False,  # visitor_store_anonymous_unique leads with it
    )
    anonymous_id = models.CharField(_("anonymous id"), max_length=64)
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="visitors",
        db_index=False,  # visitor_customer_idx
    )
    first_seen_at = models.DateTimeField(_("first seen at"))
    last_seen_at = models.DateTimeField(_("last seen at"))
    identified_at = models.DateTimeField(_("identified at"), null=True, blank=True)

    class Meta:
        verbose_name = _("visitor")
        verbose_name_plural = _("visitors")
        constraints = [
            models.UniqueConstraint(
                fields=["store", "anonymous_id"], name="visitor_store_anonymous_unique"
            ),
            models.CheckConstraint(
                condition=~Q(anonymous_id=""), name="visitor_anonymous_id_not_blank"
            ),
        ]
        indexes = [models.Index(fields=["customer"], name="visitor_customer_idx")]

    def __str__(self) -> str:
        return self.anonymous_id


class Event(models.Model):
    """A behaviour event from a store's site: a page view, a search, an add to cart."""

    class Kind(models.TextChoices):
        PAGE_VIEW = "page_view", _("Page view")
        PRODUCT_VIEW = "product_view", _("Product view")
        SEARCH = "search", _("Search")
        ADD_TO_CART = "add_to_cart", _("Add to cart")
        CHECKOUT_STARTED = "checkout_started", _("Checkout started")

    # Each index costs every event insert: a store's events are reached through
    # event_store_external_id_unique and the time BRIN, a customer's through
    # event_customer_idx, so the foreign keys get no index of their own.
    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,
    )
    external_id = models.CharField(_("external id"), max_length=100, blank=True)
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="events",
        db_index=False,
    )
    anonymous_id = models.CharField(_("anonymous id"), max_length=64, blank=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    occurred_at = models.DateTimeField(_("occurred at"))
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    url = models.CharField(_("URL"), max_length=2000, blank=True)
    referrer = models.CharField(_("referrer"), max_length=2000, blank=True)
    keyword = models.CharField(_("search keyword"), max_length=200, blank=True)
    product_sku = models.CharField(_("product SKU"), max_length=64, blank=True)
    utm_source = models.CharField(_("UTM source"), max_length=100, blank=True)
    utm_medium = models.CharField(_("UTM medium"), max_length=100, blank=True)
    utm_campaign = models.CharField(_("UTM campaign"), max_length=200, blank=True)
    device = models.CharField(_("device"), max_length=32, blank=True)
    os = models.CharField(_("OS"), max_length=64, blank=True)
    browser = models.CharField(_("browser"), max_length=64, blank=True)
    # Truncated to /24 (IPv4) or /48 (IPv6) before it is stored: never a full address.
    ip_network = models.GenericIPAddressField(_("IP network"), null=True, blank=True)

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ["-occurred_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "external_id"],
                condition=~Q(external_id=""),
                name="event_store_external_id_unique",
            ),
            models.CheckConstraint(
                condition=~Q(customer__isnull=True, anonymous_id=""),
                name="event_has_customer_or_visitor",
            ),
            models.CheckConstraint(
                condition=Q(
                    kind__in=[
                        "page_view",
                        "product_view",
                        "search",
                        "add_to_cart",
                        "checkout_started",
                    ]
                ),
                name="event_kind_valid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["customer", "-occurred_at"], name="event_customer_idx"
            ),
            models.Index(
                fields=["store", "anonymous_id"],
                condition=Q(customer__isnull=True),
                name="event_anonymous_idx",
            ),
            BrinIndex(fields=["occurred_at"], name="event_occurred_brin"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.occurred_at:%Y-%m-%d %H:%M}"
