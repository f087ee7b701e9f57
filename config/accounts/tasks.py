from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMessage


@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=True)
def send_password_reset_task(*, subject: str, body: str, to_email: str) -> None:
    """Send a password reset link (queued by the reset form; see its docstring)."""
    EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [to_email]).send()
