"""Property-based checks of the whole REST API against its own OpenAPI schema.

Schemathesis generates requests from /api/schema/ (valid and invalid ones), sends
them in-process through the WSGI app with a read-write API key, and runs all its
default checks on every response: no 5xx, documented status codes, content types
and headers, response bodies matching the schema, invalid data rejected and valid
data accepted.
"""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.config._checks import (
    NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES,
    POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES,
    NegativeDataRejectionConfig,
    PositiveDataAcceptanceConfig,
)

from customers.services import api_key_create


@pytest.fixture
def auth_headers(store):
    _key, raw = api_key_create(
        store=store, name="schemathesis", scopes=["read", "write"]
    )
    return {"Authorization": f"Api-Key {raw}"}


@pytest.fixture
def api_schema(db, settings):
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    # As Django's test client does: requests must not close the test's connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    loaded = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    # A schema cannot state every business rule (a phone number that exists, a NIP
    # checksum, an email another customer owns); such requests get our documented
    # 400, which counts as handled. Everything else about "valid data accepted"
    # stays as Schemathesis defines it.
    loaded.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
        expected_statuses=[*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "400"]
    )
    # A batch over its limit is refused with 413 (documented), before validation.
    loaded.config.checks.negative_data_rejection = NegativeDataRejectionConfig(
        expected_statuses=[*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]
    )
    yield loaded
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case, auth_headers):
    case.call_and_validate(headers=auth_headers)
