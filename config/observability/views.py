"""Health probes (``/health/``, ``/ready/``) and the managers' system status page."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.generic import TemplateView

from config.observability.checks import (
    FAILURES_KEEP_SECONDS,
    FAILURES_KEPT,
    HEARTBEAT_STALE_SECONDS,
    cache_is_process_local,
    heartbeat_last,
    queue_heartbeats,
    queue_lengths,
    readiness_checks,
    task_failures_recent,
)
from customers.views import StaffPageMixin


@never_cache
@transaction.non_atomic_requests
def health(request):
    """Liveness: the process answers.

    No database: a database outage must not make an orchestrator restart every web
    process.
    """
    return JsonResponse({"status": "ok"})


@never_cache
@transaction.non_atomic_requests
def ready(request):
    """Readiness: 200 when the database, the broker and a worker answer, else 503.

    Cheap enough for a probe every few seconds: SELECT 1, a broker connection with
    a 2 s timeout and one cache read (the heartbeat a beat task writes every minute,
    rather than pinging workers over the broker, which takes a round of replies).

    Anyone may call it, so a failing database or broker is named by its error type
    only: their messages hold host names, ports and user names (the status page
    shows them to managers). The heartbeat's detail is only its age.
    """
    checks = readiness_checks()
    ok = all(check["ok"] for check in checks)
    return JsonResponse(
        {
            "status": "ok" if ok else "unavailable",
            "checks": {
                check["name"]: {
                    "ok": check["ok"],
                    "detail": check["detail"]
                    if check["name"] == "worker_heartbeat"
                    else check["error_type"],
                    "ms": check["ms"],
                }
                for check in checks
            },
        },
        status=200 if ok else 503,
    )


class SystemStatusView(StaffPageMixin, TemplateView):
    """Managers and superusers: the checks, queues, heartbeat and recent failures."""

    template_name = "ops/status.html"
    # Granted to the Manager (customers/migrations/0020_system_status_permission).
    permission_required = "customers.view_system_status"

    def get_context_data(self, **kwargs: Any) -> dict:
        context = super().get_context_data(**kwargs)
        checks = readiness_checks()
        queues_error = ""
        try:
            queues = queue_lengths()
            heartbeats = queue_heartbeats()
            for queue in queues:
                queue["heartbeat"] = heartbeats.get(queue["name"])
        except Exception as error:  # shown on the page
            queues = []
            queues_error = f"{type(error).__name__}: {error}"[:300]
        context.update(
            checks=checks,
            all_ok=all(check["ok"] for check in checks),
            queues=queues,
            queues_error=queues_error,
            heartbeat=heartbeat_last(),
            heartbeat_stale_seconds=HEARTBEAT_STALE_SECONDS,
            failures=task_failures_recent(),
            failures_kept=FAILURES_KEPT,
            failures_keep_days=FAILURES_KEEP_SECONDS // 86400,
            cache_is_local=cache_is_process_local(),
        )
        return context
