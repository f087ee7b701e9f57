import pytest

from customers.models import Customer
from orders.tasks import customer_statuses_refresh_task
from tests.factories.customers import CustomerFactory
from tests.factories.orders import OrderFactory
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


def test_worker_mends_lead_and_buyer_statuses(celery_worker):
    # Written around the services, as a bulk import would: statuses are stale.
    stale_lead = CustomerFactory(status=Customer.Status.LEAD)
    OrderFactory(customer=stale_lead)
    stale_buyer = CustomerFactory(status=Customer.Status.BUYER)

    customer_statuses_refresh_task.delay()

    def mended():
        stale_lead.refresh_from_db()
        stale_buyer.refresh_from_db()
        return (
            stale_lead.status == Customer.Status.BUYER
            and stale_buyer.status == Customer.Status.LEAD
        )

    assert wait_for(mended), "the worker did not run the task"
