"""The support log: every conversation, complaint, return, review and note.

An interaction belongs to a customer and, where it is about one, to an order.
Complaints and returns have a status (changed only through
``customers.interactions.interaction_set_status``, along its allowed transitions)
and a due date: Polish consumer law deems a consumer's complaint accepted when the
shop has not answered within 14 days, and a withdrawal must be refunded within 14
days. Every change of status or assignee is kept in ``InteractionChange``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from customers.models.api import ApiKey
from customers.models.customer import Customer, Store


class InteractionQuerySet(models.QuerySet):
    def with_status(self) -> InteractionQuerySet:
        """Complaints and returns: the kinds that have a status and a due date."""
        return self.filter(kind__in=Interaction.KINDS_WITH_STATUS)

    def pending(self) -> InteractionQuerySet:
        """Complaints and returns still waiting for the shop or the customer."""
        return self.filter(status__in=Interaction.PENDING_STATUSES)

    def overdue(self, now=None) -> InteractionQuerySet:
        """Pending complaints and returns past their due date."""
        return self.pending().filter(due_at__lt=now or timezone.now())


class Interaction(models.Model):
    class Kind(models.TextChoices):
        CONVERSATION = "conversation", _("Conversation")
        COMPLAINT = "complaint", _("Complaint")
        RETURN = "return", _("Return")
        REVIEW = "review", _("Review")
        INQUIRY = "inquiry", _("Inquiry")
        FEEDBACK = "feedback", _("Feedback or survey")
        NOTE = "note", _("Note")

    class Channel(models.TextChoices):
        EMAIL = "email", _("Email")
        PHONE = "phone", _("Phone")
        CHAT = "chat", _("Chat")
        SOCIAL = "social", _("Social media")
        IN_STORE = "in_store", _("In store")
        WEBSITE = "website", _("Shop website")

    class Direction(models.TextChoices):
        INBOUND = "inbound", _("From the customer")
        OUTBOUND = "outbound", _("To the customer")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        WAITING = "waiting", _("Waiting for the customer")
        RESOLVED = "resolved", _("Resolved")
        REJECTED = "rejected", _("Rejected")

    class RatingScale(models.TextChoices):
        STARS = "stars", _("1–5 stars")
        NPS = "nps", _("NPS 0–10")

    KINDS_WITH_STATUS = ("complaint", "return")
    KINDS_WITH_RATING = ("review", "feedback")
    PENDING_STATUSES = ("open", "waiting")

    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="interactions",
        db_index=False,  # interaction_customer_idx starts with it
    )
    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    direction = models.CharField(
        _("direction"),
        max_length=8,
        choices=Direction.choices,
        default=Direction.INBOUND,
    )
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    body = models.TextField(_("what was said"), blank=True)
    # Orders sit right of customers: referenced by name, never imported.
    order = models.ForeignKey(
        "orders.Order",
        verbose_name=_("order"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="interactions",
        db_index=False,  # interaction_order_idx, only where set
    )
    occurred_at = models.DateTimeField(_("when"), default=timezone.now)
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, blank=True
    )
    due_at = models.DateTimeField(_("answer due by"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assignee"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_interactions",
        db_index=False,  # interaction_assignee_idx, only where set
    )
    rating = models.PositiveSmallIntegerField(_("rating"), null=True, blank=True)
    rating_scale = models.CharField(
        _("rating scale"), max_length=8, choices=RatingScale.choices, blank=True
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("logged by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    api_key = models.ForeignKey(
        ApiKey,
        verbose_name=_("API key"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # interaction_api_key_idx, only where set
    )
    # The shop's own id for what it posted (a review's id): posting it again
    # updates it instead of adding another.
    external_id = models.CharField(_("external id"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = InteractionQuerySet.as_manager()

    class Meta:
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        ordering = ["-occurred_at", "-pk"]
        permissions = [("export_interaction", _("Can export interactions"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    kind__in=[
                        "conversation",
                        "complaint",
                        "return",
                        "review",
                        "inquiry",
                        "feedback",
                        "note",
                    ]
                ),
                name="interaction_kind_valid",
            ),
            models.CheckConstraint(
                condition=Q(
                    channel__in=[
                        "email",
                        "phone",
                        "chat",
                        "social",
                        "in_store",
                        "website",
                    ]
                ),
                name="interaction_channel_valid",
            ),
            models.CheckConstraint(
                condition=Q(direction__in=["inbound", "outbound"]),
                name="interaction_direction_valid",
            ),
            # Complaints and returns always have a status and a due date; the
            # other kinds have neither.
            models.CheckConstraint(
                condition=(
                    Q(
                        kind__in=["complaint", "return"],
                        status__in=["open", "waiting", "resolved", "rejected"],
                        due_at__isnull=False,
                    )
                    | (
                        ~Q(kind__in=["complaint", "return"])
                        & Q(status="", due_at__isnull=True, assignee__isnull=True)
                    )
                ),
                name="interaction_status_for_complaints",
            ),
            models.CheckConstraint(
                condition=(
                    Q(rating__isnull=True, rating_scale="")
                    | Q(
                        kind__in=["review", "feedback"],
                        rating_scale="stars",
                        rating__gte=1,
                        rating__lte=5,
                    )
                    | Q(
                        kind__in=["review", "feedback"],
                        rating_scale="nps",
                        rating__gte=0,
                        rating__lte=10,
                    )
                ),
                name="interaction_rating_valid",
            ),
            models.UniqueConstraint(
                fields=["store", "external_id"],
                condition=~Q(external_id=""),
                name="interaction_store_external_id_unique",
            ),
        ]
        indexes = [
            models.Index(
                fields=["customer", "-occurred_at"], name="interaction_customer_idx"
            ),
            # The complaints queue: pending ones by due date.
            models.Index(
                fields=["due_at"],
                condition=Q(status__in=["open", "waiting"]),
                name="interaction_pending_due_idx",
            ),
            models.Index(
                fields=["order"],
                condition=Q(order__isnull=False),
                name="interaction_order_idx",
            ),
            models.Index(
                fields=["assignee"],
                condition=Q(assignee__isnull=False),
                name="interaction_assignee_idx",
            ),
            models.Index(
                fields=["api_key"],
                condition=Q(api_key__isnull=False),
                name="interaction_api_key_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.subject or f"{self.get_kind_display()} #{self.pk}"

    @property
    def has_status(self) -> bool:
        return self.kind in self.KINDS_WITH_STATUS

    @property
    def is_pending(self) -> bool:
        return self.status in self.PENDING_STATUSES

    def is_overdue(self, now=None) -> bool:
        return bool(
            self.is_pending and self.due_at and self.due_at < (now or timezone.now())
        )


class InteractionAttachment(models.Model):
    """A file attached to an interaction (a photo of the damage, an invoice).

    Kept in private storage and served only through a permission-checked view;
    size and type are checked by ``interaction_attach``.
    """

    interaction = models.ForeignKey(
        Interaction,
        verbose_name=_("interaction"),
        on_delete=models.CASCADE,
        related_name="attachments",
    )
    file = models.FileField(_("file"), upload_to="interactions/%Y/%m/", max_length=300)
    name = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(_("type"), max_length=100)
    size = models.PositiveIntegerField(_("size in bytes"))
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("uploaded by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return self.name


class InteractionChange(models.Model):
    """One change of a complaint's or return's status or assignee: who, when, what."""

    class Field(models.TextChoices):
        STATUS = "status", _("status")
        ASSIGNEE = "assignee", _("assignee")

    interaction = models.ForeignKey(
        Interaction,
        verbose_name=_("interaction"),
        on_delete=models.CASCADE,
        related_name="changes",
    )
    field = models.CharField(_("what changed"), max_length=16, choices=Field.choices)
    old_value = models.CharField(_("from"), max_length=150, blank=True)
    new_value = models.CharField(_("to"), max_length=150, blank=True)
    note = models.TextField(_("note"), blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("changed by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now)

    class Meta:
        verbose_name = _("interaction change")
        verbose_name_plural = _("interaction changes")
        ordering = ["changed_at", "pk"]

    def __str__(self) -> str:
        return f"{self.field}: {self.old_value} → {self.new_value}"
