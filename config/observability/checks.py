"""Readiness checks, queue lengths, the worker heartbeat and recent task failures.

The heartbeat and the failures live in the Django cache: the web processes see
what the workers wrote only when CACHE_URL points to a shared cache (Redis); the
status page warns when the cache is one process's own.
"""

from __future__ import annotations

import logging
import time
import traceback as traceback_module
from datetime import UTC, datetime

from celery import shared_task
from celery.signals import task_failure, worker_ready
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from config.observability.logs import request_id_var

HEARTBEAT_CACHE_KEY = "kartoteka:observability:worker-heartbeat"
# Per queue: the same task, sent by beat to each queue, says which worker took it.
QUEUE_HEARTBEAT_CACHE_KEY = "kartoteka:observability:queue-heartbeat:{queue}"
FAILURES_CACHE_KEY = "kartoteka:observability:task-failures"
# The beat task writes the heartbeat every minute: three missed beats mean no
# worker takes tasks from the default queue (or beat itself is down).
HEARTBEAT_STALE_SECONDS = 180
FAILURES_KEPT = 100
FAILURES_KEEP_SECONDS = 7 * 24 * 3600
TRACEBACK_MAX_CHARS = 4000
EXCEPTION_MAX_CHARS = 500
BROKER_TIMEOUT_SECONDS = 2.0


def _default_queue() -> str:
    return getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", None) or "celery"


def heartbeat_record(*, hostname: str = "", queue: str | None = None) -> None:
    """Note that a worker took a task from ``queue`` (the default queue) now."""
    value = {"at": time.time(), "hostname": hostname}
    queue = queue or _default_queue()
    if queue == _default_queue():
        cache.set(HEARTBEAT_CACHE_KEY, value, timeout=None)
    cache.set(QUEUE_HEARTBEAT_CACHE_KEY.format(queue=queue), value, timeout=None)


def _heartbeat(value: dict | None) -> dict | None:
    if not value:
        return None
    return {
        "at": datetime.fromtimestamp(value["at"], tz=UTC),
        "hostname": value.get("hostname", ""),
        "age_seconds": max(0.0, time.time() - value["at"]),
    }


def heartbeat_last() -> dict | None:
    """The default queue's last heartbeat: ``{"at", "hostname", "age_seconds"}``."""
    return _heartbeat(cache.get(HEARTBEAT_CACHE_KEY))


def queue_heartbeats() -> dict[str, dict | None]:
    """Each queue's last heartbeat (as :func:`heartbeat_last`), or None."""
    names = queue_names()
    keys = {QUEUE_HEARTBEAT_CACHE_KEY.format(queue=name): name for name in names}
    found = cache.get_many(list(keys))
    return {name: _heartbeat(found.get(key)) for key, name in keys.items()}


@shared_task(
    name="config.observability.worker_heartbeat_task", ignore_result=True, bind=True
)
def worker_heartbeat_task(self) -> None:
    """Run by beat every minute on each queue: whoever takes it proves it moves.

    The default queue's heartbeat is also the readiness check's.
    """
    delivery = self.request.delivery_info or {}
    heartbeat_record(
        hostname=self.request.hostname or "",
        queue=delivery.get("routing_key") or None,
    )


@worker_ready.connect
def _worker_ready_heartbeat(sender=None, **kwargs) -> None:
    try:
        heartbeat_record(hostname=getattr(sender, "hostname", "") or "")
    except Exception:  # the beat task tries again within a minute
        logging.getLogger(__name__).warning("Could not record the worker heartbeat")


@task_failure.connect
def record_task_failure(
    sender=None, task_id=None, exception=None, traceback=None, einfo=None, **kwargs
) -> None:
    """Keep the last FAILURES_KEPT failures (newest first) for the status page.

    A read-modify-write of one cache entry: two failures at the same instant on
    two workers may lose one of them, which a status overview can afford.
    """
    if einfo is not None:
        text = str(einfo.traceback)
    elif traceback is not None:
        text = "".join(traceback_module.format_tb(traceback))
    else:
        text = ""
    failure = {
        "task_name": getattr(sender, "name", None) or str(sender),
        "task_id": str(task_id or ""),
        # The request that queued the task, or the task id: the worker's log lines.
        "request_id": request_id_var.get() or "",
        "exception": f"{type(exception).__name__}: {exception}"[:EXCEPTION_MAX_CHARS],
        "traceback": text[-TRACEBACK_MAX_CHARS:],
        "at": time.time(),
    }
    try:
        failures = cache.get(FAILURES_CACHE_KEY) or []
        failures = [failure, *failures][:FAILURES_KEPT]
        cache.set(FAILURES_CACHE_KEY, failures, timeout=FAILURES_KEEP_SECONDS)
    except Exception:  # a cache outage must not hide the failure
        logging.getLogger(__name__).exception("Could not record a task failure")


def task_failures_recent() -> list[dict]:
    """The recorded failures, newest first, with ``at`` as a datetime."""
    return [
        {**failure, "at": datetime.fromtimestamp(failure["at"], tz=UTC)}
        for failure in cache.get(FAILURES_CACHE_KEY) or []
    ]


def cache_is_process_local() -> bool:
    """Whether the cache is one process's own (workers' writes never reach the web)."""
    backend = settings.CACHES["default"]["BACKEND"]
    return backend.rsplit(".", 1)[-1] in {"LocMemCache", "DummyCache"}


# Checks ----------------------------------------------------------------------


def _check(name: str, function) -> dict:
    started = time.perf_counter()
    error_type = ""
    try:
        detail = function()
    except Exception as error:  # any failure is the check's answer
        error_type = type(error).__name__
        detail = f"{error_type}: {error}"[:300]
    return {
        "name": name,
        "ok": not error_type,
        "error_type": error_type,
        "detail": detail or "",
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return ""


def _broker_connection():
    from config.celery import app

    return app.connection_for_read(
        connect_timeout=BROKER_TIMEOUT_SECONDS,
        transport_options={
            "socket_timeout": BROKER_TIMEOUT_SECONDS,
            "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
        },
    )


def _check_broker() -> str:
    with _broker_connection() as conn:
        # max_retries=0: one attempt, so a broker that is down answers in ~2 s.
        conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
        conn.default_channel  # noqa: B018 - Redis pings here, AMQP opens a channel
    return ""


class HeartbeatStale(Exception):
    """No worker heartbeat, or too old a one (the message says which)."""


def _check_worker_heartbeat() -> str:
    beat = heartbeat_last()
    if beat is None:
        raise HeartbeatStale("no worker heartbeat recorded")
    if beat["age_seconds"] > HEARTBEAT_STALE_SECONDS:
        raise HeartbeatStale(
            f"last worker heartbeat {beat['age_seconds']:.0f} s ago "
            f"(limit {HEARTBEAT_STALE_SECONDS} s)"
        )
    return f"{beat['age_seconds']:.0f} s ago"


def readiness_checks() -> list[dict]:
    """Database, broker and worker heartbeat: each with ok, detail and duration."""
    return [
        _check("database", _check_database),
        _check("broker", _check_broker),
        _check("worker_heartbeat", _check_worker_heartbeat),
    ]


def queue_names() -> list[str]:
    """The default queue and every queue named in the task routes or queues."""
    conf = settings
    names = [getattr(conf, "CELERY_TASK_DEFAULT_QUEUE", None) or "celery"]
    routes = getattr(conf, "CELERY_TASK_ROUTES", None) or {}
    if isinstance(routes, dict):
        for route in routes.values():
            queue = route.get("queue") if isinstance(route, dict) else None
            if isinstance(queue, str):
                names.append(queue)
    for queue in getattr(conf, "CELERY_TASK_QUEUES", None) or ():
        names.append(getattr(queue, "name", queue))
    return list(dict.fromkeys(name for name in names if isinstance(name, str)))


def queue_lengths() -> list[dict]:
    """Messages waiting per queue, from the broker: Redis or RabbitMQ alike.

    A passive queue_declare returns the message count on AMQP, and kombu's Redis
    transport answers it with LLEN over the queue's priority lists. A queue nobody
    declared yet (on Redis: one that is empty) counts as 0 with declared False.
    """
    from amqp.exceptions import ChannelError as AmqpChannelError
    from kombu.exceptions import ChannelError

    lengths = []
    with _broker_connection() as conn:
        conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
        for name in queue_names():
            # A failed passive declare closes an AMQP channel: one channel per queue.
            channel = conn.channel()
            try:
                _name, count, consumers = channel.queue_declare(
                    queue=name, passive=True
                )
                lengths.append(
                    {
                        "name": name,
                        "messages": count,
                        "consumers": consumers,
                        "declared": True,
                    }
                )
            except (ChannelError, AmqpChannelError):
                lengths.append(
                    {"name": name, "messages": 0, "consumers": 0, "declared": False}
                )
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: S110 - already closed by the broker
                    pass
    return lengths
