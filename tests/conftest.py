import importlib

import pytest
from django.contrib.auth.models import Group

from tests.factories.customers import CustomerFactory, StoreFactory
from tests.staff import StaffClient


@pytest.fixture
def client():
    """The test client; ``force_login`` gives both factors (tests/staff.py)."""
    return StaffClient()


@pytest.fixture
def admin_client(db, admin_user):
    client = StaffClient()
    client.force_login(admin_user)
    return client


@pytest.fixture
def store(db):
    return StoreFactory(code="sklep", name="Sklep Główny")


@pytest.fixture
def customer(db):
    return CustomerFactory()


# Data migrations that grant role permissions, in order. A transactional test
# (live server, real worker) flushes the database, groups included; tests after it
# get the roles back from the same tables the migrations use.
ROLE_GRANTS = [
    ("customers", "customers.roles", "CUSTOMERS_PERMISSIONS"),
    ("orders", "customers.roles", "ORDERS_PERMISSIONS"),
    ("customers", "customers.migrations.0005_api_role_permissions", "PERMISSIONS"),
    ("orders", "orders.migrations.0004_cart_role_permissions", "PERMISSIONS"),
    ("consents", "customers.roles", "CONSENTS_PERMISSIONS"),
    (
        "customers",
        "customers.migrations.0010_import_export_role_permissions",
        "PERMISSIONS",
    ),
    ("orders", "orders.migrations.0007_order_export_role_permissions", "PERMISSIONS"),
    (
        "customers",
        "customers.migrations.0014_interaction_role_permissions",
        "PERMISSIONS",
    ),
    ("segments", "segments.migrations.0002_rfm_grid_and_roles", "PERMISSIONS"),
    ("campaigns", "campaigns.migrations.0003_role_permissions", "PERMISSIONS"),
    ("customers", "customers.migrations.0017_merge_role_permissions", "PERMISSIONS"),
    ("segments", "segments.migrations.0005_dashboard_roles", "PERMISSIONS"),
]


def ensure_roles() -> None:
    from django.apps import apps

    from customers.roles import SUPPORT, grant_role_permissions

    if Group.objects.filter(name=SUPPORT).exists():
        return
    for app_label, module, table in ROLE_GRANTS:
        grant_role_permissions(
            apps, app_label, getattr(importlib.import_module(module), table)
        )
    # Grants by codename (custom permissions: no <action>_<model> table).
    for module in (
        "customers.migrations.0020_system_status_permission",
        "customers.migrations.0022_full_contacts_roles",
    ):
        importlib.import_module(module).grant(apps, None)


@pytest.fixture
def make_staff(db, django_user_model):
    """Create a staff user in the given role groups (names as the roles migration)."""
    ensure_roles()

    def make(*roles: str, username: str | None = None):
        user = django_user_model.objects.create_user(
            username=username or f"user-{'-'.join(roles) or 'none'}",
            password="test-pass-123",
            is_staff=True,
        )
        for role in roles:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def make_api_client(db):
    """An APIClient holding a new key for ``store`` with ``scopes``."""
    from rest_framework.test import APIClient

    from customers.services import api_key_create

    def make(store, scopes=("read", "write")):
        _key, raw = api_key_create(store=store, name="test", scopes=scopes)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
        client.raw_key = raw
        return client

    return make


@pytest.fixture
def api(store, make_api_client):
    """A read-write API client for ``store``."""
    return make_api_client(store)


def ensure_purposes() -> None:
    """The purposes and texts the consents migration seeds (see ensure_roles)."""
    from django.apps import apps

    from consents.models import ConsentPurpose

    if ConsentPurpose.objects.exists():
        return
    seed = importlib.import_module("consents.migrations.0002_purposes_and_roles").seed
    seed(apps, None)


@pytest.fixture
def purposes(db):
    """The seeded consent purposes, by code."""
    from consents.models import ConsentPurpose

    ensure_purposes()
    return {purpose.code: purpose for purpose in ConsentPurpose.objects.all()}


@pytest.fixture(autouse=True)
def segments_tasks_sent(monkeypatch):
    """What the segments app queued, recorded instead of sent to a broker.

    Pages, the admin and the orders and consents services queue a segment
    rebuild or a metrics recompute once their transaction commits; in the test
    process that would publish to whatever broker the settings name (the
    machine's Redis when nothing is set). Tests run the services directly, and
    tests/integration runs a real worker. Each entry: (task name, args, kwargs).
    """
    from segments import tasks

    sent = []
    for task in (
        tasks.segment_rebuild_task,
        tasks.metrics_recompute_task,
        tasks.metrics_recompute_queued_task,
    ):

        def record(args=None, kwargs=None, *_args, _name=task.name, **_options):
            sent.append((_name, tuple(args or ()), dict(kwargs or {})))

        monkeypatch.setattr(task, "apply_async", record)
    return sent


@pytest.fixture(autouse=True)
def campaigns_tasks_sent(request, monkeypatch):
    """What the campaigns app queued, recorded instead of sent to a broker.

    As ``segments_tasks_sent``; tests call the tasks as functions, in the order a
    worker would. Integration tests (a real worker) publish for real.
    """
    if request.node.get_closest_marker("integration"):
        return []
    from campaigns import tasks

    sent = []
    for task in (
        tasks.campaign_prepare_task,
        tasks.campaign_send_task,
        tasks.campaigns_start_due_task,
        tasks.campaigns_watch_task,
        tasks.flows_run_task,
        tasks.flow_send_task,
    ):

        def record(args=None, kwargs=None, *_args, _name=task.name, **_options):
            sent.append((_name, tuple(args or ()), dict(kwargs or {})))

        monkeypatch.setattr(task, "apply_async", record)
    return sent


@pytest.fixture
def smtp_sink(settings):
    """A real SMTP server receiving what the app sends (Django's SMTP backend)."""
    from tests.smtp import SmtpSink

    with SmtpSink() as sink:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = sink.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        yield sink
