from celery import shared_task

from orders.services import customer_statuses_refresh


@shared_task
def customer_statuses_refresh_task() -> dict[str, int]:
    """Nightly: mend lead/buyer statuses after bulk writes."""
    return customer_statuses_refresh()
