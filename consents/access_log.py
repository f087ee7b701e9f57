"""The access log: who saw or took whose personal data, when and from where.

Rows are only ever inserted; the database refuses UPDATE and DELETE (a trigger on
AccessLog). Reads of customers in the customers app reach here through the
``customers.signals.personal_data_accessed`` signal, connected in
``consents.apps.ConsentsConfig.ready``: customers sits left of consents and does
not import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from config.clients import valid_ip
from consents.models import AccessLog
from customers.models import ApiKey, Customer

PURPOSE_MAX_LENGTH = AccessLog._meta.get_field("purpose").max_length


def access_log_record(
    *,
    customers: Iterable[int | Customer] | Customer,
    action: str,
    user: Any = None,
    api_key: ApiKey | None = None,
    ip_address: str | None = None,
    purpose: str = "",
) -> int:
    """Log one access per customer in a single INSERT; return how many rows.

    ``customers`` is a customer or an iterable of customers or their ids (repeats
    are logged once). ``user`` that is not authenticated counts as no user.
    """
    if action not in AccessLog.Action.values:
        raise ValidationError(
            {
                "action": ValidationError(
                    _("Choose one of: %(choices)s."),
                    code="invalid_choice",
                    params={"choices": ", ".join(AccessLog.Action.values)},
                )
            }
        )
    items = [customers] if isinstance(customers, Customer) else customers
    customer_ids = list(
        dict.fromkeys(
            item.pk if isinstance(item, Customer) else int(item) for item in items
        )
    )
    if not customer_ids:
        return 0
    at = timezone.now()
    user = user if getattr(user, "is_authenticated", False) else None
    # An odd REMOTE_ADDR must not break the page.
    ip_address = valid_ip(ip_address)
    purpose = (purpose or "")[:PURPOSE_MAX_LENGTH]
    # One multi-row INSERT is atomic by itself: no transaction (or savepoint) needed.
    AccessLog.objects.bulk_create(
        [
            AccessLog(
                customer_id=customer_id,
                action=action,
                at=at,
                user=user,
                api_key=api_key,
                ip_address=ip_address,
                purpose=purpose,
            )
            for customer_id in customer_ids
        ],
        batch_size=1000,
    )
    return len(customer_ids)


def personal_data_accessed_receiver(
    sender: Any,
    *,
    customer_ids: Iterable[int],
    action: str,
    user: Any = None,
    api_key: ApiKey | None = None,
    ip_address: str | None = None,
    purpose: str = "",
    **kwargs: Any,
) -> int:
    """Receiver of ``customers.signals.personal_data_accessed``: log the access."""
    return access_log_record(
        customers=customer_ids,
        action=action,
        user=user,
        api_key=api_key,
        ip_address=ip_address,
        purpose=purpose,
    )
