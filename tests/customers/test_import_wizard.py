"""The import wizard: upload, check (dry run), confirm, run, history, downloads."""

import csv
import hashlib
import io
from datetime import UTC, datetime

import psycopg
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from customers import tasks
from customers.importers import registry
from customers.importers.customers import customers_import
from customers.imports import (
    _set_status,
    import_job_check,
    import_job_confirm,
    import_job_create,
    import_job_run,
)
from customers.models import Customer, ImportJob

pytestmark = pytest.mark.django_db

Status = ImportJob.Status

GOOD = (
    "email,first_name,last_name,phone,city,ulubiony kolor\n"
    "anna.nowak@example.pl,Anna,Nowak,+48601000001,Kraków,zielony\n"
    "jan.kowalski@example.pl,Jan,Kowalski,+48601000002,Gdańsk,niebieski\n"
    "ola.wisniewska@example.pl,Ola,Wiśniewska,+48601000003,Łódź,czerwony\n"
).encode()
FORMULA = '=HYPERLINK("http://evil.example/x","klik")'
BAD = (
    "email,first_name,last_name,phone,city\n"
    "anna.nowak@example.pl,Anna,Nowak,+48601000001,Kraków\n"
    f'"{FORMULA.replace(chr(34), chr(34) * 2)}",Zła,Linia,+48601000009,Opole\n'
    "jan.kowalski@example.pl,Jan,Kowalski,+48601000002,Gdańsk\n"
).encode()


@pytest.fixture(autouse=True)
def _english(client):
    """English messages: the code's default and the staff pages' language cookie."""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def sent(monkeypatch):
    """Tasks sent after commit, recorded instead of going to a broker."""
    calls = []

    def recorder(task):
        def apply_async(args=None, kwargs=None, task_id=None, **options):
            # Every task carries the uploader's language (English in these tests).
            assert kwargs == {"language": "en"}
            calls.append((task.name.rsplit(".", 1)[-1], args, task_id))

        return apply_async

    for task in (tasks.import_job_check_task, tasks.import_job_run_task):
        monkeypatch.setattr(task, "apply_async", recorder(task))
    return calls


@pytest.fixture
def manager(client, make_staff):
    user = make_staff("Manager", username="marta")
    user.first_name, user.last_name = "Marta", "Zięba"
    user.save()
    client.force_login(user)
    return user


def upload(client, store, content=GOOD, name="klienci.csv", **fields):
    data = {
        "file": SimpleUploadedFile(name, content, content_type="text/csv"),
        "kind": "customers",
        "store": store.pk,
        "format": "auto",
        "on_error": "abort",
        **fields,
    }
    return client.post(reverse("imports:upload"), data)


def uploaded(client, store, captured, **kwargs) -> ImportJob:
    """Upload through the page, run the queued check; the checked job."""
    with captured(execute=True):
        response = upload(client, store, **kwargs)
    assert response.status_code == 302, response.content.decode()[:3000]
    job = ImportJob.objects.latest("pk")
    assert response.url == reverse("imports:detail", args=[job.pk])
    tasks.import_job_check_task(job.pk)
    job.refresh_from_db()
    return job


def confirmed_and_run(client, job, captured) -> ImportJob:
    with captured(execute=True):
        response = client.post(reverse("imports:confirm", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    tasks.import_job_run_task(job.pk)
    job.refresh_from_db()
    return job


def counts(job: ImportJob) -> tuple:
    return (job.rows, job.created, job.updated, job.unchanged, job.errors)


def report_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body)))


# ---------- The whole way through ----------


def test_upload_check_confirm_and_run_a_customers_file(
    client, manager, store, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, store)
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert job.status == Status.UPLOADED
    assert job.sha256 == hashlib.sha256(GOOD).hexdigest()
    assert (job.size, job.filename, job.created_by) == (
        len(GOOD),
        "klienci.csv",
        manager,
    )
    assert (job.format, job.variant) == ("generic", "customers")
    assert (job.encoding, job.delimiter) == ("utf-8", ",")
    # The check went to the queue, with the id the job remembers.
    assert sent == [("import_job_check_task", [job.pk], job.task_id)]

    # While it waits the page shows the progress, polling the status endpoint.
    page = client.get(reverse("imports:detail", args=[job.pk]))
    assert page.status_code == 200
    assert reverse("imports:status", args=[job.pk]) in page.content.decode()
    assert "js/import_progress.js" in page.content.decode()

    tasks.import_job_check_task(job.pk)
    job.refresh_from_db()
    assert job.status == Status.CHECKED
    assert job.checked["rows"] == 3
    assert (job.checked["created"], job.checked["updated"]) == (3, 0)
    assert (job.checked["unchanged"], job.checked["errors"]) == (0, 0)
    assert Customer.objects.count() == 0  # a dry run

    page = client.get(reverse("imports:detail", args=[job.pk]))
    html = page.content.decode()
    assert [t.name for t in page.templates][0] == "customers/imports/check.html"
    assert 'data-count="created">3<' in html
    assert 'data-count="updated">0<' in html
    assert 'data-count="errors">0<' in html
    assert "Kartoteka (generic columns)" in html
    assert "utf-8" in html
    assert "comma ( , )" in html
    # The first rows, under the canonical field names; the unknown column listed.
    preview = page.context["preview"]
    assert preview.fields[:5] == ["email", "first_name", "last_name", "phone", "city"]
    assert [line for line, _values in preview.rows] == [2, 3, 4]
    assert preview.rows[0][1][:3] == ["anna.nowak@example.pl", "Anna", "Nowak"]
    assert preview.unmapped == ["ulubiony kolor"]
    assert '<span class="code">ulubiony kolor</span>' in html
    assert "jan.kowalski@example.pl" in html

    job = confirmed_and_run(client, job, django_capture_on_commit_callbacks)
    assert sent[-1] == ("import_job_run_task", [job.pk], job.task_id)
    assert job.status == Status.DONE
    assert counts(job) == (3, 3, 0, 0, 0)
    assert job.rows_done == 3
    assert job.rows_per_second > 0
    assert job.started_at <= job.finished_at
    assert not job.error_report
    assert set(Customer.objects.values_list("email", flat=True)) == {
        "anna.nowak@example.pl",
        "jan.kowalski@example.pl",
        "ola.wisniewska@example.pl",
    }

    page = client.get(reverse("imports:detail", args=[job.pk]))
    html = page.content.decode()
    assert "The import is finished." in html
    assert 'data-count="created">3<' in html
    assert "js/import_progress.js" not in html  # nothing to follow any more

    history = client.get(reverse("imports:list")).content.decode()
    assert "klienci.csv" in history
    assert f'title="{job.sha256}">{job.sha256[:12]}…' in history
    assert "Marta Zięba" in history
    assert "Done" in history


def test_the_same_file_again_reports_nothing_new(
    client, manager, store, sent, django_capture_on_commit_callbacks
):
    first = uploaded(client, store, django_capture_on_commit_callbacks)
    confirmed_and_run(client, first, django_capture_on_commit_callbacks)

    again = uploaded(client, store, django_capture_on_commit_callbacks)

    assert again.sha256 == first.sha256
    checked = again.checked
    assert (checked["created"], checked["updated"], checked["unchanged"]) == (0, 0, 3)
    html = client.get(reverse("imports:detail", args=[again.pk])).content.decode()
    assert 'data-count="created">0<' in html
    assert 'data-count="updated">0<' in html
    assert "Imported before" in html
    assert reverse("imports:detail", args=[first.pk]) in html
    again = confirmed_and_run(client, again, django_capture_on_commit_callbacks)
    assert counts(again) == (3, 0, 0, 3, 0)
    assert Customer.objects.count() == 3


# ---------- Bad rows ----------


def test_a_bad_row_with_all_or_nothing_imports_nothing_and_offers_the_report(
    client, manager, store, sent, django_capture_on_commit_callbacks
):
    job = uploaded(client, store, django_capture_on_commit_callbacks, content=BAD)

    assert job.status == Status.CHECKED
    assert job.checked["errors"] == 1
    assert job.checked["aborted"] is True
    assert job.checked["created"] == 0
    [error] = job.checked["sample_errors"]
    assert (error["line"], error["column"]) == (3, "email")
    page = client.get(reverse("imports:detail", args=[job.pk]))
    html = page.content.decode()
    assert "1 bad row: with “All or nothing” nothing will be imported." in html
    assert "Confirm and import</button>" in html
    assert 'disabled aria-describedby="blocked-why"' in html
    assert reverse("imports:error_report", args=[job.pk]) in html
    assert f"<td>{error['reason']}</td>" in html

    # Confirming anyway is refused: nothing is queued, nothing written.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("imports:confirm", args=[job.pk]), follow=True)
    assert "nothing would be imported" in response.content.decode()
    job.refresh_from_db()
    assert job.status == Status.CHECKED
    assert [name for name, *_rest in sent] == ["import_job_check_task"]
    assert Customer.objects.count() == 0

    response = client.get(reverse("imports:error_report", args=[job.pk]))
    assert response.status_code == 200
    assert (
        response["Content-Disposition"] == 'attachment; filename="klienci-errors.csv"'
    )
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    header, row = report_rows(response)
    assert header == ["line", "column", "value", "reason"]
    assert row[:3] == ["3", "email", "'" + FORMULA]  # never a live formula
    assert row[3] == error["reason"]
    assert "email" in row[3].lower()


def test_switching_to_skip_bad_rows_checks_again_and_imports_the_good_rows(
    client, manager, store, sent, django_capture_on_commit_callbacks
):
    job = uploaded(client, store, django_capture_on_commit_callbacks, content=BAD)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("imports:recheck", args=[job.pk]), {"on_error": "skip"}
        )
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.status, job.on_error, job.checked) == (Status.UPLOADED, "skip", None)
    assert sent[-1] == ("import_job_check_task", [job.pk], job.task_id)
    tasks.import_job_check_task(job.pk)
    job.refresh_from_db()
    assert job.status == Status.CHECKED
    assert (job.checked["created"], job.checked["errors"]) == (2, 1)
    html = client.get(reverse("imports:detail", args=[job.pk])).content.decode()
    assert "1 bad row will be skipped" in html
    assert "blocked-why" not in html

    job = confirmed_and_run(client, job, django_capture_on_commit_callbacks)

    assert job.status == Status.DONE
    assert counts(job) == (3, 2, 0, 0, 1)
    assert sorted(Customer.objects.values_list("email", flat=True)) == [
        "anna.nowak@example.pl",
        "jan.kowalski@example.pl",
    ]
    [_header, row] = report_rows(
        client.get(reverse("imports:error_report", args=[job.pk]))
    )
    assert row[:2] == ["3", "email"]
    history = client.get(reverse("imports:list")).content.decode()
    assert reverse("imports:error_report", args=[job.pk]) in history


def test_row_errors_are_written_in_the_uploaders_language(
    client, manager, store, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(
        tasks.import_job_check_task,
        "apply_async",
        lambda args=None, kwargs=None, **options: sent.append((args, kwargs)),
    )
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "pl"
    with django_capture_on_commit_callbacks(execute=True):
        upload(client, store, content=BAD)
    [(args, kwargs)] = sent
    assert kwargs == {"language": "pl"}

    with translation.override("en"):
        tasks.import_job_check_task(*args, **kwargs)
        assert translation.get_language() == "en"  # the task's language is undone

    job = ImportJob.objects.get()
    assert job.checked["sample_errors"][0]["reason"] == "Podaj poprawny adres e-mail."


# ---------- Files the wizard refuses ----------


@pytest.mark.parametrize(
    ("content", "fields", "field", "message"),
    [
        (
            b"first_name,last_name,city\nAnna,Nowak,Krak\xc3\xb3w\n",
            {},
            "file",
            "A required column is missing: “email” or “external_id”",
        ),
        (
            b"first_name,last_name,city\nAnna,Nowak,Krak\xc3\xb3w\n",
            {"format": "generic"},
            "file",
            "A required column is missing: “email” or “external_id”",
        ),
        (
            "email,first_name\nanna@example.pl,Anna\n".encode("utf-16"),
            {},
            "file",
            "Unknown file encoding. Save the file as CSV in UTF-8",
        ),
        (b"", {}, "file", "The submitted file is empty."),
        (b"\n\n", {}, "file", "The file is empty."),
        (
            b"email,first_name\n",
            {},
            "file",
            "The file is empty: it has a header row but no data rows.",
        ),
        (b"foo,bar,baz\n1,2,3\n", {}, "file", "The file's columns match no known"),
        (GOOD, {"format": "mailchimp"}, "format", "A Mailchimp file cannot hold"),
        (GOOD, {"kind": "consents"}, "kind", "Select a valid choice."),  # Manager
    ],
    ids=[
        "missing-column",
        "missing-column-explicit",
        "utf-16",
        "empty",
        "blank-lines",
        "header-only",
        "unknown-format",
        "format-without-kind",
        "kind-not-permitted",
    ],
)
def test_a_file_that_cannot_be_imported_gets_a_form_error_and_no_job(
    client, manager, store, sent, content, fields, field, message
):
    response = upload(client, store, content=content, **fields)

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert any(message in error for error in errors[field]), errors
    assert message in response.content.decode().replace("&#x27;", "'")
    assert ImportJob.objects.count() == 0
    assert sent == []


# ---------- Who may do what ----------


@pytest.mark.parametrize("role", ["Manager", "Data protection officer"])
def test_managers_and_the_dpo_reach_the_wizard(
    client, make_staff, store, role, sent, django_capture_on_commit_callbacks
):
    user = make_staff(role)
    client.force_login(user)
    job = uploaded(client, store, django_capture_on_commit_callbacks)
    for url in (
        reverse("imports:list"),
        reverse("imports:upload"),
        reverse("imports:detail", args=[job.pk]),
        reverse("imports:status", args=[job.pk]),
    ):
        assert client.get(url).status_code == 200, url
    home = client.get(reverse("imports:list")).content.decode()
    assert f'href="{reverse("imports:list")}" aria-current="page"' in home
    job = confirmed_and_run(client, job, django_capture_on_commit_callbacks)
    assert job.status == Status.DONE


@pytest.mark.parametrize("role", ["Support", "Marketing"])
def test_support_and_marketing_get_403(client, make_staff, store, role, manager):
    job = ImportJob.objects.create(
        kind="customers", store=store, filename="x.csv", created_by=manager
    )
    client.force_login(make_staff(role))
    for url in (
        reverse("imports:list"),
        reverse("imports:upload"),
        reverse("imports:detail", args=[job.pk]),
        reverse("imports:status", args=[job.pk]),
        reverse("imports:error_report", args=[job.pk]),
        reverse("imports:file", args=[job.pk]),
    ):
        assert client.get(url).status_code == 403, url
    for name in ("confirm", "cancel", "recheck"):
        assert client.post(reverse(f"imports:{name}", args=[job.pk])).status_code == 403
    page = client.get(reverse("customers:list")).content.decode()
    assert reverse("imports:list") not in page


def test_anonymous_users_are_sent_to_login(client):
    response = client.get(reverse("imports:list"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_only_kinds_the_user_may_import_are_offered(
    client, make_staff, store, monkeypatch, sent
):
    def orders_run(**kwargs):
        raise AssertionError("never run")

    kinds = dict(registry._KINDS)
    kinds["orders"] = registry.ImportKind(
        name="orders", label="Orders", run=orders_run, permission="orders.change_order"
    )
    monkeypatch.setattr(registry, "_KINDS", kinds)
    dpo = make_staff("Data protection officer")  # may change customers, not orders
    client.force_login(dpo)

    def offered(user):
        client.force_login(user)
        form = client.get(reverse("imports:upload")).context["form"]
        names = [name for name, _label in form.fields["kind"].choices]
        # Whatever the apps register, only what the user may run.
        assert names == [
            kind.name
            for kind in registry.registered()
            if user.has_perm(kind.permission)
        ]
        return names

    assert "customers" in offered(dpo)
    assert "orders" not in offered(dpo)
    orders_file = b"order_id,placed_at,total\n1,2025-01-01,10\n"
    response = upload(client, store, content=orders_file, kind="orders")
    assert "Select a valid choice." in str(response.context["form"].errors["kind"])
    assert ImportJob.objects.count() == 0

    assert {"customers", "orders"} <= set(offered(make_staff("Manager")))


def test_the_service_rechecks_the_kind_permission(store, make_staff):
    from django.contrib.auth.models import Permission

    user = make_staff()
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_importjob", "add_importjob"])
    )
    with pytest.raises(ValidationError) as caught:
        import_job_create(
            file=io.BytesIO(GOOD),
            filename="a.csv",
            kind="customers",
            store=store,
            actor=user,
        )
    assert caught.value.message_dict["kind"] == ["You may not import customers."]
    assert ImportJob.objects.count() == 0


def test_downloads_are_permission_checked(
    client, make_staff, store, sent, django_capture_on_commit_callbacks
):
    owner = make_staff("Data protection officer", username="dpo-1")
    client.force_login(owner)
    job = uploaded(client, store, django_capture_on_commit_callbacks, content=BAD)
    report = reverse("imports:error_report", args=[job.pk])
    original = reverse("imports:file", args=[job.pk])

    response = client.get(original)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="klienci.csv"'
    assert b"".join(response.streaming_content) == BAD

    other_dpo = make_staff("Data protection officer", username="dpo-2")
    client.force_login(other_dpo)
    assert client.get(report).status_code == 200  # may see imports: the report
    assert client.get(original).status_code == 403  # not their upload
    page = client.get(reverse("imports:detail", args=[job.pk])).content.decode()
    assert original not in page
    # Nor may they continue someone else's import.
    assert client.post(reverse("imports:confirm", args=[job.pk])).status_code == 403

    client.force_login(make_staff("Manager"))
    assert client.get(original).status_code == 200
    assert client.get(report).status_code == 200

    client.force_login(make_staff("Support"))
    assert client.get(report).status_code == 403
    assert client.get(original).status_code == 403
    # And the files are nowhere under a public URL.
    assert not settings.MEDIA_URL or job.file.name not in settings.MEDIA_URL


def test_a_job_without_a_report_has_no_report_download(
    client, manager, store, sent, django_capture_on_commit_callbacks
):
    job = uploaded(client, store, django_capture_on_commit_callbacks)
    assert client.get(reverse("imports:error_report", args=[job.pk])).status_code == 404


# ---------- Status, progress, failures ----------


def _with_runner(monkeypatch, run):
    kinds = dict(registry._KINDS)
    base = kinds["customers"]
    kinds["customers"] = registry.ImportKind(
        name=base.name, label=base.label, run=run, permission=base.permission
    )
    monkeypatch.setattr(registry, "_KINDS", kinds)


def test_the_status_endpoint_reports_progress_during_the_run(
    client, manager, store, sent, monkeypatch, django_capture_on_commit_callbacks
):
    job = uploaded(client, store, django_capture_on_commit_callbacks)
    seen = []

    def run(**kwargs):
        progress = kwargs.pop("progress")

        def spy(rows):
            progress(rows)
            seen.append(client.get(reverse("imports:status", args=[job.pk])).json())

        return customers_import(**kwargs, batch_size=2, progress=spy)

    _with_runner(monkeypatch, run)
    job = confirmed_and_run(client, job, django_capture_on_commit_callbacks)

    assert job.status == Status.DONE
    first = seen[0]
    assert first["status"] == "running"
    assert first["active"] is True
    assert first["phase"] == "run"
    assert (first["rows_done"], first["rows_total"]) == (2, 3)
    assert first["rows_per_second"] > 0
    final = client.get(reverse("imports:status", args=[job.pk]))
    assert final["Cache-Control"] == "no-store"
    state = final.json()
    assert (state["status"], state["active"], state["rows_done"]) == ("done", False, 3)
    assert state["counts"]["created"] == 3


def test_a_failing_runner_marks_the_job_failed_and_writes_nothing(
    client, manager, store, sent, monkeypatch, django_capture_on_commit_callbacks
):
    job = uploaded(client, store, django_capture_on_commit_callbacks)
    written = []

    def run(**kwargs):
        def explode(rows):
            written.append(Customer.objects.count())
            raise RuntimeError("disk full")

        kwargs.update(batch_size=2, progress=explode)
        return customers_import(**kwargs)

    _with_runner(monkeypatch, run)
    job = confirmed_and_run(client, job, django_capture_on_commit_callbacks)

    assert job.status == Status.FAILED
    assert job.message == "The import failed unexpectedly; nothing was imported."
    assert job.finished_at is not None
    assert written == [2]  # the first batch was written...
    assert Customer.objects.count() == 0  # ...and rolled back with the rest
    html = client.get(reverse("imports:detail", args=[job.pk])).content.decode()
    assert "The import failed unexpectedly" in html


def test_a_run_redelivered_after_its_worker_died_fails_the_job(
    client, manager, store, sent, django_capture_on_commit_callbacks
):
    job = uploaded(client, store, django_capture_on_commit_callbacks)
    import_job_confirm(job=job, actor=manager)
    _set_status(job, Status.RUNNING)  # the worker died here; acks_late resends

    tasks.import_job_run_task(job.pk)

    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert "the worker ended" in job.message
    assert Customer.objects.count() == 0


def test_status_changes_follow_the_table(
    client, manager, store, sent, django_capture_on_commit_callbacks
):
    job = uploaded(client, store, django_capture_on_commit_callbacks)
    with pytest.raises(ValidationError, match="cannot go from Checked to Done"):
        _set_status(job, Status.DONE)
    job.refresh_from_db()
    assert job.status == Status.CHECKED
    # A task for a job in the wrong state does nothing.
    tasks.import_job_run_task(job.pk)
    job.refresh_from_db()
    assert job.status == Status.CHECKED
    tasks.import_job_check_task(10**9)  # gone: a no-op


def test_cancelling_deletes_the_stored_files(
    client, make_staff, manager, store, sent, django_capture_on_commit_callbacks
):
    job = uploaded(client, store, django_capture_on_commit_callbacks, content=BAD)
    storage = job.file.storage
    names = [job.file.name, job.error_report.name]
    assert all(storage.exists(name) for name in names)

    client.force_login(make_staff("Data protection officer"))
    assert client.post(reverse("imports:cancel", args=[job.pk])).status_code == 403

    client.force_login(manager)
    response = client.post(reverse("imports:cancel", args=[job.pk]), follow=True)
    assert "The import is cancelled" in response.content.decode()
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    assert not job.file
    assert not job.error_report
    assert not any(storage.exists(name) for name in names)
    assert job.sha256  # the history keeps the hash
    tasks.import_job_run_task(job.pk)
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    assert client.get(reverse("imports:file", args=[job.pk])).status_code == 404


# ---------- History ----------


def test_history_is_newest_first_in_warsaw_time_with_constant_queries(
    client, manager, store, make_staff
):
    dpo = make_staff("Data protection officer", username="ewa")

    def make(n, user):
        for index in range(n):
            ImportJob.objects.create(
                kind="customers",
                store=store,
                filename=f"plik-{index}.csv",
                sha256=f"{index:064x}",
                created_by=user,
            )

    make(2, manager)
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse("imports:list")).status_code == 200
    make(5, dpo)
    with CaptureQueriesContext(connection) as many:
        page = client.get(reverse("imports:list"))
    assert len(many) == len(few)

    jobs = page.context["jobs"]
    assert [job.filename for job in jobs[:2]] == ["plik-4.csv", "plik-3.csv"]
    oldest = ImportJob.objects.order_by("pk").first()
    ImportJob.objects.filter(pk=oldest.pk).update(
        created_at=datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
    )
    html = client.get(reverse("imports:list")).content.decode()
    assert 'datetime="2025-01-15T11:00:00+01:00"' in html
    assert "15/01/2025 11:00" in html
    assert "ewa" in html


def test_history_is_paginated(client, manager, store):
    for index in range(30):
        ImportJob.objects.create(
            kind="customers", store=store, filename=f"f{index}.csv", created_by=manager
        )
    first = client.get(reverse("imports:list"))
    assert len(first.context["jobs"]) == 25
    assert first.context["page"].has_next
    second = client.get(reverse("imports:list") + "?page=2")
    assert len(second.context["jobs"]) == 5


# ---------- Admin ----------


def test_the_admin_lists_imports_read_only(
    client, manager, store, sent, django_capture_on_commit_callbacks
):
    job = uploaded(client, store, django_capture_on_commit_callbacks)
    changelist = client.get(reverse("admin:customers_importjob_changelist"))
    assert changelist.status_code == 200
    assert "klienci.csv" in changelist.content.decode()
    assert client.get(reverse("admin:customers_importjob_add")).status_code == 403
    page = client.get(reverse("admin:customers_importjob_change", args=[job.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert reverse("imports:file", args=[job.pk]) in html
    assert 'name="_save"' not in html


# ---------- Progress across processes ----------


@pytest.mark.django_db(transaction=True)
def test_progress_is_visible_outside_the_import_transaction(
    store, make_staff, sent, monkeypatch
):
    """The run's transaction hides its rows; rows_done is written outside it."""
    user = make_staff("Manager")
    job = import_job_create(
        file=io.BytesIO(GOOD),
        filename="klienci.csv",
        kind="customers",
        store=store,
        actor=user,
    )
    import_job_check(job=job)
    job.refresh_from_db()
    import_job_confirm(job=job, actor=user)
    outside = []
    params = connection.get_connection_params()

    def run(**kwargs):
        progress = kwargs.pop("progress")

        def spy(rows):
            progress(rows)
            with psycopg.connect(**params, autocommit=True) as other:
                outside.append(
                    (
                        other.execute(
                            "SELECT status, rows_done FROM customers_importjob"
                            " WHERE id = %s",
                            [job.pk],
                        ).fetchone(),
                        other.execute(
                            "SELECT count(*) FROM customers_customer"
                        ).fetchone()[0],
                    )
                )

        return customers_import(**kwargs, batch_size=2, progress=spy)

    _with_runner(monkeypatch, run)
    import_job_run(job=job)

    job.refresh_from_db()
    assert job.status == Status.DONE
    # After the first batch: the job's progress is seen, its customers are not yet.
    assert outside[0] == (("running", 2), 0)
    assert Customer.objects.count() == 3
