"""Services of the support log: log an interaction, follow a complaint up, attach files.

Every write goes through one function here, whoever calls it (the quick-log form,
the customer page, the complaints queue, the admin, the shop's API):

* :func:`interaction_log` -- staff log what happened (a call, a complaint).
* :func:`interaction_upsert` -- the shop posts a review, an inquiry or a complaint;
  posting the same ``external_id`` again updates it instead of adding another.
* :func:`interaction_set_status` -- a complaint or return moves along
  :data:`ALLOWED_TRANSITIONS`; the only writer of ``status``.
* :func:`interaction_assign` -- who in the team answers it.
* :func:`interaction_attach` -- a file, size- and type-checked by its content.

Complaints and returns are due :data:`ANSWER_DAYS` days after they were received:
under Polish consumer law (Civil Code art. 561^5) a consumer's complaint not answered
within 14 days is deemed accepted, and a withdrawal must be refunded within 14 days
(Consumer Rights Act art. 32). Status and assignee changes are kept in
``InteractionChange`` with who made them.
"""

from __future__ import annotations

import codecs
import datetime as dt
import os
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import (
    ApiKey,
    Customer,
    Interaction,
    InteractionAttachment,
    InteractionChange,
    Store,
)
from customers.services import customer_upsert, errors_prefixed

Kind = Interaction.Kind
Status = Interaction.Status

ANSWER_DAYS = 14
# A moment a little ahead of the server's clock is a clock skew, not the future.
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
BODY_LIMIT = 20_000

# The only status changes a complaint or return may go through.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.OPEN: frozenset({Status.WAITING, Status.RESOLVED, Status.REJECTED}),
    Status.WAITING: frozenset({Status.OPEN, Status.RESOLVED, Status.REJECTED}),
    # Reopened when the customer comes back about it.
    Status.RESOLVED: frozenset({Status.OPEN}),
    Status.REJECTED: frozenset({Status.OPEN}),
}
CLOSED = frozenset({Status.RESOLVED, Status.REJECTED})

# What an attachment may be, recognised by its first bytes (the name and the
# browser's content type are the sender's word, not a fact).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
# Markup a browser recognises when it sniffs a text (the WHATWG sniffing patterns,
# plus SVG and XML): such a "text file" is refused. Looked for in its first
# kilobyte, where browsers sniff.
_MARKUP = re.compile(
    r"<(?:!doctype\s+html|!--|\?xml"
    r"|(?:html|head|body|script|iframe|svg|object|embed|style|title|meta|link"
    r"|form|img|div|table|font|h1|a|b|br|p)[\s/>])",
    re.IGNORECASE,
)
_MARKUP_SCAN = 1024


def interaction_log(
    *,
    customer: Customer,
    kind: str,
    channel: str,
    actor: Any,
    direction: str = Interaction.Direction.INBOUND,
    subject: str = "",
    body: str = "",
    order: Any = None,
    occurred_at: dt.datetime | None = None,
    rating: int | None = None,
    rating_scale: str = "",
    assignee: Any = None,
    store: Store | None = None,
) -> Interaction:
    """Log an interaction with ``customer`` by staff member ``actor``."""
    interaction = Interaction(customer=customer, author=actor, store=store)
    _apply(
        interaction,
        kind=kind,
        channel=channel,
        direction=direction,
        subject=subject,
        body=body,
        order=order,
        occurred_at=occurred_at,
        rating=rating,
        rating_scale=rating_scale,
    )
    if assignee is not None:
        _check_assignee(interaction, assignee)
        interaction.assignee = assignee
    with transaction.atomic():
        interaction.save()
    return interaction


def interaction_upsert(
    *,
    store: Store,
    customer: Customer,
    kind: str,
    api_key: ApiKey | None = None,
    external_id: str = "",
    channel: str = Interaction.Channel.WEBSITE,
    subject: str = "",
    body: str = "",
    order: Any = None,
    occurred_at: dt.datetime | None = None,
    rating: int | None = None,
    rating_scale: str = "",
) -> tuple[Interaction, bool]:
    """What the shop posts (a review, an inquiry, a complaint): created or updated.

    Keyed by ``(store, external_id)`` when the shop gives its id: the same post
    sent twice changes nothing, an edited review updates the text and rating. The
    kind and the customer of a stored interaction do not change, nor does a
    complaint's status (staff move it).
    """
    external_id = (external_id or "").strip()
    for attempt in range(2):
        try:
            return _interaction_upsert(
                store=store,
                customer=customer,
                kind=kind,
                api_key=api_key,
                external_id=external_id,
                channel=channel,
                subject=subject,
                body=body,
                order=order,
                occurred_at=occurred_at,
                rating=rating,
                rating_scale=rating_scale,
            )
        except IntegrityError:
            # A concurrent post of the same id inserted it first (the unique
            # index made this insert wait, then fail): update that one instead.
            if attempt or not external_id:
                raise
    raise AssertionError("unreachable")


def interaction_post(
    *,
    store: Store,
    api_key: ApiKey | None,
    customer: Mapping[str, Any],
    order_external_id: str = "",
    **fields: Any,
) -> tuple[Interaction, bool]:
    """What the shop posts through the API, with the customer as it describes them.

    One transaction: the customer is created or updated as orders and carts do
    (``customer_upsert``, errors under ``customer.<field>``), the order is the
    store's by its id, then :func:`interaction_upsert`. A refused interaction
    leaves no new customer behind.
    """
    with transaction.atomic():
        order = _store_order(store, order_external_id)
        try:
            person, _created = customer_upsert(store=store, actor=api_key, **customer)
        except ValidationError as error:
            raise errors_prefixed(error, "customer") from None
        return interaction_upsert(
            store=store, customer=person, api_key=api_key, order=order, **fields
        )


def _store_order(store: Store, external_id: str) -> Any:
    external_id = (external_id or "").strip()
    if not external_id:
        return None
    # Orders sit right of customers: the model through the relation, not imported.
    order_model = Interaction._meta.get_field("order").related_model
    order = order_model.objects.filter(store=store, external_id=external_id).first()
    if order is None:
        raise ValidationError(
            {
                "order": ValidationError(
                    _("The store has no order with this id."), code="not_found"
                )
            }
        )
    return order


def _interaction_upsert(
    *,
    store: Store,
    customer: Customer,
    kind: str,
    api_key: ApiKey | None,
    external_id: str,
    channel: str,
    subject: str,
    body: str,
    order: Any,
    occurred_at: dt.datetime | None,
    rating: int | None,
    rating_scale: str,
) -> tuple[Interaction, bool]:
    with transaction.atomic():
        existing = (
            Interaction.objects.select_for_update()
            .filter(store=store, external_id=external_id)
            .first()
            if external_id
            else None
        )
        if existing is not None:
            if existing.customer_id != customer.pk or existing.kind != kind:
                raise ValidationError(
                    {
                        "external_id": ValidationError(
                            _(
                                "This id is already used by another interaction"
                                " (another customer or kind)."
                            ),
                            code="external_id_taken",
                        )
                    }
                )
            interaction, before = existing, _comparable(existing)
        else:
            interaction, before = (
                Interaction(
                    customer=customer,
                    store=store,
                    api_key=api_key,
                    external_id=external_id,
                ),
                None,
            )
        _apply(
            interaction,
            kind=kind,
            channel=channel,
            direction=Interaction.Direction.INBOUND,
            subject=subject,
            body=body,
            order=order,
            occurred_at=occurred_at or interaction.occurred_at,
            rating=rating,
            rating_scale=rating_scale,
            keep_due=before is not None,  # received once: due once
        )
        if before is None or _comparable(interaction) != before:
            interaction.save()
    return interaction, before is None


def _comparable(interaction: Interaction) -> tuple:
    return (
        interaction.channel,
        interaction.subject,
        interaction.body,
        interaction.order_id,
        interaction.occurred_at,
        interaction.rating,
        interaction.rating_scale,
    )


def _apply(  # noqa: C901 - one check per field, all errors reported together
    interaction: Interaction,
    *,
    kind: str,
    channel: str,
    direction: str,
    subject: str,
    body: str,
    order: Any,
    occurred_at: dt.datetime | None,
    rating: int | None,
    rating_scale: str,
    keep_due: bool = False,
) -> None:
    """Check the values and set them on ``interaction``; every error at once."""
    errors: dict[str, ValidationError] = {}

    def fail(name: str, message: str, code: str) -> None:
        errors.setdefault(name, ValidationError(message, code=code))

    if kind not in Kind.values:
        fail("kind", _("Unknown kind: %(kind)s.") % {"kind": kind}, "invalid_choice")
    if channel not in Interaction.Channel.values:
        fail(
            "channel",
            _("Unknown channel: %(channel)s.") % {"channel": channel},
            "invalid_choice",
        )
    if direction not in Interaction.Direction.values:
        fail("direction", _("Unknown direction."), "invalid_choice")
    subject = (subject or "").strip()
    body = (body or "").strip()
    if len(subject) > Interaction._meta.get_field("subject").max_length:
        fail("subject", _("At most 200 characters."), "max_length")
    if len(body) > BODY_LIMIT:
        fail(
            "body",
            _("At most %(limit)d characters.") % {"limit": BODY_LIMIT},
            "max_length",
        )
    if not subject and not body:
        fail("body", _("Say what it was about."), "required")
    now = timezone.now()
    occurred_at = occurred_at or now
    if timezone.is_naive(occurred_at):
        occurred_at = timezone.make_aware(occurred_at)
    if occurred_at > now + FUTURE_TOLERANCE:
        fail("occurred_at", _("This is in the future."), "future")
    if order is not None and order.customer_id != interaction.customer_id:
        fail("order", _("This order is another customer's."), "wrong_customer")
    if rating is not None or rating_scale:
        if kind not in Interaction.KINDS_WITH_RATING:
            fail("rating", _("Only reviews and surveys have a rating."), "no_rating")
        elif rating_scale == Interaction.RatingScale.STARS:
            if rating is None or not 1 <= rating <= 5:
                fail("rating", _("Give 1 to 5 stars."), "out_of_range")
        elif rating_scale == Interaction.RatingScale.NPS:
            if rating is None or not 0 <= rating <= 10:
                fail("rating", _("Give a score from 0 to 10."), "out_of_range")
        else:
            fail("rating_scale", _("Choose stars or NPS."), "invalid_choice")
    if errors:
        raise ValidationError(errors)

    interaction.kind = kind
    interaction.channel = channel
    interaction.direction = direction
    interaction.subject = subject
    interaction.body = body
    interaction.order = order
    interaction.occurred_at = occurred_at
    interaction.rating = rating
    interaction.rating_scale = rating_scale if rating is not None else ""
    if interaction.has_status:
        if not interaction.status:
            interaction.status = Status.OPEN
        if not (keep_due and interaction.due_at):
            interaction.due_at = answer_due(occurred_at)


def answer_due(received_at: dt.datetime) -> dt.datetime:
    """When a complaint or return received at ``received_at`` must be answered.

    A term counted in days ends when its last day ends (Civil Code art. 111), in
    the shop's time zone: a complaint received on 3 March at 10:00 is due by the
    end of 17 March.
    """
    zone = timezone.get_default_timezone()
    last_day = timezone.localtime(received_at, zone).date() + dt.timedelta(
        days=ANSWER_DAYS
    )
    return dt.datetime.combine(last_day, dt.time(23, 59, 59), tzinfo=zone)


def interaction_set_status(
    *, interaction: Interaction, status: str, actor: Any, note: str = ""
) -> bool:
    """Move a complaint or return to ``status`` (see ALLOWED_TRANSITIONS).

    Returns whether it changed (the same status again is not a change). Raises
    ValidationError (``invalid_transition``) for a move the table does not allow.
    """
    with transaction.atomic():
        locked = Interaction.objects.select_for_update().get(pk=interaction.pk)
        if locked.status == status:
            return False
        if status not in ALLOWED_TRANSITIONS.get(locked.status, frozenset()):
            raise ValidationError(
                {
                    "status": ValidationError(
                        _("It cannot go from “%(old)s” to “%(new)s”.")
                        % {
                            "old": locked.get_status_display() or "—",
                            "new": Status(status).label
                            if status in Status.values
                            else status,
                        },
                        code="invalid_transition",
                    )
                }
            )
        old = locked.status
        locked.status = status
        locked.resolved_at = timezone.now() if status in CLOSED else None
        locked.save(update_fields=["status", "resolved_at", "updated_at"])
        InteractionChange.objects.create(
            interaction=locked,
            field=InteractionChange.Field.STATUS,
            old_value=old,
            new_value=status,
            note=(note or "").strip(),
            actor=actor,
        )
    interaction.status = locked.status
    interaction.resolved_at = locked.resolved_at
    interaction.updated_at = locked.updated_at
    return True


def can_be_assigned(user: Any) -> bool:
    """Whether ``user`` may be given complaints: active staff who can see them."""
    return bool(
        user.is_active and user.is_staff and user.has_perm("customers.view_interaction")
    )


def assignable_staff() -> QuerySet:
    """The users :func:`can_be_assigned` allows, by username: the assignee choices."""
    permission = Permission.objects.filter(
        content_type__app_label="customers", codename="view_interaction"
    )
    return (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True)
        .filter(
            Q(is_superuser=True)
            | Q(user_permissions__in=permission)
            | Q(groups__permissions__in=permission)
        )
        .distinct()
        .order_by("username")
    )


def _check_assignee(interaction: Interaction, assignee: Any) -> None:
    """Only complaints and returns are assigned, and only to can_be_assigned staff."""
    if not interaction.has_status:
        message, code = _("Only complaints and returns are assigned."), "not_assignable"
    elif assignee is not None and not can_be_assigned(assignee):
        message = _("%(user)s cannot work on complaints: not active staff.") % {
            "user": assignee.get_username()
        }
        code = "not_staff"
    else:
        return
    raise ValidationError({"assignee": ValidationError(message, code=code)})


def interaction_assign(*, interaction: Interaction, assignee: Any, actor: Any) -> bool:
    """Give a complaint or return to ``assignee`` (None: nobody); whether it changed."""
    _check_assignee(interaction, assignee)
    with transaction.atomic():
        locked = Interaction.objects.select_for_update().get(pk=interaction.pk)
        old = locked.assignee
        if (old.pk if old else None) == (assignee.pk if assignee else None):
            return False
        locked.assignee = assignee
        locked.save(update_fields=["assignee", "updated_at"])
        InteractionChange.objects.create(
            interaction=locked,
            field=InteractionChange.Field.ASSIGNEE,
            old_value=old.get_username() if old else "",
            new_value=assignee.get_username() if assignee else "",
            actor=actor,
        )
    interaction.assignee = locked.assignee
    return True


def interaction_attach(
    *, interaction: Interaction, upload: File, actor: Any
) -> InteractionAttachment:
    """Keep ``upload`` with the interaction, if its size and real type are allowed."""
    limit = settings.INTERACTION_ATTACHMENT_MAX_BYTES
    size = upload.size or 0
    if size > limit:
        raise ValidationError(
            {
                "file": ValidationError(
                    _("The file is too large: at most %(mb)s MB.")
                    % {"mb": f"{limit / 1_000_000:g}"},
                    code="too_large",
                )
            }
        )
    if size == 0:
        raise ValidationError(
            {"file": ValidationError(_("The file is empty."), code="empty")}
        )
    content_type = attachment_type(upload)
    if content_type is None:
        raise ValidationError(
            {
                "file": ValidationError(
                    _("Attach a PDF, a photo (JPEG, PNG, GIF, WebP) or a text file."),
                    code="type_not_allowed",
                )
            }
        )
    name = os.path.basename((upload.name or "").replace("\\", "/"))[:200] or "file"
    with transaction.atomic():
        attachment = InteractionAttachment(
            interaction=interaction,
            name=name,
            content_type=content_type,
            size=size,
            uploaded_by=actor,
        )
        attachment.file.save(name, upload, save=False)
        try:
            attachment.save()
        except Exception:
            attachment.file.delete(save=False)
            raise
    return attachment


def attachment_type(upload: File) -> str | None:
    """The attachment's type judged by its content; None when it is not allowed."""
    upload.seek(0)
    head = upload.read(512)
    upload.seek(0)
    for signature, content_type in _SIGNATURES:
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if b"\x00" in head:
        return None
    # Valid UTF-8 throughout, read a chunk at a time (not the whole file at once).
    decoder = codecs.getincrementaldecoder("utf-8")()
    text = ""
    try:
        for chunk in upload.chunks():
            decoded = decoder.decode(chunk)
            if len(text) < _MARKUP_SCAN * 2:
                text += decoded[: _MARKUP_SCAN * 2]
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    finally:
        upload.seek(0)
    if _MARKUP.search(text.lstrip("\ufeff \t\r\n\f")[:_MARKUP_SCAN]):
        # HTML or SVG in a text file's clothes: a browser that sniffs it would
        # render it, scripts and all.
        return None
    return "text/plain"
