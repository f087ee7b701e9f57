"""Data-subject requests (Art. 15-21): receiving, extending and closing them.

A request is answered within one month of receipt (Art. 12(3)); the deadline may
be extended by at most two further months, with the reason recorded. Status moves
only along ``ALLOWED_TRANSITIONS``, through ``dsr_set_status``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dateutil.relativedelta import relativedelta
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from consents.models import DataSubjectRequest, one_month_after
from customers.models import Customer

Status = DataSubjectRequest.Status
Kind = DataSubjectRequest.Kind

# The only status changes a request may go through; nothing else assigns status.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.RECEIVED: frozenset({Status.VERIFYING, Status.IN_PROGRESS, Status.REJECTED}),
    Status.VERIFYING: frozenset({Status.IN_PROGRESS, Status.REJECTED}),
    Status.IN_PROGRESS: frozenset({Status.COMPLETED, Status.REJECTED}),
    Status.COMPLETED: frozenset(),
    Status.REJECTED: frozenset(),
}
CLOSED = frozenset({Status.COMPLETED, Status.REJECTED})
# Art. 12(3): "extended by two further months where necessary".
MAX_EXTENSION_MONTHS = 2


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None


def dsr_max_extension(request: DataSubjectRequest) -> dt.date:
    """The latest deadline a request may get: two further months (Art. 12(3)).

    Counted from receipt, like the first month: received 31 January, due
    28 February, extended to 30 April at the latest.
    """
    received = timezone.localtime(request.received_at).date()
    return max(
        received + relativedelta(months=1 + MAX_EXTENSION_MONTHS),
        request.due_on + relativedelta(months=MAX_EXTENSION_MONTHS),
    )


def dsr_create(
    *,
    kind: str,
    customer: Customer | None = None,
    received_at: dt.datetime | None = None,
    channel: str = "",
    requester: str = "",
    notes: str = "",
    actor: Any,
) -> DataSubjectRequest:
    """Register a request; it is due one month after it was received."""
    errors: dict[str, ValidationError] = {}
    if kind not in Kind.values:
        errors["kind"] = ValidationError(
            _("Choose one of: %(choices)s."),
            code="invalid_choice",
            params={"choices": ", ".join(Kind.values)},
        )
    now = timezone.now()
    received_at = received_at or now
    if timezone.is_naive(received_at):
        received_at = timezone.make_aware(received_at)
    if received_at > now + dt.timedelta(minutes=5):
        errors["received_at"] = ValidationError(
            _("A request cannot be received in the future."), code="out_of_range"
        )
    if customer is not None and customer.erased_at is not None:
        errors["customer"] = ValidationError(
            _("The customer was erased."), code="erased"
        )
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        return DataSubjectRequest.objects.create(
            kind=kind,
            customer=customer,
            received_at=received_at,
            due_on=one_month_after(received_at),
            channel=(channel or "").strip()[:64],
            requester=(requester or "").strip()[:255],
            notes=(notes or "").strip(),
        )


def dsr_extend(
    *, request: DataSubjectRequest, until: dt.date, reason: str, actor: Any
) -> DataSubjectRequest:
    """Move an open request's deadline, at most two months past its due date."""
    reason = (reason or "").strip()
    errors: dict[str, ValidationError] = {}
    if not reason:
        errors["reason"] = ValidationError(
            _("Say why the request needs more time."), code="required"
        )
    with transaction.atomic():
        locked = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        if locked.status in CLOSED:
            errors["status"] = ValidationError(
                _("The request is closed."), code="closed"
            )
        latest = dsr_max_extension(locked)
        if until is None or until <= locked.due_on:
            errors["until"] = ValidationError(
                _("Choose a date after the due date, %(due)s."),
                code="out_of_range",
                params={"due": locked.due_on.isoformat()},
            )
        elif until > latest:
            errors["until"] = ValidationError(
                _("At most two further months: %(latest)s at the latest."),
                code="too_late",
                params={"latest": latest.isoformat()},
            )
        if errors:
            raise ValidationError(errors)
        locked.extended_until = until
        locked.extension_reason = reason
        if locked.handled_by_id is None and _user(actor):
            locked.handled_by = actor
        locked.save(update_fields=["extended_until", "extension_reason", "handled_by"])
    request.refresh_from_db()
    return request


def dsr_set_status(
    *, request: DataSubjectRequest, status: str, actor: Any, outcome: str = ""
) -> DataSubjectRequest:
    """Move a request to ``status`` if the transitions table allows it."""
    with transaction.atomic():
        locked = DataSubjectRequest.objects.select_for_update().get(pk=request.pk)
        if status not in ALLOWED_TRANSITIONS.get(locked.status, frozenset()):
            raise ValidationError(
                {
                    "status": ValidationError(
                        _("A request cannot go from %(old)s to %(new)s."),
                        code="invalid_transition",
                        params={"old": locked.status, "new": status},
                    )
                }
            )
        outcome = (outcome or "").strip()
        if status == Status.REJECTED and not outcome:
            # Art. 12(4): the person is told why, and can complain.
            raise ValidationError(
                {
                    "outcome": ValidationError(
                        _("Say why the request is rejected."), code="required"
                    )
                }
            )
        fields = ["status"]
        locked.status = status
        if outcome:
            locked.outcome = outcome
            fields.append("outcome")
        if _user(actor):
            locked.handled_by = actor
            fields.append("handled_by")
        if status in CLOSED:
            locked.completed_at = timezone.now()
            fields.append("completed_at")
        locked.save(update_fields=fields)
    request.refresh_from_db()
    return request
