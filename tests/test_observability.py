"""Request ids, JSON logs, the health probes and the system status page."""

import io
import json
import logging
import sys
import time
import uuid

import pytest
from celery import shared_task
from django.core.cache import cache
from django.urls import reverse
from kombu import Connection, Exchange, Queue

from config.observability import checks
from config.observability.logs import (
    JsonFormatter,
    RequestIdFilter,
    SkipProbesFilter,
    request_id_var,
)


@shared_task(name="tests.test_observability.failing_task")
def failing_task(order_id):
    raise ValueError(f"order {order_id} is broken")


@pytest.fixture(autouse=True)
def clean_cache():
    cache.delete_many([checks.HEARTBEAT_CACHE_KEY, checks.FAILURES_CACHE_KEY])
    yield
    cache.delete_many([checks.HEARTBEAT_CACHE_KEY, checks.FAILURES_CACHE_KEY])


@pytest.fixture
def broker():
    """The test settings' broker; the test is skipped when none answers."""
    try:
        checks._check_broker()
    except Exception as error:  # noqa: BLE001
        pytest.skip(f"no broker answers at the test settings' URL: {error}")


@pytest.fixture
def json_lines():
    """Records of the django loggers as JSON lines, as the production handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


# Request ids ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_sane_request_id_from_the_proxy_is_echoed(client):
    response = client.get("/health/", headers={"X-Request-ID": "edge-42.abc_DEF"})

    assert response["X-Request-ID"] == "edge-42.abc_DEF"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "incoming", [None, "", "two words", "forged\nline", "x" * 129, "<script>"]
)
def test_a_missing_or_odd_request_id_is_replaced_by_a_new_one(client, incoming):
    headers = {"X-Request-ID": incoming} if incoming is not None else {}

    first = client.get("/health/", headers=headers)["X-Request-ID"]
    second = client.get("/health/", headers=headers)["X-Request-ID"]

    assert first != incoming
    assert len(first) == 32
    int(first, 16)
    assert first != second


@pytest.mark.django_db
def test_log_lines_are_json_with_the_request_id(client, json_lines):
    response = client.get("/no-such-page/", headers={"X-Request-ID": "req-123"})

    assert response.status_code == 404
    (line,) = [line for line in json_lines() if "/no-such-page/" in line["message"]]
    assert line["request_id"] == "req-123"
    assert line["level"] == "WARNING"
    assert line["logger"] == "django.request"
    assert line["status_code"] == 404
    assert line["time"].endswith("Z")
    assert "request" not in line
    assert request_id_var.get() is None


def test_json_lines_carry_exceptions_and_extra_fields():
    try:
        raise RuntimeError("broken")
    except RuntimeError:
        record = logging.LogRecord(
            "kartoteka",
            logging.ERROR,
            __file__,
            1,
            "Failed %s",
            ("job",),
            sys.exc_info(),
        )
    record.store = "sklep"
    token = request_id_var.set("abc")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)

    line = json.loads(JsonFormatter().format(record))

    assert list(line)[:5] == ["time", "level", "logger", "message", "request_id"]
    assert line["message"] == "Failed job"
    assert line["request_id"] == "abc"
    assert line["store"] == "sklep"
    assert "RuntimeError: broken" in line["exc_info"]


@pytest.mark.parametrize(
    ("args", "kept"),
    [
        (("GET /health/ HTTP/1.1", "200", "15"), False),
        (("GET /ready/?x=1 HTTP/1.1", "503", "15"), False),
        (("GET /customers/ HTTP/1.1", "200", "15"), True),
        ({"U": "/ready/", "s": "200"}, False),
        ({"U": "/orders/", "s": "200"}, True),
    ],
)
def test_probes_are_left_out_of_the_access_log(args, kept):
    record = logging.LogRecord("django.server", logging.INFO, "", 1, "x", None, None)
    record.args = args

    assert SkipProbesFilter().filter(record) is kept


# Probes -------------------------------------------------------------------------


@pytest.mark.django_db
def test_health_answers_without_login_or_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get(reverse("health"))

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_with_database_broker_and_a_fresh_heartbeat(client, broker):
    checks.heartbeat_record(hostname="worker@test")

    response = client.get(reverse("ready"))

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "broker": True,
        "worker_heartbeat": True,
    }


@pytest.mark.django_db
def test_ready_is_503_with_a_stale_heartbeat_and_says_which_check(client):
    cache.set(
        checks.HEARTBEAT_CACHE_KEY,
        {"at": time.time() - checks.HEARTBEAT_STALE_SECONDS - 5, "hostname": "w"},
    )

    response = client.get(reverse("ready"))

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["worker_heartbeat"]["ok"] is False
    assert "heartbeat" in body["checks"]["worker_heartbeat"]["detail"]


@pytest.mark.django_db
def test_ready_is_503_without_any_heartbeat(client):
    response = client.get(reverse("ready"))

    assert response.status_code == 503
    assert response.json()["checks"]["worker_heartbeat"]["ok"] is False


@pytest.mark.django_db
def test_the_heartbeat_task_records_a_heartbeat():
    checks.worker_heartbeat_task.apply()

    assert checks.heartbeat_last()["age_seconds"] < 5


@pytest.mark.django_db
def test_beat_sends_a_heartbeat_to_every_queue_and_each_is_kept_apart(
    client, make_staff, settings
):
    from config.celery import QUEUES

    sent = {
        entry.get("options", {}).get("queue", "default")
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] == checks.worker_heartbeat_task.name
    }
    assert sent == set(QUEUES)

    checks.worker_heartbeat_task.apply(routing_key="campaigns")
    heartbeats = checks.queue_heartbeats()
    assert heartbeats["campaigns"]["age_seconds"] < 5
    assert heartbeats["imports"] is None
    # Only the default queue's heartbeat makes the web ready.
    assert checks.heartbeat_last() is None

    client.force_login(make_staff("Manager"))
    html = client.get(reverse("status")).content.decode()
    row = html.split('data-queue="campaigns"')[1].split("</tr>")[0]
    assert "text-warning" not in row.split("data-queue-heartbeat")[1][:40]
    imports = html.split('data-queue="imports"')[1].split("</tr>")[0]
    assert 'data-queue-heartbeat class="text-warning"' in imports


# Task failures ------------------------------------------------------------------


def test_a_failing_task_is_recorded_newest_first():
    failing_task.apply(args=[7])
    failing_task.apply(args=[8])

    failures = checks.task_failures_recent()

    assert [failure["exception"] for failure in failures] == [
        "ValueError: order 8 is broken",
        "ValueError: order 7 is broken",
    ]
    assert failures[0]["task_name"] == "tests.test_observability.failing_task"
    assert "raise ValueError" in failures[0]["traceback"]


def test_failures_are_capped():
    for number in range(checks.FAILURES_KEPT + 5):
        checks.record_task_failure(
            sender=failing_task, task_id=str(number), exception=ValueError(number)
        )

    failures = checks.task_failures_recent()

    assert len(failures) == checks.FAILURES_KEPT
    assert failures[0]["task_id"] == str(checks.FAILURES_KEPT + 4)


# Status page --------------------------------------------------------------------


@pytest.mark.django_db
def test_status_page_is_for_managers(client, make_staff):
    failing_task.apply(args=[9])
    checks.heartbeat_record(hostname="worker@test")
    client.force_login(make_staff("Manager"))

    response = client.get(reverse("status"))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-check="database" data-ok="true"' in html
    assert 'data-check="worker_heartbeat" data-ok="true"' in html
    assert "ValueError: order 9 is broken" in html
    assert "data-cache-local" in html  # the tests' cache is local memory


@pytest.mark.django_db
def test_status_page_for_superusers(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="x-pass-123")
    client.force_login(admin)

    assert client.get(reverse("status")).status_code == 200


@pytest.mark.django_db
def test_status_page_refuses_other_roles_and_sends_anonymous_to_login(
    client, make_staff
):
    anonymous = client.get(reverse("status"))
    client.force_login(make_staff("Support"))
    support = client.get(reverse("status"))

    assert anonymous.status_code == 302
    assert anonymous.url.startswith(reverse("login"))
    assert support.status_code == 403


@pytest.mark.django_db
def test_queue_lengths_from_the_broker(client, make_staff, settings, broker):
    from config.celery import app

    name = f"obs-test-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_ROUTES = {"tests.*": {"queue": name}}
    queue = Queue(name, Exchange(name), routing_key=name)
    with Connection(app.conf.broker_url) as conn:
        producer = conn.Producer()
        for number in range(3):
            producer.publish(
                {"n": number},
                exchange=queue.exchange,
                routing_key=name,
                declare=[queue],
            )
        try:
            lengths = {queue["name"]: queue for queue in checks.queue_lengths()}
            client.force_login(make_staff("Manager"))
            html = client.get(reverse("status")).content.decode()
        finally:
            queue(conn.default_channel).delete()

    assert lengths[name]["messages"] == 3
    assert "default" in lengths
    assert f'data-queue="{name}" data-messages="3"' in html


def test_a_task_queued_in_a_request_logs_with_its_request_id():
    from config.observability.logs import TASK_HEADER, _send_request_id_with_task

    headers = {}
    token = request_id_var.set("web-77")
    try:
        _send_request_id_with_task(headers=headers)
    finally:
        request_id_var.reset(token)
    failing_task.apply(args=[1], headers=headers, task_id="task-1")
    failing_task.apply(args=[2], task_id="task-2")

    failures = checks.task_failures_recent()

    assert headers == {TASK_HEADER: "web-77"}
    assert [failure["request_id"] for failure in failures] == ["task-2", "web-77"]
    assert request_id_var.get() is None


def test_an_eager_task_inside_a_request_leaves_the_request_id():
    token = request_id_var.set("web-88")
    try:
        checks.worker_heartbeat_task.apply()
        assert request_id_var.get() == "web-88"
    finally:
        request_id_var.reset(token)


@pytest.mark.django_db
def test_ready_names_a_broken_broker_without_its_address(client, monkeypatch):
    from config.celery import app

    checks.heartbeat_record(hostname="worker@test")
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    # Celery reads the environment's CELERY_BROKER_URL before its own setting.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")

    started = time.monotonic()
    response = client.get(reverse("ready"))

    assert time.monotonic() - started < 3 * checks.BROKER_TIMEOUT_SECONDS
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] is False
    assert broker["detail"] == "OperationalError"
    assert "127.0.0.1" not in response.content.decode()
