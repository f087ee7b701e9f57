import csv
import datetime as dt
import io
import json

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone, translation

from consents.models import AccessLog
from customers.interactions import answer_due, interaction_attach
from customers.models import Interaction, InteractionAttachment, InteractionChange
from tests.factories.customers import (
    CustomerFactory,
    CustomerIdentityFactory,
    InteractionFactory,
    StoreFactory,
)
from tests.factories.orders import OrderFactory

Kind = Interaction.Kind
Status = Interaction.Status
QUEUE = reverse("support:queue")
EXPORT = reverse("support:queue_export")
HTMX = {"HX-Request": "true"}
PDF = b"%PDF-1.4\n% a complaint photo\n"


@pytest.fixture(autouse=True)
def _english(client):
    """Texts are checked in English (Polish is the default language)."""
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def support(client, make_staff):
    user = make_staff("Support", username="anna")
    client.force_login(user)
    return user


@pytest.fixture
def manager(client, make_staff):
    user = make_staff("Manager", username="marek")
    client.force_login(user)
    return user


def log_url(customer):
    return reverse("support:quick_log", args=[customer.pk])


def detail_url(customer):
    return reverse("customers:detail", args=[customer.pk])


def interaction_url(interaction):
    return reverse("support:interaction", args=[interaction.pk])


def ago(**kwargs):
    return timezone.now() - dt.timedelta(**kwargs)


def complaint(**fields):
    """A complaint due at ``due_at`` (received 14 days before)."""
    due_at = fields.pop("due_at", timezone.now() + dt.timedelta(days=7))
    return InteractionFactory(
        complaint=True,
        occurred_at=due_at - dt.timedelta(days=14),
        due_at=due_at,
        **fields,
    )


def access_rows(customer, action):
    return AccessLog.objects.filter(customer=customer, action=action)


def form_data(**fields):
    data = {
        "kind": Kind.CONVERSATION,
        "channel": Interaction.Channel.PHONE,
        "direction": Interaction.Direction.INBOUND,
        "subject": "Pyta o dostawę",
        "body": "Paczka nie doszła.",
        "order": "",
        "rating": "",
        "rating_scale": Interaction.RatingScale.STARS,
    }
    data.update(fields)
    return data


# ---------- Quick log ----------


def test_customer_page_offers_the_quick_log_to_those_who_may_log(
    client, make_staff, customer
):
    client.force_login(make_staff("Support"))
    content = client.get(detail_url(customer)).content.decode()
    assert "data-quick-log" in content
    assert f'action="{log_url(customer)}"' in content
    assert f'hx-post="{log_url(customer)}"' in content

    client.force_login(make_staff("Marketing"))
    content = client.get(detail_url(customer)).content.decode()
    assert "data-quick-log" not in content
    assert 'id="timeline"' in content  # they still see the timeline


def test_quick_log_from_the_customer_page_without_javascript(
    client, support, customer, store
):
    order = OrderFactory(customer=customer, store=store, number="ZAM/77")
    page = client.get(detail_url(customer)).content.decode()
    assert f'<option value="{order.pk}">ZAM/77' in page

    response = client.post(log_url(customer), form_data(order=order.pk))

    assert response.status_code == 302
    assert response.url == detail_url(customer) + "#timeline"
    interaction = Interaction.objects.get(customer=customer)
    assert interaction.author == support
    assert interaction.order == order
    assert interaction.store == store  # the order's
    assert (interaction.subject, interaction.body) == (
        "Pyta o dostawę",
        "Paczka nie doszła.",
    )
    page = client.get(response.url).content.decode()
    assert "Conversation logged." in page
    assert page.index("Pyta o dostawę") > page.index('<div id="timeline"')


def test_quick_log_with_htmx_answers_with_an_empty_form_and_a_confirmation(
    client, support, customer
):
    response = client.post(
        log_url(customer),
        form_data(kind=Kind.COMPLAINT, subject="Zepsuty czajnik"),
        headers=HTMX,
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert "<html" not in content
    assert content.lstrip().startswith("<form")
    assert 'role="status"' in content
    interaction = Interaction.objects.get(customer=customer)
    assert "Complaint logged: answer due by" in content
    assert interaction_url(interaction) in content
    # The form is empty again for the next one.
    assert 'value="Zepsuty czajnik"' not in content
    assert "Paczka nie doszła." not in content
    trigger = json.loads(response["HX-Trigger"])
    assert trigger == {
        "interactionLogged": {"customer": customer.pk, "interaction": interaction.pk}
    }


def test_complaint_is_due_fourteen_days_after_it_was_received(
    client, support, customer
):
    before = timezone.now()
    client.post(log_url(customer), form_data(kind=Kind.RETURN), headers=HTMX)
    interaction = Interaction.objects.get(customer=customer)

    assert interaction.status == Status.OPEN
    assert interaction.occurred_at >= before
    assert interaction.due_at == answer_due(interaction.occurred_at)
    queue = client.get(QUEUE)
    assert [i.pk for i in queue.context["interactions"]] == [interaction.pk]
    assert "14 days left" in queue.content.decode()


@pytest.mark.parametrize("htmx", [True, False])
def test_quick_log_errors_show_next_to_the_fields(client, support, customer, htmx):
    response = client.post(
        log_url(customer),
        form_data(subject="", body="   ", kind="gossip"),
        headers=HTMX if htmx else {},
    )

    assert response.status_code == 200
    assert not Interaction.objects.exists()
    content = response.content.decode()
    assert ("<html" in content) is not htmx
    form = response.context["form"]
    assert "kind" in form.errors
    assert "HX-Trigger" not in response
    assert 'class="field field--error"' in content

    # A valid shape, refused by the service: its message is the field's error.
    response = client.post(
        log_url(customer), form_data(subject="", body=" "), headers=HTMX
    )
    assert response.context["form"].errors == {"body": ["Say what it was about."]}
    content = response.content.decode()
    body_field = content[content.index(f'id="ql{customer.pk}_body"') :]
    assert body_field.index("Say what it was about.") < body_field.index("</div>")


def test_quick_log_refuses_another_customers_order(client, support, customer, store):
    stranger_order = OrderFactory(store=store)

    response = client.post(
        log_url(customer), form_data(order=stranger_order.pk), headers=HTMX
    )

    assert response.context["form"].errors == {
        "order": ["This order is another customer's."]
    }
    assert not Interaction.objects.exists()


def test_quick_log_keeps_a_reviews_rating_and_refuses_one_elsewhere(
    client, support, customer
):
    response = client.post(
        log_url(customer), form_data(kind=Kind.CONVERSATION, rating="4"), headers=HTMX
    )
    assert "rating" in response.context["form"].errors

    client.post(
        log_url(customer),
        form_data(kind=Kind.REVIEW, rating="4", rating_scale="stars"),
        headers=HTMX,
    )
    client.post(
        log_url(customer),
        form_data(kind=Kind.FEEDBACK, rating="9", rating_scale="nps"),
        headers=HTMX,
    )
    assert sorted(
        Interaction.objects.values_list("kind", "rating", "rating_scale")
    ) == [("feedback", 9, "nps"), ("review", 4, "stars")]


def test_quick_log_without_an_order_takes_the_customers_only_store(
    client, support, customer
):
    identity = CustomerIdentityFactory(customer=customer)
    client.post(log_url(customer), form_data(), headers=HTMX)
    assert Interaction.objects.get().store == identity.store


def test_quick_log_page_and_fragment(client, support, customer):
    page = client.get(log_url(customer))
    fragment = client.get(log_url(customer), headers=HTMX)

    assert page.status_code == fragment.status_code == 200
    assert "<html" in page.content.decode()
    assert "data-autofocus" in page.content.decode()
    assert "<html" not in fragment.content.decode()
    assert "data-quick-log" in fragment.content.decode()
    assert "HX-Request" in fragment["Vary"]
    # The form shows the customer's orders: a look at their data, logged.
    assert access_rows(customer, "view").count() == 2


def test_quick_log_needs_the_add_permission(client, make_staff, customer):
    client.force_login(make_staff("Marketing"))
    assert client.get(log_url(customer)).status_code == 403
    assert client.post(log_url(customer), form_data()).status_code == 403
    assert not Interaction.objects.exists()


def test_quick_log_for_an_unknown_customer_is_a_404(client, support):
    assert client.get(reverse("support:quick_log", args=[999999])).status_code == 404


# ---------- The queue ----------


def test_queue_lists_pending_overdue_first_then_by_due_date(client, support):
    now = timezone.now()
    due_in_5 = complaint(due_at=now + dt.timedelta(days=5, hours=1), subject="In 5")
    overdue_1 = complaint(due_at=now - dt.timedelta(hours=20), subject="Late 1")
    due_in_1 = complaint(due_at=now + dt.timedelta(days=1, hours=1), subject="In 1")
    overdue_3 = complaint(
        kind=Kind.RETURN, due_at=now - dt.timedelta(days=3, hours=1), subject="Late 3"
    )
    waiting = complaint(due_at=now + dt.timedelta(days=9), status=Status.WAITING)
    complaint(due_at=now - dt.timedelta(days=30), status=Status.RESOLVED)
    complaint(due_at=now - dt.timedelta(days=30), status=Status.REJECTED)
    InteractionFactory()  # a conversation: no status, never in the queue

    response = client.get(QUEUE)

    assert response.status_code == 200
    rows = response.context["interactions"]
    assert rows == [overdue_3, overdue_1, due_in_1, due_in_5, waiting]
    assert [(row.due_state, row.due_days) for row in rows[:2]] == [
        ("overdue", 3),
        ("overdue", 1),
    ]
    content = response.content.decode()
    assert "overdue by 3 days" in content
    assert "overdue by 1 day" in content
    assert "1 day left" in content
    assert "5 days left" in content
    # Rows in that order, each linking to its interaction.
    positions = [content.index(f'data-interaction="{row.pk}"') for row in rows]
    assert positions == sorted(positions)
    assert interaction_url(overdue_3) in content
    assert detail_url(overdue_3.customer) in content


def test_queue_columns(client, support, store):
    order = OrderFactory(store=store, number="ZAM/123")
    item = complaint(
        customer=order.customer,
        order=order,
        store=store,
        subject="Pęknięty ekran",
        assignee=support,
    )

    content = client.get(QUEUE).content.decode()
    row = content[content.index(f'data-interaction="{item.pk}"') :]
    row = row[: row.index("</tr>")]
    for text in ("Complaint", "Pęknięty ekran", "ZAM/123", "anna", "Open", store.name):
        assert text in row
    assert order.customer.full_name in row


def test_queue_filters(client, support, make_staff, store):
    other_store = StoreFactory()
    colleague = make_staff("Support", username="bartek")
    mine = complaint(assignee=support, store=store)
    theirs = complaint(assignee=colleague, store=other_store, kind=Kind.RETURN)
    nobodys = complaint(store=store)
    closed = complaint(status=Status.RESOLVED, store=store)

    def shown(**params):
        response = client.get(QUEUE, params)
        assert response.status_code == 200
        return set(response.context["interactions"])

    assert shown() == {mine, theirs, nobodys}
    assert shown(assignee="me") == {mine}
    assert shown(assignee="none") == {nobodys}
    assert shown(assignee=colleague.pk) == {theirs}
    assert shown(store=other_store.pk) == {theirs}
    assert shown(kind=Kind.RETURN) == {theirs}
    assert shown(kind=Kind.COMPLAINT, store=store.pk) == {mine, nobodys}
    assert shown(status="closed") == {closed}
    assert shown(status="all") == {mine, theirs, nobodys, closed}
    # A filter that makes no sense is shown as an error and left out.
    response = client.get(QUEUE, {"assignee": "ghost", "kind": Kind.RETURN})
    assert "assignee" in response.context["form"].errors
    assert set(response.context["interactions"]) == {theirs}


def test_queue_pages_without_counting(client, support, django_assert_max_num_queries):
    for days in range(55):
        complaint(due_at=timezone.now() + dt.timedelta(days=days + 1))

    with django_assert_max_num_queries(12):
        first = client.get(QUEUE)
    second = client.get(QUEUE, {"page": 2})

    assert len(first.context["interactions"]) == 50
    assert first.context["page"].has_next
    assert len(second.context["interactions"]) == 5
    assert not second.context["page"].has_next


def test_queue_needs_the_view_permission(client, make_staff):
    client.force_login(make_staff())
    assert client.get(QUEUE).status_code == 403
    client.logout()
    assert client.get(QUEUE).status_code == 302


# ---------- Export ----------


def csv_rows(response):
    content = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(content)))


def test_export_is_formula_safe_and_logged(client, manager, store):
    order = OrderFactory(store=store, number="ZAM/9")
    item = complaint(
        customer=order.customer,
        order=order,
        store=store,
        subject='=HYPERLINK("http://x")',
        due_at=timezone.now() - dt.timedelta(days=2, hours=1),
    )

    response = client.get(EXPORT)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = csv_rows(response)
    assert len(rows) == 1
    row = rows[0]
    assert row["subject"] == '\'=HYPERLINK("http://x")'
    assert row["id"] == str(item.pk)
    assert row["kind"] == "complaint"
    assert row["status"] == "open"
    assert row["days_overdue"] == "2"
    assert row["order_number"] == "ZAM/9"
    assert row["store"] == store.code
    assert row["customer_email"] == order.customer.email
    assert access_rows(order.customer, "export").count() == 1


def test_export_follows_the_filters_and_leaves_restricted_people_out(
    client, manager, make_staff
):
    colleague = make_staff("Support", username="bartek")
    mine = complaint(assignee=manager, subject="Moja")
    complaint(assignee=colleague, subject="Nie moja")
    restricted = CustomerFactory(restricted_at=timezone.now())
    complaint(customer=restricted, assignee=manager, subject="Ograniczone")
    complaint(status=Status.RESOLVED, assignee=manager, subject="Zamknięta")

    rows = csv_rows(client.get(EXPORT, {"assignee": "me"}))

    assert [row["subject"] for row in rows] == ["Moja"]
    assert access_rows(mine.customer, "export").count() == 1
    assert not access_rows(restricted, "export").exists()
    queue = client.get(QUEUE, {"assignee": "me"}).content.decode()
    assert f"{EXPORT}?assignee=me" in queue


def test_support_sees_the_queue_and_logs_but_may_not_export(client, support, customer):
    complaint(customer=customer)

    assert client.get(QUEUE).status_code == 200
    assert EXPORT not in client.get(QUEUE).content.decode()
    assert client.get(EXPORT).status_code == 403
    assert not access_rows(customer, "export").exists()
    response = client.post(log_url(customer), form_data())
    assert response.status_code == 302


# ---------- The interaction page ----------


def test_interaction_page_shows_everything_and_is_logged(client, support, store):
    order = OrderFactory(store=store, number="ZAM/5")
    item = complaint(
        customer=order.customer,
        order=order,
        store=store,
        subject="Rozdarta kurtka",
        body="Szew puścił po tygodniu.\nProszę o zwrot.",
    )

    response = client.get(interaction_url(item))

    assert response.status_code == 200
    content = response.content.decode()
    for text in ("Rozdarta kurtka", "Szew puścił po tygodniu.", "ZAM/5", store.name):
        assert text in content
    assert detail_url(order.customer) in content
    assert "days left" in content
    # Only the moves the table allows from "open".
    choices = [
        value for value, _ in response.context["status_form"].fields["status"].choices
    ]
    assert sorted(choices) == ["rejected", "resolved", "waiting"]
    assert access_rows(order.customer, "view").count() == 1


def test_status_changes_only_along_the_transitions(client, support):
    item = complaint()
    url = interaction_url(item)

    response = client.post(
        url, {"action": "status", "status-status": "waiting", "status-note": "Czekamy"}
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == Status.WAITING
    change = InteractionChange.objects.get(interaction=item)
    assert (change.old_value, change.new_value, change.note, change.actor) == (
        "open",
        "waiting",
        "Czekamy",
        support,
    )
    client.post(url, {"action": "status", "status-status": "resolved"})
    item.refresh_from_db()
    assert item.status == Status.RESOLVED
    assert item.resolved_at is not None

    # Resolved may only be reopened.
    response = client.post(url, {"action": "status", "status-status": "waiting"})
    assert response.status_code == 200
    assert "status" in response.context["status_form"].errors
    item.refresh_from_db()
    assert item.status == Status.RESOLVED
    assert [v for v, _ in response.context["status_form"].fields["status"].choices] == [
        "open"
    ]
    client.post(url, {"action": "status", "status-status": "open"})
    item.refresh_from_db()
    assert item.status == Status.OPEN
    assert item.resolved_at is None
    history = client.get(url).content.decode()
    assert history.count('class="history__item"') == 4  # logged + three changes


def test_a_conversation_has_no_status_to_change(client, support):
    item = InteractionFactory()
    response = client.get(interaction_url(item))
    assert response.context["status_form"] is None
    assert response.context["assign_form"] is None
    post = client.post(
        interaction_url(item), {"action": "status", "status-status": "resolved"}
    )
    assert post.status_code == 404


def test_assign_to_staff_who_see_interactions(client, support, make_staff):
    item = complaint()
    colleague = make_staff("Support", username="bartek")
    outsider = make_staff(username="outsider")
    offered = client.get(interaction_url(item)).context["assign_form"]
    assert set(offered.fields["assignee"].queryset) == {support, colleague}

    response = client.post(
        interaction_url(item), {"action": "assign", "assign-assignee": colleague.pk}
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.assignee == colleague
    change = InteractionChange.objects.get(interaction=item, field="assignee")
    assert (change.new_value, change.actor) == ("bartek", support)

    refused = client.post(
        interaction_url(item), {"action": "assign", "assign-assignee": outsider.pk}
    )
    assert refused.status_code == 200
    assert "assignee" in refused.context["assign_form"].errors
    client.post(interaction_url(item), {"action": "assign", "assign-assignee": ""})
    item.refresh_from_db()
    assert item.assignee is None


def test_changes_need_the_change_permission(client, make_staff):
    item = complaint()
    client.force_login(make_staff("Marketing"))
    page = client.get(interaction_url(item))
    assert page.status_code == 200
    assert page.context["status_form"] is None
    assert page.context["attach_form"] is None
    for data in (
        {"action": "status", "status-status": "resolved"},
        {"action": "assign", "assign-assignee": ""},
        {"action": "attach"},
    ):
        assert client.post(interaction_url(item), data).status_code == 403
    item.refresh_from_db()
    assert item.status == Status.OPEN
    assert client.post(interaction_url(item), {"action": "x"}).status_code == 400


# ---------- Attachments ----------


def test_upload_and_download_an_attachment(client, support):
    item = complaint()
    upload = SimpleUploadedFile("zdjęcie.pdf", PDF, content_type="image/png")

    response = client.post(
        interaction_url(item), {"action": "attach", "attach-file": upload}
    )

    assert response.status_code == 302
    attachment = InteractionAttachment.objects.get(interaction=item)
    assert (attachment.name, attachment.content_type, attachment.uploaded_by) == (
        "zdjęcie.pdf",
        "application/pdf",  # by its content, not the browser's word
        support,
    )
    page = client.get(interaction_url(item)).content.decode()
    download_url = reverse("support:attachment", args=[attachment.pk])
    assert download_url in page

    download = client.get(download_url)

    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PDF
    assert download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"].startswith("attachment;")
    assert "zdj%C4%99cie.pdf" in download["Content-Disposition"]
    assert download["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in download["Cache-Control"]
    logged = access_rows(item.customer, "export").get()
    assert logged.user == support
    assert str(attachment.pk) in logged.purpose


def test_an_attachment_of_a_wrong_type_is_a_form_error(client, support):
    item = complaint()
    upload = SimpleUploadedFile("program.exe", b"MZ\x90\x00\x03\x00\x00\x00")

    response = client.post(
        interaction_url(item), {"action": "attach", "attach-file": upload}
    )

    assert response.status_code == 200
    errors = response.context["attach_form"].errors["file"]
    assert errors == ["Attach a PDF, a photo (JPEG, PNG, GIF, WebP) or a text file."]
    assert "Attach a PDF, a photo" in response.content.decode()
    assert not InteractionAttachment.objects.exists()


def test_downloads_need_the_attachment_permission(client, make_staff, support):
    item = complaint()
    attachment = interaction_attach(
        interaction=item,
        upload=SimpleUploadedFile("a.pdf", PDF),
        actor=support,
    )
    user = make_staff(username="reader")
    user.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="customers", codename="view_interaction"
        )
    )
    client.force_login(user)
    url = reverse("support:attachment", args=[attachment.pk])

    assert client.get(interaction_url(item)).status_code == 200
    assert url not in client.get(interaction_url(item)).content.decode()
    assert client.get(url).status_code == 403
    assert not access_rows(item.customer, "export").exists()
    client.force_login(make_staff("Marketing"))
    assert client.get(url).status_code == 200
    assert client.get(reverse("support:attachment", args=[999999])).status_code == 404
