from datetime import timedelta

from axes.models import AccessFailureLog, AccessLog
from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone


@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=True)
def send_password_reset_task(*, subject: str, body: str, to_email: str) -> None:
    """Send a password reset link (queued by the reset form; see its docstring)."""
    EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [to_email]).send()


@shared_task(ignore_result=True)
def sign_in_log_prune_task() -> int:
    """Forget staff sign-ins (who, when, from which address) after SIGN_IN_LOG_DAYS.

    django-axes logs every sign-in and failure; the addresses are personal data
    of the staff, kept as long as they serve security reviews, not forever.
    """
    before = timezone.now() - timedelta(days=settings.SIGN_IN_LOG_DAYS)
    deleted = 0
    for model in (AccessLog, AccessFailureLog):
        deleted += model.objects.filter(attempt_time__lt=before).delete()[0]
    return deleted
