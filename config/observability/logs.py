"""Request ids, the JSON log formatter and the log filters (see the package doc).

Nothing here touches models: LOGGING imports this module before the apps load.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.core.signals import request_finished
from django.dispatch import receiver
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
# What we accept from a proxy: letters, digits and a few separators, as uuids, AWS
# trace ids and nginx's $request_id are. Anything else (spaces, quotes, newlines
# that could forge log lines, kilobytes of junk) is replaced by our own id.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
PROBE_PATHS = frozenset({"/health/", "/ready/"})


class RequestIdMiddleware:
    """Take the proxy's request id if sane, else make one; echo it and log it."""

    def __init__(self, get_response):
        self.get_response = get_response
        # gunicorn's access log (when switched on) is its own logger, not in
        # LOGGING (configuring it there would drop gunicorn's handlers).
        access_log = logging.getLogger("gunicorn.access")
        if not any(isinstance(f, SkipProbesFilter) for f in access_log.filters):
            access_log.addFilter(SkipProbesFilter())

    def __call__(self, request):
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = (
            incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        )
        request.request_id = request_id
        # Not reset on the way out: Django logs a 4xx/5xx response after the
        # middleware returned it. request_finished clears it (_forget_request_id).
        request_id_var.set(request_id)
        response = self.get_response(request)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response


@receiver(request_finished, dispatch_uid="config.observability.forget_request_id")
def _forget_request_id(**kwargs) -> None:
    """The response is sent: later lines of this thread belong to no request."""
    request_id_var.set(None)


# A task logs with the id of the request that queued it (a task queued by a task
# passes its own on), a task queued by beat with its task id.
TASK_HEADER = "kartoteka_request_id"


@before_task_publish.connect(dispatch_uid="config.observability.task_request_id")
def _send_request_id_with_task(headers=None, **kwargs) -> None:
    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


@task_prerun.connect(dispatch_uid="config.observability.task_prerun_request_id")
def _take_request_id_in_task(task_id=None, task=None, **kwargs) -> None:
    request = getattr(task, "request", None)
    # A worker puts message headers on the request; an eager apply() keeps them
    # in request.headers.
    request_id = getattr(request, TASK_HEADER, None) or (
        getattr(request, "headers", None) or {}
    ).get(TASK_HEADER)
    _task_tokens[task_id] = request_id_var.set(request_id or task_id)


@task_postrun.connect(dispatch_uid="config.observability.task_postrun_request_id")
def _forget_request_id_after_task(task_id=None, **kwargs) -> None:
    # Back to what was there: an eager task inside a request leaves its id.
    token = _task_tokens.pop(task_id, None)
    try:
        request_id_var.reset(token)
    except (TypeError, ValueError):  # no token, or set in another context
        request_id_var.set(None)


_task_tokens: dict = {}


class RequestIdFilter(logging.Filter):
    """Add ``request_id`` (None outside a request) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class SkipProbesFilter(logging.Filter):
    """Drop access-log lines of the health probes (one every few seconds)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict):  # gunicorn.access: atoms, "U" is the path
            path = args.get("U")
        elif args and isinstance(args[0], str):  # django.server: "GET /x HTTP/1.1"
            parts = args[0].split(" ")
            path = parts[1].split("?", 1)[0] if len(parts) > 1 else None
        else:
            return True
        return path not in PROBE_PATHS


class JsonFormatter(_LibraryJsonFormatter):
    """One JSON object per line: time (UTC), level, logger, message, request_id.

    python-json-logger is well kept and already handles what a 30-line formatter of
    our own would get wrong (extras of any type, exceptions and stacks as text);
    this class only fixes our field names and an ISO-8601 UTC time first.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", "{levelname}{name}{message}{request_id}")
        kwargs.setdefault("style", "{")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        # Django's request loggers attach the request (or the socket) itself: its
        # text holds the query string, which may hold personal data.
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "request"])
        super().__init__(*args, **kwargs)

    def add_fields(self, log_data, record, message_dict) -> None:
        log_data["time"] = (
            datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        super().add_fields(log_data, record, message_dict)


def sentry_before_send(event: dict, hint: dict) -> dict:
    """Tag Sentry events with the request id, to find the matching log lines."""
    request_id = request_id_var.get()
    if request_id:
        event.setdefault("tags", {})["request_id"] = request_id
    return event
