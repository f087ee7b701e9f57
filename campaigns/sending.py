"""Sending: each waiting Delivery claimed, checked, sent and recorded, exactly once.

A sender claims a few waiting rows at a time (SENDER_BATCH) with SELECT ... FOR
UPDATE SKIP LOCKED, marking them "sending" under its own number, and commits the
claim. Then, one message at a time, it sends and commits that recipient's
outcome (sent, failed, not sent and why) before the next. So:

- any number of workers share a campaign without ever taking the same row;
- a worker killed mid-batch leaves its unsent rows "sending" under the number of
  a sender that no longer exists: every sender holds a PostgreSQL session lock
  on its number while it lives, and the next sender to start takes the rows of
  numbers nobody holds back to waiting. Every outcome before the kill is
  committed, so nobody is skipped and nobody repeated. A message is repeated
  only if the kill falls between the mail server accepting it and our commit,
  microseconds later. (Celery runs the tasks with acks_late,
  reject_on_worker_lost and prefetch 1, so the batch in hand is redelivered; the
  watchdog, ``campaigns_watch_task``, restarts a campaign whose worker vanished
  anyway.)

The claim reads the consent, the customer's rights (erasure, restriction,
objection) and the frequency cap afresh, a few messages (tens of milliseconds)
before each send, so a withdrawal between choosing the audience and sending is
honoured. Each outcome is one autocommitted UPDATE: the database work of a
message is one round trip.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate, parseaddr
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.db import connection, transaction
from django.utils import formats, timezone, translation

from campaigns import mime, rendering
from campaigns.models import Campaign, Channel, Delivery, Flow, MessageTemplate
from campaigns.recommendations import profiling_rule
from campaigns.services import campaign_transition, frequency_since
from config import rawsql
from consents.links import preference_url, unsubscribe_url
from consents.models import ConsentPurpose
from customers.models import Customer

logger = logging.getLogger(__name__)

Reason = Delivery.Reason

# Messages claimed at once: the claim's checks are this many sends old at most.
SENDER_BATCH = 20
# Session locks on senders' numbers: (this, number). Any constant of our own.
SENDER_LOCK = 7_301_002

# The claim: the oldest waiting rows of one campaign or flow, through the partial
# index of waiting rows, marked "sending" under the sender's number, with what
# the checks and the merge tags need about their customers. Planned each time (a
# prepared, generic plan walks the primary key past every row sent so far); the
# customers are joined after the rows are locked (joined before, the planner
# hashed every consent of the purpose).
CLAIM_SQL = """
WITH claimed AS (
    UPDATE campaigns_delivery d SET status = 'sending', claimed_by = %(sender)s
    WHERE d.id IN (
        SELECT w.id FROM campaigns_delivery w
        WHERE w.{owner}_id = %(owner)s AND w.status = 'pending'
        ORDER BY w.id
        LIMIT %(batch)s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING d.id, d.customer_id
)
SELECT d.id, d.customer_id, c.email, c.phone, c.first_name, c.last_name,
    c.language, c.erased_at IS NOT NULL, c.restricted_at IS NOT NULL,
    c.marketing_objection_at IS NOT NULL, c.profiling_objection_at IS NOT NULL,
    EXISTS (
        SELECT 1 FROM consents_consentstate s WHERE s.customer_id = c.id
        AND s.purpose_id = %(purpose)s AND s.granted
    ),
    EXISTS (
        SELECT 1 FROM consents_consentstate s WHERE s.customer_id = c.id
        AND s.purpose_id = %(tracking)s AND s.granted
    ),
    EXISTS (
        SELECT 1 FROM consents_consentstate s WHERE s.customer_id = c.id
        AND s.purpose_id = %(profiling)s AND s.granted
    ),
    (
        SELECT count(*) FROM campaigns_delivery r WHERE r.customer_id = c.id
        AND r.status = 'sent' AND r.sent_at >= %(since)s
    ),
    (
        SELECT cat.name FROM segments_customermetrics m
        JOIN orders_category cat ON cat.id = m.favourite_category_id
        WHERE m.customer_id = c.id AND m.store_id IS NULL
    )
FROM claimed d
JOIN customers_customer c ON c.id = d.customer_id
ORDER BY d.id
"""
SENT_SQL = """
UPDATE campaigns_delivery SET status = 'sent', sent_at = %s, message_id = %s,
    attempts = 1, claimed_by = NULL
WHERE id = %s
"""
OUTCOME_SQL = """
UPDATE campaigns_delivery SET status = %s, reason = %s, error = %s,
    attempts = attempts + %s, claimed_by = NULL
WHERE id = %s
"""
RELEASE_SQL = """
UPDATE campaigns_delivery SET status = 'pending', claimed_by = NULL
WHERE claimed_by = %s AND status = 'sending'
"""


@dataclass
class Recipient:
    delivery_id: int
    customer_id: int
    email: str | None
    phone: str
    first_name: str
    last_name: str
    language: str
    erased: bool
    restricted: bool
    objected: bool
    objected_profiling: bool
    consented: bool
    tracking: bool
    profiling: bool
    recent: int
    favourite_category: str | None

    @property
    def pk(self) -> int:
        """The customer's id: links need no more (building a model costs more)."""
        return self.customer_id

    def customer(self) -> Customer:
        """A Customer standing for this recipient (for recommendations)."""
        return Customer(
            pk=self.customer_id,
            email=self.email,
            phone=self.phone,
            first_name=self.first_name,
            last_name=self.last_name,
            language=self.language,
        )


@dataclass
class SendResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    # Why the batch stopped: "done" (nothing waiting), "limit", "time", "status"
    # (paused or cancelled), "quiet_hours" (SMS outside the allowed hours), "error"
    # (the mail server or gateway cannot be reached: the message in hand waits).
    stopped: str = "done"
    resume_at: Any = None  # for quiet hours: when sending may go on
    skip_reasons: dict[str, int] = field(default_factory=dict)


# The recipient's own fault: the message fails, the batch goes on. Anything else
# (the server down, the network) leaves the message waiting and stops the batch.
PERMANENT_ERRORS = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPDataError,
    smtplib.SMTPNotSupportedError,
    UnicodeError,
)


class RecipientRefused(Exception):
    """The gateway refused this one message (a bad number, say)."""


class Sender:
    """Sends one campaign's or flow's waiting deliveries; see the module docstring."""

    def __init__(self, *, campaign: Campaign | None = None, flow: Flow | None = None):
        if (campaign is None) == (flow is None):
            raise TypeError("Sender() needs a campaign or a flow, not both.")
        self.campaign = campaign
        self.flow = flow
        owner = campaign or flow
        self.template: MessageTemplate = owner.template
        self.purpose: ConsentPurpose = owner.purpose
        self.coupon_prefix = owner.coupon_prefix
        self.coupon_days = owner.coupon_validity_days
        self.channel = self.template.channel
        self.sql = CLAIM_SQL.format(owner="campaign" if campaign else "flow")
        self.owner_id = owner.pk
        tracking = ConsentPurpose.objects.filter(
            code=ConsentPurpose.Code.TRACKING, is_active=True
        ).first()
        self.tracking_purpose = tracking.pk if tracking else 0
        profiling, self.profiling_needs_consent = profiling_rule()
        self.profiling_purpose = profiling or 0
        if self.channel == Channel.EMAIL:
            self.prepared = rendering.prepare_email(
                self.template.subject, self.template.html
            )
            self.source = self.template.html
        else:
            self.source = self.template.text
        self.recommender = None
        if "recommendations" in self.source:
            from campaigns.recommendations import Recommender

            self.recommender = Recommender()
        domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost"
        self.domain = domain.strip(">")
        self.from_header = mime.from_header(settings.DEFAULT_FROM_EMAIL)
        self.from_address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
        self.email_connection = None
        self.sms_backend = None
        self.number = secrets.randbelow(2**31 - 1) + 1

    # --- The loop ----------------------------------------------------------------

    def send(self, *, limit: int, seconds: float = 30.0) -> SendResult:
        """Send up to ``limit`` messages within about ``seconds``."""
        result = SendResult()
        if self.channel == Channel.SMS:
            resume_at = sms_resume_at(timezone.now())
            if resume_at is not None:
                result.stopped, result.resume_at = "quiet_hours", resume_at
                return result
        started = last_check = time.monotonic()
        rate = settings.CAMPAIGN_SEND_RATE
        done = 0
        self._lock()
        try:
            self.recover()
            while result.stopped == "done":
                batch = self._claim(min(SENDER_BATCH, limit - done))
                if not batch:
                    break
                for recipient in batch:
                    now = time.monotonic()
                    if done >= limit:
                        result.stopped = "limit"
                    elif now - started >= seconds:
                        result.stopped = "time"
                    elif now - last_check >= 1.0:
                        last_check = now
                        if not self._may_go_on():
                            result.stopped = "status"
                    if result.stopped != "done":
                        break
                    if rate > 0:
                        wait = started + done / rate - now
                        if wait > 0:
                            time.sleep(wait)
                    try:
                        outcome = self._one(recipient)
                    except Exception:
                        logger.warning("Sending stopped", exc_info=True)
                        result.stopped = "error"
                        break
                    done += 1
                    if outcome == "sent":
                        result.sent += 1
                    elif outcome == "failed":
                        result.failed += 1
                    else:
                        result.skipped += 1
                        result.skip_reasons[outcome] = (
                            result.skip_reasons.get(outcome, 0) + 1
                        )
                if result.stopped == "done" and done >= limit:
                    result.stopped = "limit"
        finally:
            self._unlock()  # what this sender claimed and did not send waits again
            self.close()
        self._heartbeat()
        if result.stopped == "done":
            self.finish()
        return result

    def _may_go_on(self) -> bool:
        self._heartbeat()
        if self.campaign is None:
            return Flow.objects.filter(pk=self.owner_id, is_active=True).exists()
        return Campaign.objects.filter(
            pk=self.owner_id, status=Campaign.Status.SENDING
        ).exists()

    def _heartbeat(self) -> None:
        if self.campaign is not None:
            Campaign.objects.filter(pk=self.owner_id).update(
                heartbeat_at=timezone.now()
            )

    def finish(self) -> None:
        """Mark the campaign sent once no row waits, locked by another worker or not."""
        if self.campaign is None:
            return
        waiting = Delivery.objects.filter(
            campaign_id=self.owner_id,
            status__in=(Delivery.Status.PENDING, Delivery.Status.SENDING),
        ).exists()
        if waiting:
            return
        campaign = Campaign.objects.get(pk=self.owner_id)
        if campaign.status == Campaign.Status.SENDING and campaign.prepared_at:
            try:
                campaign_transition(campaign=campaign, status=Campaign.Status.SENT)
            except ValidationError:  # another worker finished it first
                logger.info("Campaign %s already finished", campaign.pk)

    # --- One message -------------------------------------------------------------

    def _lock(self) -> None:
        """Hold this sender's number for as long as its connection lives."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_lock(%s, %s)", [SENDER_LOCK, self.number]
            )

    def _unlock(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(RELEASE_SQL, [self.number])
            cursor.execute(
                "SELECT pg_advisory_unlock(%s, %s)", [SENDER_LOCK, self.number]
            )

    def recover(self) -> int:
        """Put back to waiting the rows of senders that died; how many."""
        owner = "campaign_id" if self.campaign else "flow_id"
        released = 0
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT claimed_by FROM campaigns_delivery"  # noqa: S608
                f" WHERE status = 'sending' AND {owner} = %s AND claimed_by <> %s",
                [self.owner_id, self.number],
            )
            for (number,) in cursor.fetchall():
                # A live sender holds its number: only a dead one's is free.
                cursor.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", [SENDER_LOCK, number]
                )
                if cursor.fetchone()[0]:
                    cursor.execute(RELEASE_SQL, [number])
                    released += cursor.rowcount
                    cursor.execute(
                        "SELECT pg_advisory_unlock(%s, %s)", [SENDER_LOCK, number]
                    )
        if released:
            logger.info("Took back %s messages of a sender that died", released)
        return released

    def _claim(self, size: int) -> list[Recipient]:
        if size <= 0:
            return []
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                self.sql,
                {
                    "owner": self.owner_id,
                    "sender": self.number,
                    "batch": size,
                    "purpose": self.purpose.pk,
                    "tracking": self.tracking_purpose,
                    "profiling": self.profiling_purpose,
                    "since": frequency_since(timezone.now()),
                },
            )
            return [Recipient(*row) for row in cursor.fetchall()]

    def _reason(self, recipient: Recipient) -> str:
        if recipient.erased:
            return Reason.ERASED
        if recipient.restricted:
            return Reason.RESTRICTED
        if recipient.objected and self.purpose.is_marketing:
            return Reason.OBJECTED
        if not recipient.consented or not self.purpose.is_active:
            return Reason.NO_CONSENT
        address = recipient.email if self.channel == Channel.EMAIL else recipient.phone
        if not address:
            return Reason.NO_ADDRESS
        if recipient.recent >= settings.CAMPAIGN_FREQUENCY_CAP:
            return Reason.FREQUENCY_CAP
        return Reason.NONE

    def _one(self, recipient: Recipient) -> str:
        """Check, send and record one claimed message; its outcome.

        Each outcome is committed on its own (autocommit) before the next send.
        A failure that is not the recipient's (the server down) raises: the row
        goes back to waiting with the rest of the batch.
        """
        reason = self._reason(recipient)
        with rawsql.cursor() as cursor:
            if reason:
                cursor.execute(
                    OUTCOME_SQL,
                    [Delivery.Status.SKIPPED, reason, "", 0, recipient.delivery_id],
                )
                return reason
            try:
                message_id = self._deliver(recipient, timezone.now())
            except (*PERMANENT_ERRORS, RecipientRefused) as error:
                logger.info("Delivery %s failed: %s", recipient.delivery_id, error)
                cursor.execute(
                    OUTCOME_SQL,
                    [
                        Delivery.Status.FAILED,
                        "",
                        str(error)[:1000],
                        1,
                        recipient.delivery_id,
                    ],
                )
                return "failed"
            cursor.execute(
                SENT_SQL,
                [timezone.now(), message_id, recipient.delivery_id],
            )
        return "sent"

    def context(self, recipient: Recipient, now: Any) -> Any:
        """The merge tags' values for ``recipient``."""
        profiled = not recipient.objected_profiling and (
            recipient.profiling or not self.profiling_needs_consent
        )
        coupon = None
        if self.coupon_prefix:
            from campaigns.coupons import coupon_issue

            coupon = coupon_issue(
                delivery=Delivery(
                    pk=recipient.delivery_id,
                    customer_id=recipient.customer_id,
                    channel=self.channel,
                ),
                prefix=self.coupon_prefix,
                validity_days=self.coupon_days,
                now=now,
            )
        values = message_values(
            customer=recipient,
            unsubscribe=unsubscribe_url(
                recipient, self.purpose, reference=str(recipient.delivery_id)
            ),
            preferences=preference_url(recipient),
            favourite_category=recipient.favourite_category if profiled else None,
            coupon_code=coupon.code if coupon else "",
            coupon_valid_until=coupon.valid_until if coupon else None,
        )
        recommendations = (
            self.recommender.for_customer(recipient.customer())
            if self.recommender
            else ()
        )
        return rendering.MessageContext(values=values, recommendations=recommendations)

    def _deliver(self, recipient: Recipient, now: Any) -> str:
        """Render and hand the message over; its message id."""
        with translation.override(recipient.language or settings.LANGUAGE_CODE):
            context = self.context(recipient, now)
        if self.channel == Channel.SMS:
            return self._deliver_sms(recipient, context)
        return self._deliver_email(recipient, context)

    def _deliver_email(self, recipient: Recipient, context: Any) -> str:
        from campaigns.tracking import click_url, open_url

        track: Callable[[str], str] | None = None
        pixel = ""
        if recipient.tracking:

            def track(url: str) -> str:
                return click_url(recipient.delivery_id, url)

            pixel = open_url(recipient.delivery_id)
        rendered = self.prepared.render(context, track_link=track, open_pixel_url=pixel)
        message_id = f"<kartoteka.{recipient.delivery_id}@{self.domain}>"
        backend = self._email_connection()
        unsubscribe = context.values["unsubscribe_url"]
        if isinstance(backend, SmtpBackend) and mime.plain_address(recipient.email):
            # The fast path: the bytes built directly, over the open connection.
            backend.connection.sendmail(
                self.from_address,
                [recipient.email],
                mime.mime_bytes(
                    subject=rendered.subject,
                    text=rendered.text,
                    html=rendered.html,
                    sender=self.from_header,
                    to=recipient.email,
                    message_id=message_id,
                    unsubscribe=unsubscribe,
                ),
            )
            return message_id
        email_message(
            rendered=rendered,
            to=recipient.email,
            message_id=message_id,
            unsubscribe=unsubscribe,
            connection=backend,
        ).send()
        return message_id

    def _deliver_sms(self, recipient: Recipient, context: Any) -> str:
        from campaigns.sms import SmsMessage

        text = rendering.render_sms(text=self.template.text, context=context)
        backend = self._sms_backend()
        # The gateway refuses a reference it has seen: a message repeated after a
        # kill at the wrong moment is not sent twice. The prefix keeps installations
        # sharing one gateway account apart.
        reference = f"{settings.SMS_REFERENCE_PREFIX}{recipient.delivery_id}"
        (result,) = backend.send_messages(
            [SmsMessage(to=recipient.phone, text=text, reference=reference)]
        )
        if result.retry:  # the gateway's trouble, not the number's: try again later
            raise ConnectionError(result.error or "SMS gateway unavailable")
        if not result.ok:
            raise RecipientRefused(result.error or "refused by the SMS gateway")
        return result.message_id or reference

    def _email_connection(self) -> Any:
        if self.email_connection is None:
            self.email_connection = get_connection()
            self.email_connection.open()
        return self.email_connection

    def _sms_backend(self) -> Any:
        if self.sms_backend is None:
            from campaigns.sms import get_sms_backend

            self.sms_backend = get_sms_backend()
            self.sms_backend.open()
        return self.sms_backend

    def close(self) -> None:
        for attribute in ("email_connection", "sms_backend"):
            backend = getattr(self, attribute)
            setattr(self, attribute, None)
            if backend is not None:
                try:
                    backend.close()
                except Exception:  # closing a broken connection
                    logger.info("Closing %s failed", attribute, exc_info=True)


def sms_resume_at(now: Any) -> Any:
    """None inside SMS_SEND_HOURS (local time), else the moment they begin again."""
    start, end = settings.SMS_SEND_HOURS
    local = timezone.localtime(now)
    if start <= local.hour < end:
        return None
    day = local.date() if local.hour < start else local.date() + dt.timedelta(days=1)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour=start)))


def message_values(
    *,
    customer: Customer,
    unsubscribe: str,
    preferences: str,
    favourite_category: str | None = None,
    coupon_code: str = "",
    coupon_valid_until: dt.datetime | None = None,
) -> dict[str, str]:
    """The merge tags' plain values (rendering.MERGE_TAGS) for one message.

    Call inside translation.override(the customer's language): dates are
    formatted for them.
    """
    values = {
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "full_name": f"{customer.first_name} {customer.last_name}".strip(),
        "shop_name": settings.SHOP_NAME,
        "unsubscribe_url": unsubscribe,
        "preferences_url": preferences,
        "favourite_category": favourite_category or "",
        "coupon": coupon_code,
    }
    if coupon_valid_until is not None:
        values["coupon_valid_until"] = formats.date_format(
            timezone.localtime(coupon_valid_until).date(), "SHORT_DATE_FORMAT"
        )
    return values


def email_message(
    *,
    rendered: rendering.RenderedEmail,
    to: str,
    message_id: str,
    unsubscribe: str,
    connection: Any = None,
) -> EmailMultiAlternatives:
    """A marketing email: HTML with the text alternative, one-click unsubscribe."""
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers={
            "Message-ID": message_id,
            "Date": formatdate(localtime=True),
            # RFC 8058 one-click unsubscribe, POSTed by the mail provider.
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        connection=connection,
    )
    message.attach_alternative(rendered.html, "text/html")
    return message
