"""What the shop sends about consents and sign-ups, and what it reads back."""

from __future__ import annotations

import json

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api import ReadSerializer, StrictCharField, StrictSerializer
from consents.models import ConsentEvent, ConsentPurpose

Source = ConsentEvent.Source

# What the shop itself may say a consent came from; the other sources belong to
# Kartoteka's own pages, imports and staff.
SHOP_SOURCES = [
    (value, label)
    for value, label in Source.choices
    if value
    in {Source.CHECKOUT_FORM, Source.NEWSLETTER_FORM, Source.ACCOUNT_FORM, Source.API}
]
EVIDENCE_LIMIT = 8_000  # characters of JSON


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": True,
        "description": (
            "Whatever else proves the consent (form id, checkbox label, page URL, "
            "order number): a JSON object of up to 8,000 characters."
        ),
        "example": {"form": "checkout", "checkbox": "newsletter", "order": "1001"},
    }
)
class EvidenceField(serializers.Field):
    """A JSON object, kept as sent; PostgreSQL's JSONB refuses NUL characters."""

    default_error_messages = {
        "invalid": _("Send the evidence as a JSON object."),
        "too_long": _("At most {limit} characters of JSON."),
        "null_characters": _("Null characters are not allowed."),
    }

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("invalid")
        body = json.dumps(data, ensure_ascii=False)
        if len(body) > EVIDENCE_LIMIT:
            self.fail("too_long", limit=EVIDENCE_LIMIT)
        if "\x00" in body or "\\u0000" in body:
            self.fail("null_characters")
        return data

    def to_representation(self, value):
        return value


class ConsentInputSerializer(StrictSerializer):
    """One grant or withdrawal as the shop saw it; consent_record checks the rest."""

    purpose = serializers.ChoiceField(choices=ConsentPurpose.Code.choices)
    action = serializers.ChoiceField(choices=ConsentEvent.Action.choices)
    text_version = serializers.IntegerField(
        min_value=1,
        max_value=2_147_483_647,
        required=False,
        allow_null=True,
        help_text=_(
            "The version of the purpose's text the person agreed to. Required for "
            "a grant: a bare yes is not a consent."
        ),
    )
    language = serializers.ChoiceField(
        choices=settings.LANGUAGES,
        required=False,
        help_text=_("The language of that text; Polish if not given."),
    )
    occurred_at = serializers.DateTimeField(
        help_text=_(
            "When the person ticked or unticked the box, ISO 8601; without an "
            "offset, Europe/Warsaw. Sending the same consent with the same time "
            "again records nothing new."
        )
    )
    source = serializers.ChoiceField(
        choices=SHOP_SOURCES, help_text=_("Where in the shop the person said it.")
    )
    ip = serializers.IPAddressField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text=_("The person's IP address when they said it."),
    )
    user_agent = StrictCharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text=_("The person's browser (User-Agent)."),
    )
    evidence = EvidenceField(required=False)


class ConsentEventSerializer(ReadSerializer):
    """One event of the ledger, without the evidence and who sent it."""

    purpose = serializers.SlugRelatedField(slug_field="code", read_only=True)
    text_version = serializers.IntegerField(
        source="text.version", read_only=True, allow_null=True
    )
    language = serializers.CharField(
        source="text.language", read_only=True, allow_null=True
    )
    store = serializers.SlugRelatedField(
        slug_field="code",
        read_only=True,
        allow_null=True,
        help_text=_("The store that recorded it, if any."),
    )

    class Meta:
        model = ConsentEvent
        fields = (
            "id",
            "purpose",
            "action",
            "text_version",
            "language",
            "occurred_at",
            "recorded_at",
            "source",
            "store",
        )
        read_only_fields = fields


class ConsentStateSerializer(serializers.Serializer):
    """A purpose and whether the customer has it granted now."""

    purpose = serializers.CharField()
    granted = serializers.BooleanField()
    changed_at = serializers.DateTimeField(
        allow_null=True, help_text=_("When the newest event happened; null if none.")
    )
    text_version = serializers.IntegerField(
        allow_null=True, help_text=_("The text version of the newest event.")
    )
    language = serializers.CharField(allow_null=True)


class CustomerConsentsSerializer(serializers.Serializer):
    """A customer's consents now, and the ledger they follow from (newest first)."""

    external_id = serializers.CharField()
    consents = ConsentStateSerializer(many=True)
    history = ConsentEventSerializer(many=True)


class NewsletterInputSerializer(StrictSerializer):
    """A newsletter form's sign-up; the consent waits for the emailed confirmation."""

    email = StrictCharField(max_length=254)
    first_name = StrictCharField(max_length=150, required=False, allow_blank=True)
    language = serializers.ChoiceField(
        choices=settings.LANGUAGES,
        required=False,
        help_text=_(
            "The language of the email and the text; the customer's if not given."
        ),
    )
    external_id = StrictCharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text=_("The store's customer id, if the person has an account."),
    )
    purpose = serializers.ChoiceField(
        choices=ConsentPurpose.Code.choices,
        default=ConsentPurpose.Code.EMAIL_MARKETING,
    )
    ip = serializers.IPAddressField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text=_("The IP address of the person submitting the form."),
    )
    user_agent = StrictCharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text=_("The person's browser (User-Agent)."),
    )
    evidence = EvidenceField(required=False)


class NewsletterResultSerializer(serializers.Serializer):
    STATUS_CHOICES = [
        ("pending", _("Waiting for the person to confirm by email")),
        ("already_confirmed", _("The consent is already granted; nothing was sent")),
    ]

    id = serializers.IntegerField(
        allow_null=True, help_text=_("The sign-up's id; null if nothing was started.")
    )
    status = serializers.ChoiceField(choices=STATUS_CHOICES)
    purpose = serializers.CharField()
    requested_at = serializers.DateTimeField(allow_null=True)
