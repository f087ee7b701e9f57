"""Observability: request ids in logs, JSON log lines, health checks, worker status.

- ``logs``: ``RequestIdMiddleware`` gives every request an id (the proxy's
  ``X-Request-ID`` when it is a sane token, else a new one), returns it in the
  response header and keeps it in a contextvar; ``RequestIdFilter`` puts it on every
  log record, so one request's lines can be found together across web logs, the
  proxy's and Sentry. ``JsonFormatter`` writes one JSON object per line.
- ``checks``: the readiness checks (database, broker, worker heartbeat), queue
  lengths, and the worker heartbeat and task failures kept in the Django cache.
- ``views``: ``/health/`` (liveness), ``/ready/`` (readiness) and ``/status/`` (the
  managers' system status page).

Every process that configures logging imports this package (LOGGING names the
formatter and filters in ``logs``), workers included: importing ``checks`` here
registers the heartbeat task and connects the task-failure handler there too.
"""

from config.observability import checks  # noqa: F401 - registers task and signals
