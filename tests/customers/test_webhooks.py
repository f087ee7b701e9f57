import datetime as dt
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers import webhooks
from customers.models import WebhookDelivery, WebhookEndpoint
from customers.services import customer_upsert
from customers.tasks import webhook_deliver_task, webhook_retry_due_task
from customers.webhooks import (
    MAX_ATTEMPTS,
    TEST_EVENT,
    webhook_deliver,
    webhook_delivery_retry,
    webhook_emit,
    webhook_endpoint_create,
    webhook_endpoint_test,
    webhook_retry_due,
    webhook_sign,
    webhook_signature_header,
    webhook_verify,
)
from tests.factories.customers import StoreFactory

UPDATED = WebhookEndpoint.EventType.CUSTOMER_UPDATED
CONSENT = WebhookEndpoint.EventType.CONSENT_CHANGED
Status = WebhookDelivery.Status


# --- A real HTTP receiver ----------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


class HookServer:
    """An HTTP server on 127.0.0.1 (random port) in a thread, recording each POST.

    ``status``, ``response_headers`` and ``delay`` shape the answers it gives.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.status = 200
        self.response_headers: dict[str, str] = {}
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests.append(
                    Received(
                        self.path,
                        {name.lower(): value for name, value in self.headers.items()},
                        body,
                    )
                )
                if server.delay:
                    time.sleep(server.delay)
                try:
                    self.send_response(server.status)
                    for name, value in server.response_headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "13")
                    self.end_headers()
                    self.wfile.write(b"hello, hooks!")
                except OSError:  # the sender gave up waiting (timeout tests)
                    pass

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hooks/kartoteka?x=1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "HookServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hook_server():
    with HookServer() as server:
        yield server


@pytest.fixture
def enqueued(monkeypatch):
    """Delivery ids handed to Celery (the broker is not called)."""
    ids: list[str] = []
    monkeypatch.setattr(webhook_deliver_task, "delay", ids.append)
    return ids


def endpoint_for(store, url="https://shop.example.pl/hooks", events=(UPDATED,), **kw):
    return webhook_endpoint_create(store=store, url=url, events=events, **kw)


def a_delivery(endpoint, **fields):
    (delivery,) = webhooks._deliveries_create(
        [endpoint.pk], event=UPDATED, data={"customer": {"id": 1}}
    )
    for name, value in fields.items():
        setattr(delivery, name, value)
    if fields:
        delivery.save(update_fields=list(fields))
    return delivery


# --- Signing -----------------------------------------------------------------------


def test_signature_round_trip_and_tampering_or_replay_is_rejected():
    body = b'{"event":"customer.updated"}'
    now = int(time.time())
    header = webhook_signature_header(secret="s3cret", timestamp=now, body=body)
    signature = webhook_sign(secret="s3cret", timestamp=now, body=body)
    assert header == f"t={now},v1={signature}"

    assert webhook_verify(secret="s3cret", header=header, body=body)
    assert not webhook_verify(secret="s3cret", header=header, body=body + b" ")
    assert not webhook_verify(secret="other", header=header, body=body)
    # The timestamp is signed: moving it forward breaks the signature...
    forged = f"t={now + 100},v1={signature}"
    assert not webhook_verify(secret="s3cret", header=forged, body=body)
    # ...and a captured request replayed later is too old.
    old = webhook_signature_header(secret="s3cret", timestamp=now - 301, body=body)
    assert not webhook_verify(secret="s3cret", header=old, body=body)
    assert webhook_verify(
        secret="s3cret", header=old, body=body, tolerance=600, now=now
    )
    for malformed in ["", "garbage", f"t=abc,v1={signature}", f"t={now}", "v1=ab"]:
        assert not webhook_verify(secret="s3cret", header=malformed, body=body)
    # During a secret rotation any one matching signature will do.
    assert webhook_verify(
        secret="s3cret", header=f"t={now},v1=deadbeef,v1={signature}", body=body
    )


def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert webhook_sign(secret="k", timestamp=1700000000, body=b"{}") == expected


# --- Endpoints ---------------------------------------------------------------------


@pytest.mark.django_db
def test_endpoint_gets_a_generated_secret_and_only_http_urls(store):
    endpoint = endpoint_for(store, events=[UPDATED, CONSENT, UPDATED])
    assert endpoint.secret.startswith("whsec_")
    assert len(endpoint.secret) > 40
    assert endpoint.events == sorted([UPDATED, CONSENT])
    assert endpoint_for(store).secret != endpoint.secret
    from django.core.exceptions import ValidationError

    for url in ["ftp://shop.example.pl/x", "file:///etc/passwd", "shop.example.pl"]:
        with pytest.raises(ValidationError) as error:
            endpoint_for(store, url=url)
        assert error.value.error_dict["url"][0].code == "invalid_url"
    with pytest.raises(ValidationError) as error:
        endpoint_for(store, events=["customer.deleted"])
    assert "events" in error.value.error_dict


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hooks",
        "https://10.0.0.7/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hooks",
        "http://localhost/hooks",
        "https://db.internal/hooks",
    ],
)
def test_endpoints_on_private_addresses_are_refused(store, settings, url):
    from django.core.exceptions import ValidationError

    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(ValidationError) as error:
        endpoint_for(store, url=url)
    assert error.value.error_dict["url"][0].code == "private_address"


@pytest.mark.django_db
def test_a_name_resolving_to_a_private_address_is_not_sent_to(store, settings):
    with HookServer() as hook_server:
        # Saved while allowed (or resolving elsewhere when saved): the delivery
        # resolves the name itself and refuses this machine's address.
        endpoint = endpoint_for(
            store, url=hook_server.url.replace("127.0.0.1", "localhost")
        )
        settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
        delivery = a_delivery(endpoint)
        assert webhook_deliver(delivery=delivery) is False
        delivery.refresh_from_db()
        assert delivery.status == Status.FAILED
        assert "non-public address" in delivery.last_error
        assert hook_server.requests == []


# --- Emitting ----------------------------------------------------------------------


@pytest.mark.django_db
def test_emit_reaches_only_active_subscribed_endpoints_of_the_stores(
    store, enqueued, django_capture_on_commit_callbacks
):
    other = StoreFactory(code="drugi")
    listening = endpoint_for(store)
    endpoint_for(store, events=[CONSENT])
    endpoint_for(store, is_active=False)
    elsewhere = endpoint_for(other)

    with django_capture_on_commit_callbacks(execute=True):
        deliveries = webhook_emit(
            event=UPDATED, store_ids=[store.pk], payload={"customer": {"id": 7}}
        )
    assert [d.endpoint_id for d in deliveries] == [listening.pk]
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == Status.PENDING
    assert delivery.attempts == 0
    assert delivery.payload["id"] == str(delivery.pk)
    assert delivery.payload["event"] == "customer.updated"
    assert delivery.payload["data"] == {"customer": {"id": 7}}
    assert dt.datetime.fromisoformat(delivery.payload["created_at"])
    assert enqueued == [str(delivery.pk)]

    everywhere = webhook_emit(event=UPDATED, store_ids=None, payload={})
    assert {d.endpoint_id for d in everywhere} == {listening.pk, elsewhere.pk}
    assert webhook_emit(event=UPDATED, store_ids=[], payload={}) == []


@pytest.mark.django_db
def test_nothing_is_sent_before_commit_and_nothing_after_a_rollback(
    store, enqueued, django_capture_on_commit_callbacks
):
    endpoint_for(store)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                webhook_emit(event=UPDATED, store_ids=[store.pk], payload={})
                assert enqueued == []
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
    assert callbacks == []
    assert enqueued == []
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_emit_costs_one_query_when_nobody_listens(store, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert webhook_emit(event=UPDATED, store_ids=[store.pk], payload={}) == []


# --- customer.updated from customer_upsert -----------------------------------------


def writes(ctx):
    return [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}
    ]


@pytest.mark.django_db
class TestCustomerUpdated:
    def test_created_customer_is_sent_with_its_identities(self, store):
        endpoint = endpoint_for(store)
        customer, created = customer_upsert(
            store=store,
            external_id="C-1",
            email="Anna@Example.PL",
            phone="601 234 567",
            first_name="Anna",
        )
        assert created
        delivery = WebhookDelivery.objects.get()
        assert delivery.endpoint == endpoint
        assert delivery.event == "customer.updated"
        assert delivery.payload["data"] == {
            "customer": {
                "id": customer.pk,
                "email": "Anna@example.pl",
                "phone": "+48601234567",
                "first_name": "Anna",
                "last_name": "",
                "status": "lead",
                # As the REST API writes it: local time with its offset.
                "updated_at": timezone.localtime(customer.updated_at).isoformat(),
                "identities": [{"store": "sklep", "external_id": "C-1"}],
            }
        }

    def test_repeat_emits_nothing_and_a_change_emits_again(self, store):
        endpoint_for(store)
        data = {
            "store": store,
            "external_id": "C-1",
            "email": "anna@example.pl",
            "first_name": "Anna",
            "tags": ["VIP"],
        }
        customer_upsert(**data)
        for _ in range(2):
            with CaptureQueriesContext(connection) as ctx:
                customer_upsert(**data)
            assert writes(ctx) == []
        assert WebhookDelivery.objects.count() == 1

        customer_upsert(**{**data, "last_name": "Nowak"})
        assert WebhookDelivery.objects.count() == 2
        latest = WebhookDelivery.objects.order_by("-created_at").first()
        assert latest.payload["data"]["customer"]["last_name"] == "Nowak"

    def test_new_identity_alone_is_a_change_sent_to_every_store_of_the_customer(
        self, store
    ):
        other = StoreFactory(code="drugi")
        here, there = endpoint_for(store), endpoint_for(other)
        customer_upsert(store=store, external_id="C-1", email="anna@example.pl")
        assert WebhookDelivery.objects.filter(endpoint=there).count() == 0

        customer_upsert(store=other, external_id="X-9", email="anna@example.pl")
        latest = WebhookDelivery.objects.filter(endpoint=there).get()
        assert latest.payload["data"]["customer"]["identities"] == [
            {"store": "drugi", "external_id": "X-9"},
            {"store": "sklep", "external_id": "C-1"},
        ]
        assert WebhookDelivery.objects.filter(endpoint=here).count() == 2

    def test_customer_without_identities_goes_nowhere(self, store):
        endpoint_for(store)
        customer_upsert(email="anna@example.pl")
        assert not WebhookDelivery.objects.exists()

    def test_extra_queries_when_nobody_listens(self, store, monkeypatch):
        """At most one query more than the upsert without webhooks, none on an
        idempotent repeat."""
        from customers import services

        def count(**data):
            with CaptureQueriesContext(connection) as ctx:
                customer_upsert(**data)
            return len(ctx.captured_queries)

        steps = [
            {"store": store, "external_id": "C-1", "email": "anna@example.pl"},
            {"store": store, "external_id": "C-1", "first_name": "Anna"},
            {"store": store, "external_id": "C-1", "first_name": "Anna"},
            {"email": "anna@example.pl", "first_name": "Anna"},
        ]
        with transaction.atomic():
            plain = []
            with monkeypatch.context() as patch:
                patch.setattr(
                    services, "webhook_emit_customer_updated", lambda **kw: []
                )
                plain = [count(**data) for data in steps]
            transaction.set_rollback(True)
        with_webhooks = [count(**data) for data in steps]
        extra = [a - b for a, b in zip(with_webhooks, plain, strict=True)]
        # created: who listens?; changed: who listens?; repeats: nothing.
        assert extra == [1, 1, 0, 0]
        assert not WebhookDelivery.objects.exists()


# --- Delivering --------------------------------------------------------------------


@pytest.mark.django_db
class TestDeliver:
    def test_success_to_a_real_server_with_verifiable_signature(
        self, store, hook_server
    ):
        endpoint = endpoint_for(store, url=hook_server.url)
        delivery = a_delivery(endpoint)

        assert webhook_deliver(delivery=delivery) is True

        (request,) = hook_server.requests
        assert request.path == "/hooks/kartoteka?x=1"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"] == "Kartoteka-Webhooks/1"
        assert request.headers["kartoteka-event"] == "customer.updated"
        assert request.headers["kartoteka-delivery"] == str(delivery.pk)
        assert webhook_verify(
            secret=endpoint.secret,
            header=request.headers["kartoteka-signature"],
            body=request.body,
        )
        assert json.loads(request.body) == delivery.payload
        delivery.refresh_from_db()
        assert delivery.status == Status.SUCCEEDED
        assert delivery.attempts == 1
        assert delivery.response_status == 200
        assert delivery.delivered_at is not None
        assert delivery.next_attempt_at is None
        # Done is done: a duplicate task sends nothing.
        assert webhook_deliver(delivery=delivery) is False
        assert len(hook_server.requests) == 1

    def test_server_error_schedules_retries_with_growing_delays(
        self, store, hook_server
    ):
        hook_server.status = 500
        delivery = a_delivery(endpoint_for(store, url=hook_server.url))

        before = timezone.now()
        assert webhook_deliver(delivery=delivery) is False
        delivery.refresh_from_db()
        assert delivery.status == Status.PENDING
        assert delivery.attempts == 1
        assert delivery.response_status == 500
        assert delivery.last_error == "HTTP 500: hello, hooks!"
        assert delivery.delivered_at is None
        wait = delivery.next_attempt_at - before
        assert dt.timedelta(seconds=59) < wait < dt.timedelta(seconds=65)

        # Not due yet: a duplicate task does not cut the backoff short.
        assert webhook_deliver(delivery=delivery) is False
        assert len(hook_server.requests) == 1

        delivery.next_attempt_at = timezone.now()
        delivery.save(update_fields=["next_attempt_at"])
        before = timezone.now()
        webhook_deliver(delivery=delivery)
        delivery.refresh_from_db()
        assert delivery.attempts == 2
        wait = delivery.next_attempt_at - before
        assert dt.timedelta(minutes=5) <= wait < dt.timedelta(minutes=5, seconds=5)

    def test_last_failed_attempt_marks_the_delivery_failed(self, store, hook_server):
        hook_server.status = 503
        delivery = a_delivery(
            endpoint_for(store, url=hook_server.url),
            attempts=MAX_ATTEMPTS - 1,
            next_attempt_at=timezone.now() - dt.timedelta(seconds=1),
        )
        assert webhook_deliver(delivery=delivery) is False
        delivery.refresh_from_db()
        assert delivery.status == Status.FAILED
        assert delivery.attempts == MAX_ATTEMPTS
        assert delivery.next_attempt_at is None
        assert delivery.response_status == 503

    def test_redirects_are_not_followed(self, store, hook_server):
        hook_server.status = 302
        hook_server.response_headers = {"Location": "http://169.254.169.254/latest"}
        delivery = a_delivery(endpoint_for(store, url=hook_server.url))
        assert webhook_deliver(delivery=delivery) is False
        delivery.refresh_from_db()
        assert delivery.status == Status.PENDING
        assert delivery.response_status == 302
        assert "redirect to http://169.254.169.254/latest not followed" in (
            delivery.last_error
        )
        assert len(hook_server.requests) == 1

    def test_non_http_url_fails_at_once_without_sending(self, store):
        endpoint = WebhookEndpoint.objects.create(
            store=store, url="ftp://shop.example.pl/hooks", secret="s", events=[UPDATED]
        )
        delivery = a_delivery(endpoint)
        assert webhook_deliver(delivery=delivery) is False
        delivery.refresh_from_db()
        assert delivery.status == Status.FAILED
        assert delivery.attempts == 1
        assert delivery.last_error.startswith("Not an http(s) URL")

    def test_unreachable_server_is_retried(self, store):
        with HookServer() as server:
            url = server.url  # the port is free again once it stops
        delivery = a_delivery(endpoint_for(store, url=url))
        assert webhook_deliver(delivery=delivery) is False
        delivery.refresh_from_db()
        assert delivery.status == Status.PENDING
        assert delivery.response_status is None
        assert "ConnectionRefusedError" in delivery.last_error

    def test_slow_server_is_cut_off(self, store, hook_server, monkeypatch):
        monkeypatch.setattr(webhooks, "TOTAL_TIMEOUT", 0.5)
        hook_server.delay = 3
        delivery = a_delivery(endpoint_for(store, url=hook_server.url))
        started = time.monotonic()
        assert webhook_deliver(delivery=delivery) is False
        assert time.monotonic() - started < 2
        delivery.refresh_from_db()
        assert delivery.status == Status.PENDING
        assert delivery.last_error  # a timeout, however the OS words it

    def test_inactive_endpoint_waits(self, store, hook_server):
        endpoint = endpoint_for(store, url=hook_server.url)
        delivery = a_delivery(endpoint)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)
        assert webhook_deliver(delivery=delivery) is False
        assert hook_server.requests == []
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (Status.PENDING, 0)

    def test_task_is_a_no_op_for_a_missing_delivery(self):
        assert webhook_deliver_task(str(uuid.uuid4())) is False

    def test_task_delivers(self, store, hook_server):
        delivery = a_delivery(endpoint_for(store, url=hook_server.url))
        assert webhook_deliver_task(str(delivery.pk)) is True


@pytest.mark.django_db(transaction=True)
def test_a_delivery_locked_by_another_worker_is_skipped(hook_server, enqueued):
    store = StoreFactory(code="sklep")
    delivery = a_delivery(endpoint_for(store, url=hook_server.url))
    locked, release = threading.Event(), threading.Event()

    def other_worker():
        try:
            with transaction.atomic():
                WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        assert webhook_deliver(delivery=delivery) is False
        assert time.monotonic() - started < 1  # skipped, not waited for
        assert hook_server.requests == []
    finally:
        release.set()
        thread.join()
    assert webhook_deliver(delivery=delivery) is True
    assert len(hook_server.requests) == 1


# --- Retries -----------------------------------------------------------------------


@pytest.mark.django_db
def test_retry_sweep_queues_due_deliveries_in_batches(
    store, enqueued, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(store)
    now = timezone.now()
    due = [
        a_delivery(endpoint, attempts=1, next_attempt_at=now - dt.timedelta(minutes=m))
        for m in (1, 2, 3)
    ]
    a_delivery(endpoint, attempts=1, next_attempt_at=now + dt.timedelta(minutes=1))
    a_delivery(endpoint, status=Status.FAILED, next_attempt_at=None)
    a_delivery(endpoint, status=Status.SUCCEEDED, next_attempt_at=None)
    inactive = endpoint_for(store, is_active=False)
    a_delivery(inactive, attempts=1, next_attempt_at=now - dt.timedelta(minutes=1))
    enqueued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        cursor = webhook_retry_due(until=now, limit=2)
        assert cursor is not None
        assert webhook_retry_due(until=now, after=cursor, limit=2) is None
    oldest_first = [str(d.pk) for d in reversed(due)]
    assert enqueued == oldest_first


@pytest.mark.django_db
def test_retry_task_chains_its_batches(
    store, enqueued, monkeypatch, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for(store)
    past = timezone.now() - dt.timedelta(minutes=1)
    for _ in range(3):
        a_delivery(endpoint, attempts=1, next_attempt_at=past)
    enqueued.clear()
    monkeypatch.setattr(webhooks, "SWEEP_BATCH", 2)
    chained = []
    monkeypatch.setattr(
        webhook_retry_due_task, "delay", lambda **kw: chained.append(kw)
    )
    with django_capture_on_commit_callbacks(execute=True):
        webhook_retry_due_task()
        assert len(chained) == 1
        webhook_retry_due_task(**chained[0])
    assert len(chained) == 1
    assert len(set(enqueued)) == 3


@pytest.mark.django_db
def test_manual_retry_gives_a_failed_delivery_one_more_attempt(
    store, hook_server, enqueued, django_capture_on_commit_callbacks
):
    hook_server.status = 500
    delivery = a_delivery(
        endpoint_for(store, url=hook_server.url),
        status=Status.FAILED,
        attempts=MAX_ATTEMPTS,
        next_attempt_at=None,
    )
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert webhook_delivery_retry(delivery=delivery) is True
    assert enqueued == [str(delivery.pk)]
    assert webhook_deliver(delivery=delivery) is False
    delivery.refresh_from_db()
    assert delivery.status == Status.FAILED
    assert delivery.attempts == MAX_ATTEMPTS + 1

    hook_server.status = 204
    webhook_delivery_retry(delivery=delivery)
    assert webhook_deliver(delivery=delivery) is True
    delivery.refresh_from_db()
    assert delivery.status == Status.SUCCEEDED
    assert webhook_delivery_retry(delivery=delivery) is False


# --- Admin -------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_creates_an_endpoint_with_a_secret_and_shows_it(admin_client, store):
    response = admin_client.post(
        reverse("admin:customers_webhookendpoint_add"),
        {
            "store": store.pk,
            "url": "https://shop.example.pl/hooks",
            "events": [UPDATED, CONSENT],
            "is_active": "on",
        },
    )
    endpoint = WebhookEndpoint.objects.get()
    assert response.status_code == 302
    change_url = reverse("admin:customers_webhookendpoint_change", args=[endpoint.pk])
    assert response.url == change_url
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.events == sorted([UPDATED, CONSENT])
    page = admin_client.get(change_url)
    assert endpoint.secret in page.content.decode()

    response = admin_client.post(
        reverse("admin:customers_webhookendpoint_add"),
        {"store": store.pk, "url": "ftp://shop.example.pl/", "events": [UPDATED]},
    )
    assert response.status_code == 200
    assert "url" in response.context["adminform"].form.errors


@pytest.mark.django_db
def test_admin_edit_keeps_the_secret(admin_client, store):
    endpoint = endpoint_for(store)
    secret = endpoint.secret
    response = admin_client.post(
        reverse("admin:customers_webhookendpoint_change", args=[endpoint.pk]),
        {"url": "https://shop.example.pl/new", "events": [CONSENT]},
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.events, endpoint.secret) == (
        "https://shop.example.pl/new",
        [CONSENT],
        secret,
    )
    assert endpoint.is_active is False


@pytest.mark.django_db
def test_admin_test_event_and_retry_actions(admin_client, store, enqueued):
    endpoint = endpoint_for(store)
    endpoint_for(store, is_active=False)
    response = admin_client.post(
        reverse("admin:customers_webhookendpoint_changelist"),
        {
            "action": "send_test_event",
            "_selected_action": list(
                WebhookEndpoint.objects.values_list("pk", flat=True)
            ),
        },
        follow=True,
    )
    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert delivery.endpoint == endpoint
    assert delivery.event == TEST_EVENT
    assert delivery.payload["data"]["store"] == "sklep"

    delivery.status = Status.FAILED
    delivery.save(update_fields=["status"])
    changelist = reverse("admin:customers_webhookdelivery_changelist")
    response = admin_client.post(
        changelist, {"action": "retry_now", "_selected_action": [delivery.pk]}
    )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == Status.PENDING

    page = admin_client.get(
        reverse("admin:customers_webhookdelivery_change", args=[delivery.pk])
    )
    assert page.status_code == 200
    assert "&quot;webhook.test&quot;" in page.content.decode()
    for query in [
        "",
        "?status__exact=pending",
        f"?event={TEST_EVENT}",
        f"?endpoint__id__exact={endpoint.pk}",
    ]:
        assert admin_client.get(changelist + query).status_code == 200


@pytest.mark.django_db
def test_webhook_test_event_refuses_an_inactive_endpoint(store):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        webhook_endpoint_test(endpoint=endpoint_for(store, is_active=False))
