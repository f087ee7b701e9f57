from __future__ import annotations

from celery import shared_task

from consents.retention import retention_apply


@shared_task
def retention_apply_task(dry_run: bool = False) -> dict[str, int]:
    """Every night: apply the retention policies (settings.RETENTION)."""
    return retention_apply(dry_run=dry_run)
