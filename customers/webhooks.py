"""Outgoing webhooks: the shop's platform mirrors changes made in Kartoteka.

An event is emitted inside the writing service's transaction: one WebhookDelivery
row per active endpoint subscribed to it, then (after commit) one Celery task per
delivery. Each request is signed Stripe-style:

    Kartoteka-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>

so a receiver can check both who sent it and that it is fresh (``webhook_verify``).
A failed delivery is retried with growing delays (``RETRY_DELAYS``) and marked
failed after ``MAX_ATTEMPTS``. Delivery is at least once and not ordered: receivers
deduplicate by the envelope's ``id`` and order by the data's ``updated_at``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from psycopg import sql

from config import rawsql
from customers.models import (
    Customer,
    CustomerIdentity,
    Store,
    WebhookDelivery,
    WebhookEndpoint,
)

logger = logging.getLogger(__name__)

EventType = WebhookEndpoint.EventType
# Sent only by "send a test event"; endpoints cannot subscribe to it.
TEST_EVENT = "webhook.test"

SIGNATURE_HEADER = "Kartoteka-Signature"
EVENT_HEADER = "Kartoteka-Event"
DELIVERY_HEADER = "Kartoteka-Delivery"
USER_AGENT = "Kartoteka-Webhooks/1"
CONNECT_TIMEOUT = 5.0  # seconds to connect (TLS handshake included)
TOTAL_TIMEOUT = 10.0  # seconds for the whole request, connect included
RESPONSE_SNIPPET = 1000  # characters of a failed response's body kept in last_error

MAX_ATTEMPTS = 8
# Wait after failed attempt n (1-based) before attempt n + 1: about 45 h in all.
RETRY_DELAYS = (
    dt.timedelta(minutes=1),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
    dt.timedelta(hours=6),
    dt.timedelta(hours=12),
    dt.timedelta(hours=24),
)
# A new delivery is sent by its on-commit task at once; the retry sweep takes it up
# only after this long, in case that task was lost (broker down at commit).
SWEEP_GRACE = dt.timedelta(minutes=1)
SWEEP_BATCH = 500

Status = WebhookDelivery.Status
# The only status changes a delivery may go through; nothing else assigns status.
STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.PENDING: frozenset({Status.SUCCEEDED, Status.FAILED}),
    Status.FAILED: frozenset({Status.PENDING}),  # "retry now"
    Status.SUCCEEDED: frozenset(),
}


# --- Signing ---------------------------------------------------------------------


def webhook_sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 (hex) of ``"<timestamp>." + body`` with the endpoint's secret."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    """The Kartoteka-Signature header value: ``t=<timestamp>,v1=<signature>``."""
    signature = webhook_sign(secret=secret, timestamp=timestamp, body=body)
    return f"t={timestamp},v1={signature}"


def webhook_verify(
    *,
    secret: str,
    header: str,
    body: bytes,
    tolerance: int = 300,
    now: int | None = None,
) -> bool:
    """Whether a Kartoteka-Signature header is valid for ``body``, as receivers check.

    Valid: a ``v1`` signature matches and ``t`` is at most ``tolerance`` seconds
    away from now (an old, replayed request fails). Several ``v1`` values may be
    given, as during a secret rotation; any one matching is enough.
    """
    timestamp = None
    signatures = []
    for part in (header or "").split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    now = int(time.time()) if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    expected = webhook_sign(secret=secret, timestamp=timestamp, body=body)
    return any(hmac.compare_digest(expected, signature) for signature in signatures)


# --- Endpoints -------------------------------------------------------------------


def webhook_url_validate(url: str) -> str:
    """Return the URL stripped; only absolute http(s) URLs with a host are allowed."""
    url = (url or "").strip()
    parts = urlsplit(url)
    try:
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise ValidationError(
            {
                "url": ValidationError(
                    _("Enter an http:// or https:// address."), code="invalid_url"
                )
            }
        )
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES and _private_host(parts.hostname):
        raise ValidationError(
            {
                "url": ValidationError(
                    _(
                        "Webhooks go only to public addresses, not to this network "
                        "or this machine."
                    ),
                    code="private_address",
                )
            }
        )
    limit = WebhookEndpoint._meta.get_field("url").max_length
    if len(url) > limit:
        raise ValidationError(
            {
                "url": ValidationError(
                    _("At most %(limit)d characters."),
                    code="too_long",
                    params={"limit": limit},
                )
            }
        )
    return url


def _events_validate(events: Iterable[str]) -> list[str]:
    events = sorted(set(events))
    if not events or set(events) - set(EventType.values):
        raise ValidationError(
            {
                "events": ValidationError(
                    _("Choose the events from: %(choices)s."),
                    code="invalid_choice",
                    params={"choices": ", ".join(EventType.values)},
                )
            }
        )
    return events


def webhook_secret_generate() -> str:
    """A new signing secret: 256 random bits, URL-safe."""
    return f"whsec_{secrets.token_urlsafe(32)}"


def webhook_endpoint_create(
    *,
    store: Store,
    url: str,
    events: Iterable[str],
    is_active: bool = True,
    actor: Any = None,
) -> WebhookEndpoint:
    """Register a store's webhook URL with a newly generated signing secret."""
    url = webhook_url_validate(url)
    events = _events_validate(events)
    return WebhookEndpoint.objects.create(
        store=store,
        url=url,
        events=events,
        is_active=is_active,
        secret=webhook_secret_generate(),
    )


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str,
    events: Iterable[str],
    is_active: bool,
    actor: Any = None,
) -> WebhookEndpoint:
    """Change where an endpoint points, what it hears about and whether it is on."""
    endpoint.url = webhook_url_validate(url)
    endpoint.events = _events_validate(events)
    endpoint.is_active = is_active
    endpoint.save(update_fields=["url", "events", "is_active"])
    return endpoint


def webhook_endpoint_test(
    *, endpoint: WebhookEndpoint, actor: Any = None
) -> WebhookDelivery:
    """Send a ``webhook.test`` event to one endpoint (after commit), to check it."""
    if not endpoint.is_active:
        raise ValidationError(
            _("The endpoint is inactive; activate it to send it events."),
            code="inactive",
        )
    data = {
        "store": endpoint.store.code,
        "message": "This is a test event from Kartoteka.",
    }
    (delivery,) = _deliveries_create([endpoint.pk], event=TEST_EVENT, data=data)
    return delivery


# --- Emitting --------------------------------------------------------------------


def _subscribed_endpoint_ids(
    *, event: str, store_ids: Iterable[int] | QuerySet | None
) -> list[int]:
    """Active endpoints hearing ``event`` in the given stores: one query."""
    endpoints = WebhookEndpoint.objects.filter(is_active=True, events__contains=[event])
    if store_ids is not None:
        if not isinstance(store_ids, QuerySet):
            store_ids = list(store_ids)
            if not store_ids:
                return []
        endpoints = endpoints.filter(store_id__in=store_ids)
    return list(endpoints.values_list("pk", flat=True))


def _customer_endpoint_ids(customer: Customer, event: str) -> list[int]:
    """Active endpoints hearing ``event`` in the stores that know ``customer``.

    Runs on every customer write from the API, precompiled (see config.rawsql).
    """
    with rawsql.cursor() as cursor:
        cursor.execute(_customer_endpoints_query(), [event, customer.pk])
        return [pk for (pk,) in cursor.fetchall()]


@cache
def _customer_endpoints_query() -> str:
    return rawsql.compiled(
        sql.SQL(
            "SELECT e.id FROM {endpoints} e WHERE e.is_active AND %s = ANY(e.events)"
            " AND e.store_id IN"
            " (SELECT i.store_id FROM {identities} i WHERE i.customer_id = %s)"
        ).format(
            endpoints=rawsql.table(WebhookEndpoint),
            identities=rawsql.table(CustomerIdentity),
        )
    )


class _JSONEncoder(DjangoJSONEncoder):
    """Datetimes as the REST API writes them: local time, offset, microseconds."""

    def default(self, o: Any) -> Any:
        if isinstance(o, dt.datetime):
            text = (timezone.localtime(o) if timezone.is_aware(o) else o).isoformat()
            return (
                text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text
            )
        return super().default(o)


def _deliveries_create(
    endpoint_ids: list[int], *, event: str, data: dict[str, Any]
) -> list[WebhookDelivery]:
    if not endpoint_ids:
        return []
    now = timezone.now()
    # JSON now, not at send time: the payload is a snapshot of the change.
    data = json.loads(json.dumps(data, cls=_JSONEncoder))
    deliveries = []
    for endpoint_id in endpoint_ids:
        delivery_id = uuid.uuid4()
        deliveries.append(
            WebhookDelivery(
                id=delivery_id,
                endpoint_id=endpoint_id,
                event=event,
                payload={
                    "id": str(delivery_id),
                    "event": event,
                    "created_at": _JSONEncoder().default(now),
                    "data": data,
                },
                next_attempt_at=now + SWEEP_GRACE,
            )
        )
    WebhookDelivery.objects.bulk_create(deliveries)
    _enqueue_on_commit([delivery.pk for delivery in deliveries])
    return deliveries


def _enqueue_on_commit(delivery_ids: list[uuid.UUID]) -> None:
    from customers.tasks import webhook_deliver_task  # tasks import this module

    ids = [str(delivery_id) for delivery_id in delivery_ids]

    def enqueue() -> None:
        for delivery_id in ids:
            webhook_deliver_task.delay(delivery_id)

    # robust: a broker outage must not fail the committed write; the retry sweep
    # sends these deliveries later.
    transaction.on_commit(enqueue, robust=True)


def webhook_emit(
    *, event: str, store_ids: Iterable[int] | None, payload: dict[str, Any]
) -> list[WebhookDelivery]:
    """Queue ``event`` for the active endpoints subscribed to it in ``store_ids``.

    ``store_ids`` None means every store. The deliveries are written in the
    caller's transaction and sent after it commits. One query when nobody listens.
    """
    endpoint_ids = _subscribed_endpoint_ids(event=event, store_ids=store_ids)
    return _deliveries_create(endpoint_ids, event=event, data=payload)


def webhook_customer_data(
    *, customer: Customer, identities: Iterable[CustomerIdentity]
) -> dict[str, Any]:
    """The customer as webhooks describe it (identities with their stores loaded)."""
    return {
        "customer": {
            "id": customer.pk,
            "email": customer.email,
            "phone": customer.phone,
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "status": customer.status,
            "updated_at": customer.updated_at,
            "identities": [
                {"store": identity.store.code, "external_id": identity.external_id}
                for identity in identities
            ],
        }
    }


def webhook_emit_customer_updated(
    *,
    customer: Customer,
    created: bool,
    since: dt.datetime,
    store: Store | None = None,
    external_id: str | None = None,
) -> list[WebhookDelivery]:
    """Emit ``customer.updated`` after an upsert that wrote something.

    ``since`` is a time taken just before the upsert started: a customer row saved
    by it has a later ``updated_at`` (auto_now), an identity added by it a later
    ``created_at``; an idempotent repeat has neither and emits nothing. Goes to the
    stores the customer has identities in. Costs nothing on a repeat without an
    external id, one query with one, and one query when something changed but no
    endpoint listens.
    """
    event = EventType.CUSTOMER_UPDATED
    if not created and customer.updated_at < since:
        if not external_id:
            return []
        identity_added = CustomerIdentity.objects.filter(
            store=store, external_id=external_id, created_at__gte=since
        ).exists()
        if not identity_added:
            return []
    endpoint_ids = _customer_endpoint_ids(customer, event)
    if not endpoint_ids:
        return []
    identities = (
        CustomerIdentity.objects.filter(customer=customer)
        .select_related("store")
        .order_by("store__code", "external_id")
    )
    data = webhook_customer_data(customer=customer, identities=identities)
    return _deliveries_create(endpoint_ids, event=event, data=data)


# --- Delivering ------------------------------------------------------------------


def _private_host(host: str) -> bool:
    """Whether ``host`` names this machine or a private network without a lookup.

    An IP literal that is not globally routable (loopback, private, link-local,
    reserved, multicast, ...) or a name like ``localhost``; other names are
    checked when a delivery resolves them (``_public_address``).
    """
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def _public_address(host: str, port: int) -> str:
    """The address to connect to for ``host``: its first one, if all are public.

    Resolving once here and connecting to that address (not to the name again)
    keeps a name from resolving to a public address for the check and to an
    internal one for the connection (DNS rebinding). Raises ValueError.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise ValueError(f"{host} has no address")
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        for address in addresses:
            if not ipaddress.ip_address(address.split("%")[0]).is_global:
                raise ValueError(f"{host} resolves to a non-public address {address}")
    return addresses[0]


@dataclass(frozen=True)
class _Outcome:
    status: int | None = None  # the HTTP status, None when there was no response
    error: str = ""
    permanent: bool = False  # retrying cannot help (e.g. not an http(s) URL)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def webhook_body(delivery: WebhookDelivery) -> bytes:
    """The exact bytes sent (and signed) for a delivery: compact, sorted JSON."""
    return json.dumps(
        delivery.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def _abort(sock: socket.socket, fired: threading.Event) -> None:
    fired.set()
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes up a recv blocked in another thread
    except OSError:
        pass


def _post(url: str, *, body: bytes, headers: dict[str, str]) -> _Outcome:
    """POST once; never follows redirects and never sends to non-http(s) URLs."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _Outcome(error=f"Not an http(s) URL: {url}", permanent=True)
    try:
        port = parts.port
    except ValueError:
        return _Outcome(error=f"Invalid port in URL: {url}", permanent=True)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    try:
        address = _public_address(parts.hostname, port)
    except ValueError as error:
        return _Outcome(error=str(error), permanent=True)
    except OSError as error:  # the name does not resolve (now): retry later
        return _Outcome(error=f"{type(error).__name__}: {error}"[:RESPONSE_SNIPPET])
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname,
            port,
            timeout=CONNECT_TIMEOUT,
            context=ssl.create_default_context(),
        )
    else:
        connection = http.client.HTTPConnection(
            parts.hostname, port, timeout=CONNECT_TIMEOUT
        )
    # Connect to the address checked above; TLS still verifies the host name.
    connection._create_connection = (  # http.client's hook for opening the socket
        lambda _address, *args: socket.create_connection((address, port), *args)
    )
    started = time.monotonic()
    fired = threading.Event()
    timer = None
    try:
        connection.connect()
        remaining = max(TOTAL_TIMEOUT - (time.monotonic() - started), 0.1)
        connection.sock.settimeout(remaining)
        # A socket timeout bounds each read, not the whole response: a server
        # trickling bytes would hold the worker. The timer cuts it off.
        timer = threading.Timer(remaining, _abort, args=(connection.sock, fired))
        timer.daemon = True
        timer.start()
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        status = response.status
        if 200 <= status < 300:
            return _Outcome(status=status)
        snippet = response.read(RESPONSE_SNIPPET).decode("utf-8", "replace")
        if 300 <= status < 400:
            location = response.getheader("Location", "")
            error = f"HTTP {status}: redirect to {location[:300]} not followed"
        else:
            error = f"HTTP {status}: {snippet}".strip()
        return _Outcome(status=status, error=error)
    except (OSError, http.client.HTTPException) as error:
        if fired.is_set():
            return _Outcome(error=f"Timed out after {TOTAL_TIMEOUT:g} s")
        return _Outcome(error=f"{type(error).__name__}: {error}"[:RESPONSE_SNIPPET])
    finally:
        if timer is not None:
            timer.cancel()
        connection.close()


def _status_set(delivery: WebhookDelivery, status: str) -> None:
    if status != delivery.status and status not in STATUS_TRANSITIONS[delivery.status]:
        raise ValidationError(
            _("A delivery cannot go from %(old)s to %(new)s."),
            code="invalid_transition",
            params={"old": delivery.status, "new": status},
        )
    delivery.status = status


def webhook_deliver(*, delivery: WebhookDelivery) -> bool:
    """Send a pending delivery if it is due and record the outcome; True if delivered.

    The row stays locked (FOR UPDATE SKIP LOCKED) while the request runs, so two
    workers never send the same delivery at once: the second one skips it. A
    delivery never tried yet is due at once; after a failure it waits for
    ``next_attempt_at``, so a duplicate task cannot cut the backoff short.
    Deliveries of inactive endpoints wait until the endpoint is active again.
    """
    with transaction.atomic():
        now = timezone.now()
        locked = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery.pk, status=Status.PENDING, endpoint__is_active=True)
            .filter(
                Q(attempts=0)
                | Q(next_attempt_at__isnull=True)
                | Q(next_attempt_at__lte=now)
            )
            .first()
        )
        if locked is None:
            return False
        body = webhook_body(locked)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: locked.event,
            DELIVERY_HEADER: str(locked.pk),
            SIGNATURE_HEADER: webhook_signature_header(
                secret=locked.endpoint.secret, timestamp=timestamp, body=body
            ),
        }
        outcome = _post(locked.endpoint.url, body=body, headers=headers)
        _outcome_record(locked, outcome)
    for name in _RECORDED_FIELDS:
        setattr(delivery, name, getattr(locked, name))
    return outcome.ok


_RECORDED_FIELDS = (
    "status",
    "attempts",
    "response_status",
    "last_error",
    "next_attempt_at",
    "delivered_at",
)


def _outcome_record(delivery: WebhookDelivery, outcome: _Outcome) -> None:
    now = timezone.now()
    delivery.attempts += 1
    delivery.response_status = outcome.status
    if outcome.ok:
        _status_set(delivery, Status.SUCCEEDED)
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        delivery.last_error = ""
    elif outcome.permanent or delivery.attempts >= MAX_ATTEMPTS:
        _status_set(delivery, Status.FAILED)
        delivery.next_attempt_at = None
        delivery.last_error = outcome.error
    else:
        delivery.next_attempt_at = now + RETRY_DELAYS[delivery.attempts - 1]
        delivery.last_error = outcome.error
    if not outcome.ok:
        logger.info(
            "Webhook delivery %s to %s failed (attempt %d): %s",
            delivery.pk,
            delivery.endpoint.url,
            delivery.attempts,
            outcome.error,
        )
    delivery.save(update_fields=list(_RECORDED_FIELDS))


def webhook_delivery_retry(*, delivery: WebhookDelivery, actor: Any = None) -> bool:
    """Send a failed or waiting delivery again now (after commit).

    A failed delivery gets one more attempt; if that fails it is failed again.
    Returns False for a delivery that already succeeded.
    """
    with transaction.atomic():
        locked = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        if locked.status == Status.SUCCEEDED:
            return False
        _status_set(locked, Status.PENDING)
        locked.next_attempt_at = timezone.now()
        locked.save(update_fields=["status", "next_attempt_at"])
        _enqueue_on_commit([locked.pk])
    delivery.status, delivery.next_attempt_at = locked.status, locked.next_attempt_at
    return True


def webhook_retry_due(
    *,
    until: dt.datetime,
    after: tuple[dt.datetime, uuid.UUID] | None = None,
    limit: int | None = None,
) -> tuple[dt.datetime, uuid.UUID] | None:
    """Queue one batch of pending deliveries due by ``until`` for sending.

    Walks (next_attempt_at, id) from ``after``; returns where the next batch starts,
    or None when this was the last one. Uses the partial index on pending rows.
    """
    due = (
        WebhookDelivery.objects.filter(
            status=Status.PENDING,
            next_attempt_at__lte=until,
            endpoint__is_active=True,
        )
        .order_by("next_attempt_at", "id")
        .values_list("next_attempt_at", "id")
    )
    if after is not None:
        after_at, after_id = after
        due = due.filter(
            Q(next_attempt_at__gt=after_at)
            | Q(next_attempt_at=after_at, id__gt=after_id)
        )
    limit = limit or SWEEP_BATCH
    batch = list(due[:limit])
    if not batch:
        return None
    _enqueue_on_commit([delivery_id for _at, delivery_id in batch])
    return batch[-1] if len(batch) == limit else None
