"""A manager imports a customers file in the browser: upload, see how it was read and
what would change, confirm, and watch the progress page follow the import to its end.

Tasks are not sent to a broker here: the test runs each queued task itself, while the
page waits and polls the job's status, as a worker would.
"""

import importlib
import re
import tempfile
from pathlib import Path

import pytest

from customers import tasks
from customers.models import Customer, ImportJob
from tests.staff import press_sign_in

pytestmark = pytest.mark.e2e

SHOTS = str(Path(tempfile.gettempdir()) / "e2e-import-{}.png")

GOOD = (
    "email,first_name,last_name,phone,city,ulubiony kolor\n"
    "anna.nowak@example.pl,Anna,Nowak,+48601000001,Kraków,zielony\n"
    "jan.kowalski@example.pl,Jan,Kowalski,+48601000002,Gdańsk,niebieski\n"
    "ola.wisniewska@example.pl,Ola,Wiśniewska,+48601000003,Łódź,czerwony\n"
).encode()


@pytest.fixture(autouse=True)
def _import_role_permissions(db):
    """The roles' import permissions (migration 0010), also after a flushing test.

    tests/conftest.py's ROLE_GRANTS restores the roles after a transactional test
    flushed them, but not these grants yet.
    """
    from django.apps import apps

    from customers.roles import grant_role_permissions

    migration = importlib.import_module(
        "customers.migrations.0010_import_export_role_permissions"
    )
    grant_role_permissions(apps, "customers", migration.PERMISSIONS)


@pytest.fixture
def queued(monkeypatch):
    """The tasks the pages queue, kept for the test to run (no broker)."""
    sent = []
    for task in (tasks.import_job_check_task, tasks.import_job_run_task):
        monkeypatch.setattr(
            task,
            "apply_async",
            lambda args=None, kwargs=None, task=task, **options: sent.append(
                (task, args, kwargs)
            ),
        )
    return sent


def run_queued(queued):
    while queued:
        task, args, kwargs = queued.pop(0)
        task(*args, **kwargs)


def test_manager_imports_a_customers_file(live_server, page, make_staff, store, queued):
    make_staff("Manager", username="marta")

    page.goto(live_server.url + "/imports/")
    page.get_by_label("Nazwa użytkownika").fill("marta")
    page.get_by_label("Hasło").fill("test-pass-123")
    press_sign_in(page, "marta")
    page.wait_for_url(re.compile(r"/imports/$"))
    page.get_by_role("button", name="EN").click()
    page.wait_for_load_state()

    page.get_by_role("link", name="Import a file").first.click()
    page.wait_for_url(re.compile(r"/imports/new/$"))
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "klienci.csv", "mimeType": "text/csv", "buffer": GOOD}]
    )
    page.screenshot(path=SHOTS.format("upload"), full_page=True)
    page.get_by_role("button", name="Upload and check").click()

    # Waiting for the check: the page polls; the "worker" runs the check now.
    page.wait_for_url(re.compile(r"/imports/\d+/$"))
    assert page.locator("[data-import-status]").is_visible()
    page.screenshot(path=SHOTS.format("checking"), full_page=True)
    job = ImportJob.objects.get()
    run_queued(queued)

    # The page notices by itself and shows what the dry run found.
    page.get_by_role("button", name="Confirm and import").wait_for()
    assert page.locator("[data-count='created']").inner_text() == "3"
    assert page.locator("[data-count='updated']").inner_text() == "0"
    assert page.locator("[data-count='errors']").inner_text() == "0"
    preview = page.locator("table.table--preview")
    assert "anna.nowak@example.pl" in preview.inner_text()
    assert "first_name" in preview.locator("thead").inner_text()
    assert "ulubiony kolor" in page.get_by_text("Columns not imported").inner_text()
    assert Customer.objects.count() == 0
    page.screenshot(path=SHOTS.format("check"), full_page=True)

    page.get_by_role("button", name="Confirm and import").click()
    page.wait_for_load_state()
    assert page.locator("[role='progressbar']").is_visible()
    page.screenshot(path=SHOTS.format("queued"), full_page=True)
    run_queued(queued)

    page.get_by_text("The import is finished.").wait_for()
    assert page.locator("[data-count='created']").inner_text() == "3"
    page.screenshot(path=SHOTS.format("done"), full_page=True)
    assert Customer.objects.count() == 3
    job.refresh_from_db()
    assert (job.status, job.created, job.rows_done) == ("done", 3, 3)

    page.get_by_role("link", name="All imports").click()
    row = page.locator("table tbody tr").first
    assert "klienci.csv" in row.inner_text()
    assert row.locator(".hash").get_attribute("title") == job.sha256
    page.screenshot(path=SHOTS.format("history"), full_page=True)
