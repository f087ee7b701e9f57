"""Sending: each waiting Delivery claimed, checked, sent and recorded, exactly once.

A sender claims one waiting row at a time with SELECT ... FOR UPDATE SKIP LOCKED
and holds its lock while the message goes out; the outcome (sent, failed, not
sent and why) is written and committed before the next row is claimed. So:

- any number of workers share a campaign without ever taking the same row;
- a worker killed mid-batch loses only the transaction of the message in hand:
  its row is still waiting, every row before it is recorded, and whoever sends
  next picks up exactly where it stopped. A message is repeated only if the kill
  falls between the mail server accepting it and our commit, microseconds later;
  it is never skipped. (Celery runs the tasks with acks_late,
  reject_on_worker_lost and prefetch 1, so the batch in hand is redelivered; the
  watchdog, ``campaigns_watch_task``, restarts a campaign whose worker vanished
  anyway.)

Right before each message the claim re-reads the consent, the customer's rights
(erasure, restriction, objection) and the frequency cap, so a withdrawal between
choosing the audience and sending is honoured.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate, parseaddr
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.db import connection, transaction
from django.utils import formats, timezone, translation

from campaigns import mime, rendering
from campaigns.models import Campaign, Channel, Delivery, Flow, MessageTemplate
from campaigns.services import campaign_transition, frequency_since
from consents.links import preference_url, unsubscribe_url
from consents.models import ConsentPurpose
from customers.models import Customer

logger = logging.getLogger(__name__)

Reason = Delivery.Reason

# The claim, in two statements. The first locks the oldest waiting row of one
# campaign or flow through the partial index of waiting rows; it is planned each
# time, because a prepared (generic) plan walks the primary key past every row
# sent so far. The second, prepared once, reads what the checks and the merge tags
# need about its one customer. (Written as one join, the planner hashed every
# consent of the purpose on each claim.)
CLAIM_SQL = """
SELECT d.id, d.customer_id FROM campaigns_delivery d
WHERE d.{owner}_id = %(owner)s AND d.status = 'pending'
ORDER BY d.id
LIMIT 1
FOR UPDATE SKIP LOCKED
"""
RECIPIENT_SQL = """
SELECT c.email, c.phone, c.first_name, c.last_name, c.language,
    c.erased_at IS NOT NULL, c.restricted_at IS NOT NULL,
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
FROM customers_customer c
WHERE c.id = %(customer)s
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

    def customer(self) -> Customer:
        """A Customer standing for this recipient (for links and recommendations)."""
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
        profiling = ConsentPurpose.objects.filter(
            code=ConsentPurpose.Code.PROFILING
        ).first()
        self.profiling_purpose = profiling.pk if profiling else 0
        # Personalising is profiling: on consent, it needs the consent granted.
        self.profiling_needs_consent = (
            profiling is None
            or profiling.legal_basis == ConsentPurpose.LegalBasis.CONSENT
        )
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
        try:
            while True:
                if done >= limit:
                    result.stopped = "limit"
                    break
                now = time.monotonic()
                if now - started >= seconds:
                    result.stopped = "time"
                    break
                if now - last_check >= 1.0:
                    last_check = now
                    if not self._may_go_on():
                        result.stopped = "status"
                        break
                if rate > 0:
                    wait = started + done / rate - now
                    if wait > 0:
                        time.sleep(wait)
                try:
                    outcome = self._one()
                except Exception:
                    logger.warning("Sending stopped", exc_info=True)
                    result.stopped = "error"
                    break
                if outcome is None:
                    result.stopped = "done"
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
        finally:
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
            campaign_id=self.owner_id, status=Delivery.Status.PENDING
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

    def _claim(self, cursor: Any, now: Any) -> Recipient | None:
        # prepare=False: psycopg would prepare it after a few runs.
        cursor.execute(self.sql, {"owner": self.owner_id}, prepare=False)
        claimed = cursor.fetchone()
        if claimed is None:
            return None
        cursor.execute(
            RECIPIENT_SQL,
            {
                "customer": claimed[1],
                "purpose": self.purpose.pk,
                "tracking": self.tracking_purpose,
                "profiling": self.profiling_purpose,
                "since": frequency_since(now),
            },
            prepare=True,
        )
        return Recipient(*claimed, *cursor.fetchone())

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

    def _one(self) -> str | None:
        """Claim, check, send and record one message; its outcome, None if none left."""
        now = timezone.now()
        with transaction.atomic(), _prepared_cursor() as cursor:
            recipient = self._claim(cursor, now)
            if recipient is None:
                return None
            reason = self._reason(recipient)
            if reason:
                Delivery.objects.filter(pk=recipient.delivery_id).update(
                    status=Delivery.Status.SKIPPED, reason=reason
                )
                return reason
            delivery = Delivery(
                pk=recipient.delivery_id,
                customer_id=recipient.customer_id,
                channel=self.channel,
            )
            try:
                message_id = self._deliver(delivery, recipient, now)
            except (*PERMANENT_ERRORS, RecipientRefused) as error:
                logger.info("Delivery %s failed: %s", recipient.delivery_id, error)
                Delivery.objects.filter(pk=recipient.delivery_id).update(
                    status=Delivery.Status.FAILED,
                    error=str(error)[:1000],
                    attempts=1,
                )
                return "failed"
            cursor.execute(
                "UPDATE campaigns_delivery SET status = 'sent', sent_at = %s,"
                " message_id = %s, attempts = 1 WHERE id = %s",
                [timezone.now(), message_id, delivery.pk],
                prepare=True,
            )
        return "sent"

    def context(self, recipient: Recipient, delivery: Delivery, now: Any) -> Any:
        """The merge tags' values for ``recipient``."""
        customer = recipient.customer()
        profiled = not recipient.objected_profiling and (
            recipient.profiling or not self.profiling_needs_consent
        )
        coupon = None
        if self.coupon_prefix:
            from campaigns.coupons import coupon_issue

            coupon = coupon_issue(
                delivery=delivery,
                prefix=self.coupon_prefix,
                validity_days=self.coupon_days,
                now=now,
            )
        values = message_values(
            customer=customer,
            unsubscribe=unsubscribe_url(
                customer, self.purpose, reference=str(delivery.pk)
            ),
            preferences=preference_url(customer),
            favourite_category=recipient.favourite_category if profiled else None,
            coupon_code=coupon.code if coupon else "",
            coupon_valid_until=coupon.valid_until if coupon else None,
        )
        recommendations = (
            self.recommender.for_customer(customer) if self.recommender else ()
        )
        return rendering.MessageContext(values=values, recommendations=recommendations)

    def _deliver(self, delivery: Delivery, recipient: Recipient, now: Any) -> str:
        """Render and hand the message over; its message id."""
        with translation.override(recipient.language or settings.LANGUAGE_CODE):
            context = self.context(recipient, delivery, now)
        if self.channel == Channel.SMS:
            return self._deliver_sms(delivery, recipient, context)
        return self._deliver_email(delivery, recipient, context)

    def _deliver_email(
        self, delivery: Delivery, recipient: Recipient, context: Any
    ) -> str:
        from campaigns.tracking import click_url, open_url

        track: Callable[[str], str] | None = None
        pixel = ""
        if recipient.tracking:

            def track(url: str) -> str:
                return click_url(delivery.pk, url)

            pixel = open_url(delivery.pk)
        rendered = self.prepared.render(context, track_link=track, open_pixel_url=pixel)
        message_id = f"<kartoteka.{delivery.pk}@{self.domain}>"
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

    def _deliver_sms(
        self, delivery: Delivery, recipient: Recipient, context: Any
    ) -> str:
        from campaigns.sms import SmsMessage

        text = rendering.render_sms(text=self.template.text, context=context)
        backend = self._sms_backend()
        # The gateway refuses a reference it has seen: a message repeated after a
        # kill at the wrong moment is not sent twice. The prefix keeps installations
        # sharing one gateway account apart.
        reference = f"{settings.SMS_REFERENCE_PREFIX}{delivery.pk}"
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


def _prepared_cursor() -> psycopg.Cursor:
    """A cursor on Django's connection, in its transaction, binding on the server.

    The two statements every message runs are then prepared once per connection
    instead of planned each time (Django's own cursors bind on the client).
    """
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


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
