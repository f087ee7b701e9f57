import json

import pytest
from kombu import pools

from config import celery_app
from customers.models import WebhookDelivery, WebhookEndpoint
from customers.services import customer_upsert
from customers.webhooks import webhook_endpoint_create, webhook_verify
from tests.customers.test_webhooks import HookServer
from tests.factories.customers import StoreFactory
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_broker_pool():
    """Leave the app a usable broker pool once ``celery_worker`` has torn down.

    Its teardown calls ``celery_app.pool.force_close_all()``, which marks the pool
    closed for good; the next test using a worker then fails with "Acquire on
    closed pool". Requested before ``celery_worker`` so it runs after its teardown.
    Remove once the conftest closes with ``force_close_all(close_pool=False)``.
    """
    yield
    pools.reset()
    celery_app._after_fork()  # forgets the app's pools, as after a fork


@pytest.fixture
def hook_server():
    with HookServer() as server:
        yield server


def test_worker_delivers_a_signed_customer_updated_webhook(
    fresh_broker_pool, celery_worker, hook_server
):
    store = StoreFactory(code="sklep")
    endpoint = webhook_endpoint_create(
        store=store,
        url=hook_server.url,
        events=[WebhookEndpoint.EventType.CUSTOMER_UPDATED],
    )

    # Autocommit (transactional_db): the task is queued as the upsert commits.
    customer, created = customer_upsert(
        store=store, external_id="C-1", email="anna@example.pl", first_name="Anna"
    )
    assert created

    assert wait_for(lambda: hook_server.requests), "the worker sent nothing"
    (request,) = hook_server.requests
    assert webhook_verify(
        secret=endpoint.secret,
        header=request.headers["kartoteka-signature"],
        body=request.body,
    )
    envelope = json.loads(request.body)
    assert envelope["event"] == "customer.updated"
    assert envelope["data"]["customer"]["id"] == customer.pk
    assert envelope["data"]["customer"]["identities"] == [
        {"store": "sklep", "external_id": "C-1"}
    ]

    delivery = WebhookDelivery.objects.get()
    assert request.headers["kartoteka-delivery"] == str(delivery.pk)

    def recorded():
        delivery.refresh_from_db()
        return delivery.status == WebhookDelivery.Status.SUCCEEDED

    assert wait_for(recorded), "the worker did not record the delivery"
    assert delivery.attempts == 1
    assert delivery.response_status == 200
