from customers.models.api import ApiKey, IdempotencyRecord
from customers.models.customer import (
    Address,
    AttributeDefinition,
    Customer,
    CustomerIdentity,
    CustomerQuerySet,
    Store,
    Tag,
    currency_validator,
    identity_external_id,
)
from customers.models.events import Event, Visitor
from customers.models.imports import ImportJob
from customers.models.interactions import (
    Interaction,
    InteractionAttachment,
    InteractionChange,
    InteractionQuerySet,
)
from customers.models.merges import CustomerMerge, DuplicateCandidate
from customers.models.quality import QualityFinding, QualityScan
from customers.models.webhooks import WebhookDelivery, WebhookEndpoint

__all__ = [
    "Address",
    "ApiKey",
    "AttributeDefinition",
    "Customer",
    "CustomerIdentity",
    "CustomerMerge",
    "CustomerQuerySet",
    "DuplicateCandidate",
    "Event",
    "IdempotencyRecord",
    "ImportJob",
    "Interaction",
    "InteractionAttachment",
    "InteractionChange",
    "InteractionQuerySet",
    "QualityFinding",
    "QualityScan",
    "Store",
    "Tag",
    "Visitor",
    "WebhookDelivery",
    "WebhookEndpoint",
    "currency_validator",
    "identity_external_id",
]
