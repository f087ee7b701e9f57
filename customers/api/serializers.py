from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api import ReadSerializer, StrictCharField, StrictSerializer
from customers.interactions import BODY_LIMIT
from customers.models import Customer, Event, Interaction
from customers.services import EVENT_BATCH_LIMIT


class CustomerInputSerializer(StrictSerializer):
    """What the shop may send about a customer; customer_upsert normalises it."""

    external_id = StrictCharField(max_length=100, required=False)
    email = StrictCharField(max_length=254, required=False, allow_null=True)
    phone = StrictCharField(max_length=32, required=False, allow_blank=True)
    first_name = StrictCharField(max_length=150, required=False, allow_blank=True)
    last_name = StrictCharField(max_length=150, required=False, allow_blank=True)
    birth_date = serializers.DateField(required=False, allow_null=True)
    gender = serializers.ChoiceField(
        choices=Customer.Gender.choices, required=False, allow_blank=True
    )
    language = StrictCharField(max_length=8, required=False)
    company = StrictCharField(max_length=200, required=False, allow_blank=True)
    nip = StrictCharField(max_length=20, required=False, allow_blank=True)
    preferred_channels = serializers.ListField(
        child=serializers.ChoiceField(choices=Customer.Channel.choices),
        required=False,
        max_length=4,
    )
    acquisition_source = StrictCharField(
        max_length=100, required=False, allow_blank=True
    )
    acquisition_medium = StrictCharField(
        max_length=100, required=False, allow_blank=True
    )
    acquisition_campaign = StrictCharField(
        max_length=200, required=False, allow_blank=True
    )
    acquisition_keyword = StrictCharField(
        max_length=200, required=False, allow_blank=True
    )
    last_device = StrictCharField(max_length=32, required=False, allow_blank=True)
    last_os = StrictCharField(max_length=64, required=False, allow_blank=True)
    last_browser = StrictCharField(max_length=64, required=False, allow_blank=True)
    last_seen_at = serializers.DateTimeField(required=False, allow_null=True)
    attributes = serializers.DictField(required=False)
    tags = serializers.ListField(
        child=StrictCharField(max_length=64), required=False, max_length=50
    )


class CustomerSerializer(ReadSerializer):
    """A customer as the calling store sees them (its own external id)."""

    external_id = serializers.SerializerMethodField()
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")

    class Meta:
        model = Customer
        fields = (
            "id",
            "external_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "birth_date",
            "gender",
            "language",
            "company",
            "nip",
            "preferred_channels",
            "acquisition_source",
            "acquisition_medium",
            "acquisition_campaign",
            "acquisition_keyword",
            "last_device",
            "last_os",
            "last_browser",
            "status",
            "attributes",
            "tags",
            "created_at",
            "updated_at",
            "last_seen_at",
        )
        read_only_fields = fields

    def get_external_id(self, customer: Customer) -> str | None:
        # identities are prefetched filtered to the calling store
        identities = list(customer.identities.all())
        return identities[0].external_id if identities else None


class EventInputSerializer(StrictSerializer):
    """One behaviour event as the shop sends it; event_ingest validates it.

    The batch view validates only the envelope with DRF: per-event validation is the
    service's, in one pass over up to 1,000 events (a DRF serializer per event costs
    more than the insert). This class documents the item; a test keeps the two equal.
    """

    kind = serializers.ChoiceField(choices=Event.Kind.choices)
    occurred_at = serializers.DateTimeField(
        help_text=_("When it happened, ISO 8601; without an offset, Europe/Warsaw.")
    )
    customer = StrictCharField(
        max_length=100,
        required=False,
        allow_null=True,
        help_text=_(
            "The store's customer id. Give it, the anonymous id, or both: both "
            "together identify the visitor, whose anonymous events join the customer."
        ),
    )
    anonymous_id = StrictCharField(
        max_length=64,
        required=False,
        allow_null=True,
        help_text=_("The visitor's anonymous id (a first-party cookie)."),
    )
    external_id = StrictCharField(
        max_length=100,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text=_("The event's id: a retried batch skips events already stored."),
    )
    url = StrictCharField(
        max_length=2000, required=False, allow_null=True, allow_blank=True
    )
    referrer = StrictCharField(
        max_length=2000, required=False, allow_null=True, allow_blank=True
    )
    keyword = StrictCharField(
        max_length=200,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text=_("What was searched for (search events)."),
    )
    product_sku = StrictCharField(
        max_length=64, required=False, allow_null=True, allow_blank=True
    )
    utm_source = StrictCharField(
        max_length=100, required=False, allow_null=True, allow_blank=True
    )
    utm_medium = StrictCharField(
        max_length=100, required=False, allow_null=True, allow_blank=True
    )
    utm_campaign = StrictCharField(
        max_length=200, required=False, allow_null=True, allow_blank=True
    )
    device = StrictCharField(
        max_length=32, required=False, allow_null=True, allow_blank=True
    )
    os = StrictCharField(
        max_length=64, required=False, allow_null=True, allow_blank=True
    )
    browser = StrictCharField(
        max_length=64, required=False, allow_null=True, allow_blank=True
    )
    ip = serializers.IPAddressField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text=_(
            "The visitor's address; only its /24 (IPv4) or /48 (IPv6) network is "
            "stored."
        ),
    )


@extend_schema_field(EventInputSerializer)
class EventItemField(serializers.Field):
    """An event object, passed on as is: event_ingest validates its fields."""

    default_error_messages = {"invalid": _("Send each event as an object.")}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


class EventBatchInputSerializer(StrictSerializer):
    """A batch of events; more than EVENT_BATCH_LIMIT is refused before this runs."""

    events = serializers.ListField(child=EventItemField(), max_length=EVENT_BATCH_LIMIT)


class EventBatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text=_("Events stored."))
    duplicates = serializers.IntegerField(
        help_text=_("Events skipped: their external id was already stored.")
    )


# --- Support log (interactions) ------------------------------------------------------

# What the shop may post; conversations and notes are the staff's own log.
SHOP_KINDS = (
    Interaction.Kind.REVIEW,
    Interaction.Kind.INQUIRY,
    Interaction.Kind.COMPLAINT,
    Interaction.Kind.RETURN,
    Interaction.Kind.FEEDBACK,
)
SHOP_KIND_CHOICES = [
    (value, label) for value, label in Interaction.Kind.choices if value in SHOP_KINDS
]


@extend_schema_field(
    {
        "type": "string",
        "enum": list(SHOP_KINDS),
        "description": "review, inquiry, complaint, return or feedback.",
    },
    component_name="InteractionKind",
)
class InteractionKindField(serializers.ChoiceField):
    """The kinds the shop posts and reads; one named schema component."""

    def __init__(self, **kwargs):
        super().__init__(choices=SHOP_KIND_CHOICES, **kwargs)


@extend_schema_field(
    {"type": "string", "enum": list(Interaction.Channel.values)},
    component_name="InteractionChannel",
)
class InteractionChannelField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=Interaction.Channel.choices, **kwargs)


class BlankAsNullMixin:
    """An empty stored value ("") is answered as null: nothing, not an empty text."""

    def to_representation(self, value):
        if value in ("", None):
            return None
        return super().to_representation(value)


@extend_schema_field(
    {
        "type": "string",
        "enum": list(Interaction.Status.values),
        "description": (
            "Complaints and returns only: open, waiting (for the customer), "
            "resolved or rejected; null for the other kinds."
        ),
    },
    component_name="InteractionStatus",
)
class InteractionStatusField(BlankAsNullMixin, serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=Interaction.Status.choices, **kwargs)


@extend_schema_field(
    {"type": "string", "enum": list(Interaction.RatingScale.values)},
    component_name="RatingScale",
)
class RatingScaleField(BlankAsNullMixin, serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=Interaction.RatingScale.choices, **kwargs)


class OptionalTextField(BlankAsNullMixin, serializers.CharField):
    """Read-only text that may be empty; answered as null then."""


class InteractionInputSerializer(StrictSerializer):
    """A review, an inquiry or a complaint as the shop posts it.

    The rules (rating scales, the order being the customer's, no future times, the
    answer date) are interaction_upsert's; this checks types and lengths.
    """

    external_id = StrictCharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text=_(
            "The shop's id of what is posted (the review's id). Posting it again "
            "updates it instead of adding another, so a retry is safe."
        ),
    )
    kind = InteractionKindField()
    channel = InteractionChannelField(
        default=Interaction.Channel.WEBSITE,
        help_text=_("Where the customer wrote; the shop's website if left out."),
    )
    customer = CustomerInputSerializer(
        help_text=_(
            "Who wrote: found by the store's customer id, else by email, and created "
            "or updated like PUT /customers/."
        )
    )
    order = StrictCharField(
        max_length=100,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text=_("The store's id of the order it is about, if any."),
    )
    subject = StrictCharField(max_length=200, required=False, allow_blank=True)
    body = StrictCharField(
        max_length=BODY_LIMIT,
        required=False,
        allow_blank=True,
        help_text=_("What the customer wrote. Give a subject, a body or both."),
    )
    occurred_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text=_(
            "When the customer sent it, ISO 8601; without an offset, Europe/Warsaw. "
            "Now if left out. A complaint or return must be answered within 14 days "
            "of it."
        ),
    )
    rating = serializers.IntegerField(
        min_value=0,
        max_value=10,
        required=False,
        allow_null=True,
        help_text=_("Reviews and feedback only: 1–5 stars or an NPS score 0–10."),
    )
    rating_scale = RatingScaleField(
        required=False,
        allow_null=True,
        help_text=_("stars or nps; required with a rating."),
    )


class InteractionSerializer(ReadSerializer):
    """An interaction as the calling store sees it (its own customer and order ids)."""

    external_id = OptionalTextField(
        read_only=True,
        allow_null=True,
        help_text=_("The shop's id, if it posted it."),
    )
    kind = InteractionKindField(read_only=True)
    channel = InteractionChannelField(read_only=True)
    customer_external_id = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text=_("The store's id of the customer, if it has one."),
    )
    order = serializers.CharField(
        source="order_external_id",
        read_only=True,
        allow_null=True,
        help_text=_("The store's id of the order it is about, if any."),
    )
    status = InteractionStatusField(read_only=True, allow_null=True)
    due_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text=_(
            "Complaints and returns: the date by which the shop answers, 14 days "
            "after it was received. Null for the other kinds."
        ),
    )
    resolved_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text=_("When it was resolved or rejected; null while pending."),
    )
    rating_scale = RatingScaleField(read_only=True, allow_null=True)

    class Meta:
        model = Interaction
        fields = (
            "id",
            "external_id",
            "kind",
            "channel",
            "customer",
            "customer_external_id",
            "order",
            "subject",
            "body",
            "occurred_at",
            "status",
            "due_at",
            "resolved_at",
            "rating",
            "rating_scale",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields
