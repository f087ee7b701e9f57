"""Signals the customers app defines for apps to its right to act on.

Customers sits leftmost in the layering and never imports consents, yet every read
of personal data must reach the consents app's access log (RODO, Art. 5(2) and 30).
The pages and API views send ``personal_data_accessed``; the consents app connects
the receiver that writes the log (``consents.apps.ConsentsConfig.ready``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.dispatch import Signal

from config.clients import client_ip
from customers.models import ApiKey

# Staff or an API key saw or took customers' personal data. Keyword arguments:
# customer_ids (iterable of ints), action ("view", "export", "api_read"),
# user (the staff member or None), api_key (ApiKey or None),
# ip_address (str or None), purpose (str, may be empty).
personal_data_accessed = Signal()


def personal_data_accessed_send(
    *,
    sender: Any,
    request: Any,
    customer_ids: Iterable[int],
    action: str,
    purpose: str = "",
) -> None:
    """Send ``personal_data_accessed`` with who (user or API key) and where from.

    ``request`` is a Django or DRF request: an authenticated user is the actor on
    staff pages, the request's ApiKey on the API.
    """
    user = getattr(request, "user", None)
    auth = getattr(request, "auth", None)
    personal_data_accessed.send(
        sender=sender,
        customer_ids=list(customer_ids),
        action=action,
        user=user if getattr(user, "is_authenticated", False) else None,
        api_key=auth if isinstance(auth, ApiKey) else None,
        ip_address=client_ip(request),
        purpose=purpose,
    )


# Customers' orders or processing rights changed: what is computed from them
# (metrics, RFM scores, segment membership) is due again. Keyword arguments:
# customer_ids (a set of ints). Sent inside the writer's transaction, so what a
# receiver writes commits or rolls back with the change. The orders services and
# imports send it for orders, the consents app for erasure, restriction and
# objections; the segments app queues the customers for recomputing.
customer_activity_changed = Signal()


def customer_activity_changed_send(*, sender: Any, customer_ids: Iterable[int]) -> None:
    ids = {int(pk) for pk in customer_ids if pk is not None}
    if ids:
        customer_activity_changed.send(sender=sender, customer_ids=ids)
