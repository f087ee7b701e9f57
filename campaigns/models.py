"""Messages to customers: templates, campaigns, automated flows, deliveries, coupons.

A campaign sends one template to a segment's members who may receive it; a flow
sends one template to each customer a trigger fires for (an abandoned cart, a
product running out, ...). Either way every message is a Delivery row, created
before anything is sent and claimed by the sender with SELECT ... FOR UPDATE SKIP
LOCKED, so each recipient gets one message however many workers send and however
often they are killed (``campaigns.sending``). Status changes of a campaign go
through ``campaigns.services.campaign_transition`` along TRANSITIONS.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from consents.models import ConsentPurpose
from customers.models import Customer
from orders.models import Order
from segments.models import Segment


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")


class MessageTemplate(models.Model):
    """What a message says, with merge tags (``campaigns.rendering``).

    Email: a subject and an HTML body (sanitised on save; the text alternative is
    generated from it). SMS: a text body. Staff text is never a Django template.
    """

    name = models.CharField(_("name"), max_length=200)
    channel = models.CharField(
        _("channel"), max_length=8, choices=Channel.choices, default=Channel.EMAIL
    )
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    html = models.TextField(_("HTML body"), blank=True)
    text = models.TextField(
        _("SMS text"), blank=True, help_text=_("The message of an SMS template.")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(channel="sms") | ~Q(subject=""),
                name="template_email_has_subject",
            ),
            models.CheckConstraint(
                condition=Q(channel="email") | ~Q(text=""),
                name="template_sms_has_text",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CouponSettings(models.Model):
    """Unique coupon codes for the recipients of a campaign or flow (optional)."""

    coupon_prefix = models.CharField(
        _("coupon prefix"),
        max_length=16,
        blank=True,
        help_text=_(
            "Give every recipient a unique coupon code starting with this "
            "(leave empty for none). The shop must accept the codes."
        ),
    )
    coupon_validity_days = models.PositiveIntegerField(
        _("coupon valid for (days)"),
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text=_("Counted from sending."),
    )

    class Meta:
        abstract = True


class Campaign(CouponSettings):
    """One template sent to a segment, once, to the members who may receive it."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SCHEDULED = "scheduled", _("Scheduled")
        SENDING = "sending", _("Sending")
        PAUSED = "paused", _("Paused")
        SENT = "sent", _("Sent")
        CANCELLED = "cancelled", _("Cancelled")

    # The only status changes there are; campaign_transition enforces them.
    TRANSITIONS: dict[str, frozenset[str]] = {
        Status.DRAFT: frozenset({Status.SCHEDULED, Status.SENDING, Status.CANCELLED}),
        Status.SCHEDULED: frozenset({Status.DRAFT, Status.SENDING, Status.CANCELLED}),
        Status.SENDING: frozenset({Status.PAUSED, Status.SENT, Status.CANCELLED}),
        Status.PAUSED: frozenset({Status.SENDING, Status.CANCELLED}),
        Status.SENT: frozenset(),
        Status.CANCELLED: frozenset(),
    }
    EDITABLE = frozenset({Status.DRAFT, Status.SCHEDULED})

    name = models.CharField(_("name"), max_length=200)
    template = models.ForeignKey(
        MessageTemplate,
        verbose_name=_("template"),
        on_delete=models.PROTECT,
        related_name="campaigns",
    )
    segment = models.ForeignKey(
        Segment,
        verbose_name=_("segment"),
        on_delete=models.PROTECT,
        related_name="campaigns",
    )
    purpose = models.ForeignKey(
        ConsentPurpose,
        verbose_name=_("consent needed"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    channel = models.CharField(
        _("channel"), max_length=8, choices=Channel.choices, editable=False
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.DRAFT
    )
    scheduled_at = models.DateTimeField(_("send at"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    # When the audience was chosen (its Delivery rows created): sending starts then.
    prepared_at = models.DateTimeField(_("audience chosen at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # The sender's last sign of life: a campaign "sending" with an old heartbeat has
    # lost its worker, and campaigns_watch_task starts another.
    heartbeat_at = models.DateTimeField(_("last progress"), null=True, blank=True)
    audience_size = models.PositiveIntegerField(_("audience"), default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-created_at"]
        permissions = [("send_campaign", _("Can send campaigns"))]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="scheduled") | Q(scheduled_at__isnull=False),
                name="campaign_scheduled_has_time",
            )
        ]
        indexes = [
            models.Index(
                fields=["scheduled_at"],
                condition=Q(status="scheduled"),
                name="campaign_due_idx",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def is_editable(self) -> bool:
        return self.status in self.EDITABLE

    def can_change_to(self, status: str) -> bool:
        return status in self.TRANSITIONS[self.status]


class CampaignEvent(models.Model):
    """The audit trail of a campaign: who created, changed, scheduled, sent it."""

    class Kind(models.TextChoices):
        CREATED = "created", _("Created")
        UPDATED = "updated", _("Changed")
        STATUS = "status", _("Status changed")
        TEST_SENT = "test_sent", _("Test sent")

    campaign = models.ForeignKey(
        Campaign,
        verbose_name=_("campaign"),
        on_delete=models.CASCADE,
        related_name="events",
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    old_status = models.CharField(_("from"), max_length=10, blank=True)
    new_status = models.CharField(_("to"), max_length=10, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    data = models.JSONField(_("details"), default=dict, blank=True)
    at = models.DateTimeField(_("at"), default=timezone.now)

    class Meta:
        verbose_name = _("campaign event")
        verbose_name_plural = _("campaign events")
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.campaign}: {self.get_kind_display()}"


class Flow(CouponSettings):
    """An automation: a template sent to each customer one trigger fires for."""

    class Kind(models.TextChoices):
        ABANDONED_CART = "abandoned_cart", _("Abandoned cart")
        REPLENISHMENT = "replenishment", _("Replenishment reminder")
        WIN_BACK = "win_back", _("Win-back")
        WELCOME = "welcome", _("Welcome")
        REVIEW_REQUEST = "review_request", _("Review request")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, unique=True)
    is_active = models.BooleanField(pgettext_lazy("flow", "switched on"), default=False)
    template = models.ForeignKey(
        MessageTemplate,
        verbose_name=_("template"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="flows",
    )
    purpose = models.ForeignKey(
        ConsentPurpose,
        verbose_name=_("consent needed"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    delay_hours = models.IntegerField(
        _("delay (hours)"),
        help_text=_(
            "After the trigger: the cart's last change, the delivery, the double "
            "opt-in, the move into the segment. Replenishment: after the product "
            "runs out (negative: before)."
        ),
    )
    activated_at = models.DateTimeField(
        _("on since"),
        null=True,
        blank=True,
        help_text=_("Only triggers from this moment on are acted upon."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("flow")
        verbose_name_plural = _("flows")
        ordering = ["kind"]
        constraints = [
            models.CheckConstraint(
                condition=Q(is_active=False)
                | Q(template__isnull=False, activated_at__isnull=False),
                name="flow_active_has_template",
            )
        ]

    def __str__(self) -> str:
        return self.get_kind_display()


class DeliveryQuerySet(models.QuerySet):
    def sent_since(self, moment) -> DeliveryQuerySet:
        """Messages sent from ``moment`` on (the frequency cap counts them)."""
        return self.filter(status=Delivery.Status.SENT, sent_at__gte=moment)


class Delivery(models.Model):
    """One message to one customer: of a campaign, or of a flow for one trigger."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        SENDING = "sending", _("Being sent")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Not sent")

    class Reason(models.TextChoices):
        NO_CONSENT = "no_consent", _("No consent")
        OBJECTED = "objected", _("Objected to marketing")
        RESTRICTED = "restricted", _("Processing restricted")
        ERASED = "erased", _("Erased")
        SUPPRESSED = "suppressed", _("Suppressed address")
        NO_ADDRESS = "no_address", _("No address")
        FREQUENCY_CAP = "frequency_cap", _("Frequency cap")
        CANCELLED = "cancelled", _("Stopped before sending")
        NONE = "", _("None")

    campaign = models.ForeignKey(
        Campaign,
        verbose_name=_("campaign"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    flow = models.ForeignKey(
        Flow,
        verbose_name=_("flow"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    # What fired a flow ("cart:12", "line:34", ...): a flow never sends twice for one.
    trigger = models.CharField(_("trigger"), max_length=64, blank=True)
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="deliveries",
    )
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.PENDING
    )
    reason = models.CharField(
        _("reason"), max_length=16, choices=Reason.choices, blank=True
    )
    message_id = models.CharField(_("message id"), max_length=255, blank=True)
    # The sender holding the row while it is being sent (campaigns.sending).
    claimed_by = models.IntegerField(_("sender"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    opened_at = models.DateTimeField(_("first opened at"), null=True, blank=True)
    clicked_at = models.DateTimeField(_("first clicked at"), null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(campaign__isnull=True, flow__isnull=False)
                | Q(campaign__isnull=False, flow__isnull=True),
                name="delivery_campaign_or_flow",
            ),
            models.UniqueConstraint(
                fields=["campaign", "customer", "channel"],
                condition=Q(campaign__isnull=False),
                name="delivery_campaign_unique",
            ),
            models.UniqueConstraint(
                fields=["flow", "trigger"],
                condition=Q(flow__isnull=False),
                name="delivery_flow_trigger_unique",
            ),
        ]
        indexes = [
            # The sender claims the oldest waiting rows of a campaign or flow.
            models.Index(
                fields=["campaign", "id"],
                condition=Q(status="pending"),
                name="delivery_pending_campaign_idx",
            ),
            models.Index(
                fields=["flow", "id"],
                condition=Q(status="pending"),
                name="delivery_pending_flow_idx",
            ),
            # The frequency cap: a customer's messages of the last days.
            models.Index(
                fields=["customer", "sent_at"],
                condition=Q(status="sent"),
                name="delivery_customer_sent_idx",
            ),
            models.Index(fields=["message_id"], name="delivery_message_id_idx"),
            # Rows being sent, by sender: those of a sender that died go back.
            models.Index(
                fields=["claimed_by"],
                condition=Q(status="sending"),
                name="delivery_sending_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} → {self.customer_id}"


class DeliveryEvent(models.Model):
    """What happened to a message after sending: opened, clicked, bounced, ..."""

    class Kind(models.TextChoices):
        OPEN = "open", _("Opened")
        CLICK = "click", _("Clicked")
        BOUNCE = "bounce", _("Bounced")
        COMPLAINT = "complaint", _("Marked as spam")
        UNSUBSCRIBE = "unsubscribe", _("Unsubscribed")

    delivery = models.ForeignKey(
        Delivery,
        verbose_name=_("delivery"),
        on_delete=models.CASCADE,
        related_name="events",
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    url = models.URLField(_("address"), max_length=2000, blank=True)
    at = models.DateTimeField(_("at"), default=timezone.now)

    class Meta:
        verbose_name = _("delivery event")
        verbose_name_plural = _("delivery events")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["delivery", "kind"], name="delivery_event_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.at:%Y-%m-%d %H:%M}"


class Coupon(models.Model):
    """A unique code given to one recipient; redeemed by the order that uses it."""

    code = models.CharField(_("code"), max_length=64, unique=True)
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="coupons",
    )
    delivery = models.OneToOneField(
        Delivery,
        verbose_name=_("delivery"),
        on_delete=models.CASCADE,
        related_name="coupon",
    )
    valid_from = models.DateTimeField(_("valid from"))
    valid_until = models.DateTimeField(_("valid until"))
    redeemed_at = models.DateTimeField(_("redeemed at"), null=True, blank=True)
    order = models.ForeignKey(
        Order,
        verbose_name=_("order"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("coupon")
        verbose_name_plural = _("coupons")
        ordering = ["-valid_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_until__gt=models.F("valid_from")),
                name="coupon_valid_period",
            )
        ]

    def __str__(self) -> str:
        return self.code
