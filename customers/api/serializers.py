from __future__ import annotations

from rest_framework import serializers

from config.api import StrictSerializer
from customers.models import Customer


class CustomerInputSerializer(StrictSerializer):
    """What the shop may send about a customer; customer_upsert normalises it."""

    external_id = serializers.CharField(max_length=100, required=False)
    email = serializers.CharField(max_length=254, required=False, allow_null=True)
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    birth_date = serializers.DateField(required=False, allow_null=True)
    gender = serializers.ChoiceField(
        choices=Customer.Gender.choices, required=False, allow_blank=True
    )
    language = serializers.CharField(max_length=8, required=False)
    company = serializers.CharField(max_length=200, required=False, allow_blank=True)
    nip = serializers.CharField(max_length=20, required=False, allow_blank=True)
    preferred_channels = serializers.ListField(
        child=serializers.ChoiceField(choices=Customer.Channel.choices),
        required=False,
        max_length=4,
    )
    acquisition_source = serializers.CharField(
        max_length=100, required=False, allow_blank=True
    )
    acquisition_medium = serializers.CharField(
        max_length=100, required=False, allow_blank=True
    )
    acquisition_campaign = serializers.CharField(
        max_length=200, required=False, allow_blank=True
    )
    acquisition_keyword = serializers.CharField(
        max_length=200, required=False, allow_blank=True
    )
    last_device = serializers.CharField(max_length=32, required=False, allow_blank=True)
    last_os = serializers.CharField(max_length=64, required=False, allow_blank=True)
    last_browser = serializers.CharField(
        max_length=64, required=False, allow_blank=True
    )
    last_seen_at = serializers.DateTimeField(required=False, allow_null=True)
    attributes = serializers.DictField(required=False)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=50
    )


class CustomerSerializer(serializers.ModelSerializer):
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
