from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from customers.models.customer import Store


class WebhookEndpoint(models.Model):
    """Where a store's platform wants to hear about changes, signed with ``secret``."""

    class EventType(models.TextChoices):
        CUSTOMER_UPDATED = "customer.updated", _("Customer updated")
        CONSENT_CHANGED = "consent.changed", _("Consent changed")
        CUSTOMER_ERASED = "customer.erased", _("Customer erased")

    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.CASCADE,
        related_name="webhook_endpoints",
    )
    url = models.URLField(_("URL"), max_length=500)
    secret = models.CharField(_("signing secret"), max_length=128)
    events = ArrayField(
        models.CharField(max_length=32, choices=EventType.choices),
        verbose_name=_("events"),
        default=list,
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["store", "url"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event sent (or being sent) to one endpoint: the delivery log."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        verbose_name=_("endpoint"),
        on_delete=models.CASCADE,
        related_name="deliveries",
    )
    event = models.CharField(_("event"), max_length=32)
    payload = models.JSONField(_("payload"))
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    response_status = models.PositiveSmallIntegerField(
        _("response status"), null=True, blank=True
    )
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "succeeded", "failed"]),
                name="webhook_delivery_status_valid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["endpoint", "-created_at"], name="webhook_delivery_idx"
            ),
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="webhook_delivery_pending_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint}"
