"""The support log in the Django admin: every write through customers.interactions."""

import datetime as dt
import html
import re

import pytest
from django.contrib import admin
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from consents.models import AccessLog
from customers import admin as customers_admin
from customers import roles
from customers.interactions import (
    answer_due,
    interaction_assign,
    interaction_attach,
    interaction_log,
    interaction_set_status,
)
from customers.models import Interaction, InteractionChange
from tests.factories.customers import CustomerFactory, StoreFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:customers_interaction_changelist")
ADD = reverse("admin:customers_interaction_add")
RECEIVED = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)


def change_url(interaction):
    return reverse("admin:customers_interaction_change", args=[interaction.pk])


@pytest.fixture
def login(client, make_staff):
    def as_role(*role_names, username=None):
        user = make_staff(*role_names, username=username)
        client.force_login(user)
        client.user = user
        return client

    return as_role


@pytest.fixture
def manager(login):
    return login(roles.MANAGER, username="kierownik")


@pytest.fixture
def support(login):
    return login(roles.SUPPORT, username="konsultantka")


def log(customer, **kwargs):
    values = {
        "kind": "complaint",
        "channel": "email",
        "actor": None,
        "subject": "Pęknięty kubek",
        **kwargs,
    }
    return interaction_log(customer=customer, **values)


def hidden_inputs(page) -> dict[str, str]:
    """The hidden inputs a browser sends back (inline management forms, ids)."""
    found = {}
    for tag in re.findall(r"<input[^>]*>", page.content.decode()):
        if 'type="hidden"' not in tag or "csrfmiddlewaretoken" in tag:
            continue
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            found[name.group(1)] = html.unescape(value.group(1)) if value else ""
    return found


def follow_up_data(client, interaction, **fields):
    """The change form as the browser posts it: what the page shows, then ``fields``."""
    page = client.get(change_url(interaction))
    assert page.status_code == 200
    data = hidden_inputs(page)
    data.update(
        {
            "status": interaction.status,
            "status_note": "",
            "assignee": str(interaction.assignee_id or ""),
            "_save": "Zapisz",
        }
    )
    data.update(fields)
    return data


def add_data(customer, **fields):
    data = {
        "customer": str(customer.pk),
        "store": "",
        "kind": "complaint",
        "channel": "phone",
        "direction": "inbound",
        "occurred_at_0": "2026-11-20",
        "occurred_at_1": "10:30:00",
        "subject": "Reklamacja telefoniczna",
        "body": "Klient zgłasza pęknięty kubek.",
        "order": "",
        "rating": "",
        "rating_scale": "",
        "assignee": "",
        "_save": "Zapisz",
    }
    data.update(fields)
    return data


def form_errors(response) -> dict[str, list[str]]:
    assert response.status_code == 200, "the form should be shown again"
    form = response.context["adminform"].form
    return {field: list(errors) for field, errors in form.errors.items()}


# --- The changelist -----------------------------------------------------------------


def test_changelist_shows_the_queue_with_overdue_highlighted(manager, store):
    anna = CustomerFactory(first_name="Anna", last_name="Nowak")
    late = log(
        anna,
        subject="Spóźniona reklamacja",
        occurred_at=timezone.now() - dt.timedelta(days=20),
        store=store,
    )
    on_time = log(anna, subject="Świeża reklamacja", kind="return")
    answered = log(
        anna,
        subject="Załatwiona reklamacja",
        occurred_at=timezone.now() - dt.timedelta(days=30),
    )
    interaction_set_status(interaction=answered, status="resolved", actor=None)
    log(anna, kind="review", subject="Recenzja")
    response = manager.get(CHANGELIST)
    assert response.status_code == 200
    page = response.content.decode()
    for subject in ("Spóźniona", "Świeża", "Załatwiona", "Recenzja"):
        assert subject in page
    assert page.count('class="overdue"') == 1
    row = re.search(r"<tr>.*?Spóźniona reklamacja.*?</tr>", page, re.S).group(0)
    assert 'class="overdue"' in row
    assert "Anna Nowak" in row
    assert store.name in row
    assert late.is_overdue()
    assert not on_time.is_overdue()


def test_changelist_queries_do_not_grow_with_rows(manager, store, make_staff):
    helper = make_staff(roles.SUPPORT, username="pomocnik")

    def add_rows(count):
        for _ in range(count):
            complaint = log(CustomerFactory(), store=store)
            interaction_assign(interaction=complaint, assignee=helper, actor=None)

    add_rows(2)
    with CaptureQueriesContext(connection) as few:
        assert manager.get(CHANGELIST).status_code == 200
    add_rows(8)
    with CaptureQueriesContext(connection) as many:
        assert manager.get(CHANGELIST).status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)


@pytest.fixture
def queue(store, make_staff):
    """A few interactions across kinds, statuses, channels, stores and assignees."""
    ewa = make_staff(roles.SUPPORT, username="ewa")
    other_store = StoreFactory(code="drugi", name="Sklep Drugi")
    jan = CustomerFactory(first_name="Jan", last_name="Wiśniewski", email="jan@x.pl")
    ola = CustomerFactory(first_name="Ola", last_name="Lis", email="ola@x.pl")
    items = {
        "late": log(
            jan,
            subject="Brak zwrotu pieniędzy",
            occurred_at=timezone.now() - dt.timedelta(days=15),
            store=store,
        ),
        "fresh": log(ola, subject="Zła rozmiarówka", kind="return", channel="chat"),
        "review": log(
            ola,
            kind="review",
            subject="Polecam",
            rating=5,
            rating_scale="stars",
            store=other_store,
        ),
        "closed": log(jan, subject="Zarysowany talerz", channel="phone"),
    }
    interaction_set_status(interaction=items["closed"], status="rejected", actor=None)
    interaction_assign(interaction=items["late"], assignee=ewa, actor=None)
    return {**items, "ewa": ewa, "store": store, "other_store": other_store}


def shown(client, **params) -> set[str]:
    response = client.get(CHANGELIST, params)
    assert response.status_code == 200
    return {str(row) for row in response.context["cl"].result_list}


def test_changelist_filters(manager, queue):
    everything = {"Brak zwrotu pieniędzy", "Zła rozmiarówka", "Polecam"}
    everything.add("Zarysowany talerz")
    assert shown(manager) == everything
    assert shown(manager, kind="review") == {"Polecam"}
    assert shown(manager, status="rejected") == {"Zarysowany talerz"}
    assert shown(manager, channel="chat") == {"Zła rozmiarówka"}
    assert shown(manager, store__id__exact=queue["store"].pk) == {
        "Brak zwrotu pieniędzy"
    }
    assert shown(manager, due="overdue") == {"Brak zwrotu pieniędzy"}
    assert shown(manager, due="pending") == {"Brak zwrotu pieniędzy", "Zła rozmiarówka"}
    assert shown(manager, assignee=str(queue["ewa"].pk)) == {"Brak zwrotu pieniędzy"}
    assert shown(manager, assignee="nobody") == {"Zła rozmiarówka", "Zarysowany talerz"}
    assert shown(manager, assignee="me") == set()


def test_assigned_to_me_filter(login, queue):
    client = login(roles.SUPPORT, username="inna")
    interaction_assign(interaction=queue["fresh"], assignee=client.user, actor=None)
    assert shown(client, assignee="me") == {"Zła rozmiarówka"}


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("jan@x.pl", {"Brak zwrotu pieniędzy", "Zarysowany talerz"}),
        ("Wiśniewski", {"Brak zwrotu pieniędzy", "Zarysowany talerz"}),
        ("rozmiarówka", {"Zła rozmiarówka"}),
        ("Lis", {"Zła rozmiarówka", "Polecam"}),
        ("nic-takiego", set()),
    ],
)
def test_search_by_customer_or_subject(manager, queue, term, expected):
    assert shown(manager, q=term) == expected


# --- Adding goes through interaction_log ----------------------------------------------


@pytest.mark.parametrize("role", [roles.MANAGER, roles.SUPPORT])
def test_add_page_renders_without_status_or_due_date(login, role):
    response = login(role).get(ADD)
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert {"customer", "kind", "channel", "subject", "order"} <= set(form.fields)
    assert not {"status", "due_at", "resolved_at", "author"} & set(form.fields)


def test_adding_a_complaint_logs_it_with_its_due_date(support, customer, store):
    order = OrderFactory(customer=customer)
    response = support.post(
        ADD, add_data(customer, order=str(order.pk), store=str(store.pk))
    )
    assert response.status_code == 302, form_errors(response)
    interaction = Interaction.objects.get()  # one: the trial run left nothing
    assert interaction.author == support.user
    assert interaction.status == "open"
    received = interaction.occurred_at
    assert timezone.localtime(received).timetuple()[:5] == (2026, 11, 20, 10, 30)
    assert interaction.due_at == answer_due(received)
    assert interaction.order == order
    assert interaction.store == store
    assert interaction.body == "Klient zgłasza pęknięty kubek."


def test_adding_with_an_assignee(manager, customer, make_staff):
    ewa = make_staff(roles.SUPPORT, username="ewa")
    response = manager.post(ADD, add_data(customer, assignee=str(ewa.pk)))
    assert response.status_code == 302, form_errors(response)
    assert Interaction.objects.get().assignee == ewa


def test_the_services_rules_show_as_form_errors(manager, customer, make_staff):
    ewa = make_staff(roles.SUPPORT, username="ewa")
    future = timezone.localtime() + dt.timedelta(days=2)
    response = manager.post(
        ADD,
        add_data(
            customer,
            order=str(OrderFactory().pk),  # another customer's
            occurred_at_0=future.strftime("%Y-%m-%d"),
            occurred_at_1=future.strftime("%H:%M:%S"),
            rating="4",
            rating_scale="stars",
        ),
    )
    assert set(form_errors(response)) == {"order", "occurred_at", "rating"}
    response = manager.post(ADD, add_data(customer, subject="", body=""))
    assert set(form_errors(response)) == {"body"}
    response = manager.post(
        ADD, add_data(customer, kind="inquiry", assignee=str(ewa.pk))
    )
    assert set(form_errors(response)) == {"assignee"}
    assert not Interaction.objects.exists()


# --- Changing: status and assignee through their services ---------------------------


def test_change_page_shows_history_and_files_read_only(manager, customer):
    complaint = log(customer, occurred_at=RECEIVED)
    interaction_set_status(
        interaction=complaint, status="waiting", actor=None, note="Czekamy na zdjęcia"
    )
    interaction_attach(
        interaction=complaint,
        upload=ContentFile(b"%PDF-1.4 test", name="faktura.pdf"),
        actor=None,
    )
    response = manager.get(change_url(complaint))
    assert response.status_code == 200
    page = response.content.decode()
    form = response.context["adminform"].form
    assert set(form.fields) == {"status", "status_note", "assignee"}
    # Only the moves the table allows from "waiting".
    assert [value for value, _label in form.fields["status"].choices] == [
        "open",
        "waiting",
        "resolved",
        "rejected",
    ]
    assert "Czekamy na zdjęcia" in page
    assert "faktura.pdf" in page
    assert 'name="due_at' not in page
    assert 'name="resolved_at' not in page
    assert 'name="subject"' not in page
    assert "Pęknięty kubek" in page


def test_status_choices_follow_the_transition_table(manager, customer):
    complaint = log(customer)
    interaction_set_status(interaction=complaint, status="resolved", actor=None)
    form = manager.get(change_url(complaint)).context["adminform"].form
    assert {value for value, _label in form.fields["status"].choices} == {
        "resolved",
        "open",
    }


def test_changing_status_and_assignee_records_who_did_it(support, customer, make_staff):
    ewa = make_staff(roles.SUPPORT, username="ewa")
    complaint = log(customer)
    data = follow_up_data(
        support,
        complaint,
        status="resolved",
        status_note="Wymiana wysłana.",
        assignee=str(ewa.pk),
    )
    response = support.post(change_url(complaint), data)
    assert response.status_code == 302, form_errors(response)
    complaint.refresh_from_db()
    assert complaint.status == "resolved"
    assert complaint.resolved_at is not None
    assert complaint.assignee == ewa
    # One row each: the form's trial run of the services was rolled back.
    changes = list(
        InteractionChange.objects.values_list(
            "field", "old_value", "new_value", "note", "actor"
        )
    )
    assert sorted(changes) == [
        ("assignee", "", "ewa", "", support.user.pk),
        ("status", "open", "resolved", "Wymiana wysłana.", support.user.pk),
    ]


def test_saving_without_changes_records_nothing(support, customer):
    complaint = log(customer)
    response = support.post(change_url(complaint), follow_up_data(support, complaint))
    assert response.status_code == 302, form_errors(response)
    assert not InteractionChange.objects.exists()


def test_a_move_the_table_forbids_is_a_form_error(support, customer):
    complaint = log(customer)
    interaction_set_status(interaction=complaint, status="rejected", actor=None)
    data = follow_up_data(support, complaint, status="waiting")
    assert set(form_errors(support.post(change_url(complaint), data))) == {"status"}
    complaint.refresh_from_db()
    assert complaint.status == "rejected"
    assert complaint.changes.count() == 1


def test_a_move_another_user_made_meanwhile_is_reported_not_overwritten(
    support, customer
):
    complaint = log(customer)
    data = follow_up_data(support, complaint, status="waiting")
    # A colleague rejects it while this form is open.
    interaction_set_status(interaction=complaint, status="rejected", actor=None)
    errors = form_errors(support.post(change_url(complaint), data))
    assert set(errors) == {"status"}
    complaint.refresh_from_db()
    assert complaint.status == "rejected"


def test_due_date_and_closing_time_cannot_be_posted(support, customer):
    complaint = log(customer, occurred_at=RECEIVED)
    data = follow_up_data(
        support,
        complaint,
        due_at_0="2030-01-01",
        due_at_1="00:00:00",
        resolved_at_0="2026-03-03",
        resolved_at_1="00:00:00",
        subject="Podmieniony temat",
    )
    assert support.post(change_url(complaint), data).status_code == 302
    complaint.refresh_from_db()
    assert complaint.due_at == answer_due(RECEIVED)
    assert complaint.resolved_at is None
    assert complaint.subject == "Pęknięty kubek"


def test_other_kinds_have_nothing_to_follow_up(manager, customer):
    review = log(customer, kind="review", subject="Polecam")
    response = manager.get(change_url(review))
    assert response.status_code == 200
    assert set(response.context["adminform"].form.fields) == set()
    data = follow_up_data(manager, review, status="open")
    assert manager.post(change_url(review), data).status_code == 302
    review.refresh_from_db()
    assert review.status == ""
    assert not InteractionChange.objects.exists()


def test_viewing_an_interaction_is_access_logged(manager, customer):
    complaint = log(customer)
    assert manager.get(change_url(complaint)).status_code == 200
    entry = AccessLog.objects.get()
    assert (entry.customer, entry.action, entry.user) == (
        customer,
        "view",
        manager.user,
    )


def test_attachment_links_to_the_download_view_once_it_exists(customer, monkeypatch):
    complaint = log(customer)
    attachment = interaction_attach(
        interaction=complaint,
        upload=ContentFile(b"%PDF-1.4 <b>", name="<faktura>.pdf"),
        actor=None,
    )
    inline = customers_admin.InteractionAttachmentInline(Interaction, admin.site)
    real_reverse = customers_admin.reverse

    def without_support(name, *args, **kwargs):
        if name.startswith("support:"):
            raise NoReverseMatch(name)
        return real_reverse(name, *args, **kwargs)

    monkeypatch.setattr(customers_admin, "reverse", without_support)
    assert inline.download(attachment) == "<faktura>.pdf"  # escaped by the admin

    def with_support(name, *args, **kwargs):
        if name == "support:attachment":
            assert kwargs == {"kwargs": {"pk": attachment.pk}}
            return f"/support/attachments/{attachment.pk}/"
        return real_reverse(name, *args, **kwargs)

    monkeypatch.setattr(customers_admin, "reverse", with_support)
    assert inline.download(attachment) == (
        f'<a href="/support/attachments/{attachment.pk}/">&lt;faktura&gt;.pdf</a>'
    )


# --- Roles --------------------------------------------------------------------------


def test_support_can_add_and_change_but_not_delete(support, customer):
    complaint = log(customer)
    assert support.get(CHANGELIST).status_code == 200
    assert support.get(ADD).status_code == 200
    assert support.get(change_url(complaint)).status_code == 200
    delete_url = reverse("admin:customers_interaction_delete", args=[complaint.pk])
    assert support.get(delete_url).status_code == 403
    assert support.post(delete_url, {"post": "yes"}).status_code == 403
    actions = support.get(CHANGELIST).context["action_form"].fields["action"].choices
    names = {name for name, _label in actions}
    assert {"mark_resolved", "assign_to_me"} <= names
    assert "delete_selected" not in names
    assert Interaction.objects.filter(pk=complaint.pk).exists()


def test_manager_can_delete(manager, customer):
    complaint = log(customer)
    delete_url = reverse("admin:customers_interaction_delete", args=[complaint.pk])
    assert manager.get(delete_url).status_code == 200


def test_marketing_only_reads(login, customer):
    client = login(roles.MARKETING)
    complaint = log(customer)
    assert client.get(CHANGELIST).status_code == 200
    response = client.get(change_url(complaint))
    assert response.status_code == 200
    assert 'name="status"' not in response.content.decode()
    assert client.get(ADD).status_code == 403
    response = client.post(change_url(complaint), {"status": "resolved"})
    assert response.status_code == 403
    response = client.post(
        CHANGELIST,
        {"action": "mark_resolved", "_selected_action": [complaint.pk]},
    )
    complaint.refresh_from_db()
    assert complaint.status == "open"


def test_staff_without_a_role_cannot_open_the_log(login):
    assert login().get(CHANGELIST).status_code == 403


# --- Actions ------------------------------------------------------------------------


def run_action(client, action, interactions):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [i.pk for i in interactions]},
        follow=True,
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_mark_resolved_goes_through_the_service(support, customer):
    open_one = log(customer)
    waiting = log(customer, kind="return")
    interaction_set_status(interaction=waiting, status="waiting", actor=None)
    rejected = log(customer)
    interaction_set_status(interaction=rejected, status="rejected", actor=None)
    review = log(customer, kind="review")
    response = run_action(
        support, "mark_resolved", [open_one, waiting, rejected, review]
    )
    assert response.status_code == 200
    for interaction in (open_one, waiting, rejected, review):
        interaction.refresh_from_db()
    assert (open_one.status, waiting.status) == ("resolved", "resolved")
    assert open_one.resolved_at is not None
    assert rejected.status == "rejected"
    assert review.status == ""
    resolved_by_action = InteractionChange.objects.filter(
        new_value="resolved", actor=support.user
    )
    assert sorted(resolved_by_action.values_list("interaction", "old_value")) == sorted(
        [(open_one.pk, "open"), (waiting.pk, "waiting")]
    )
    assert len(messages_of(response)) == 2


def test_assign_to_me_goes_through_the_service(support, customer, make_staff):
    ewa = make_staff(roles.SUPPORT, username="ewa")
    complaint = log(customer)
    taken = log(customer, kind="return")
    interaction_assign(interaction=taken, assignee=ewa, actor=None)
    mine = log(customer)
    interaction_assign(interaction=mine, assignee=support.user, actor=None)
    note = log(customer, kind="note", subject="Notatka")
    response = run_action(support, "assign_to_me", [complaint, taken, mine, note])
    assert response.status_code == 200
    for interaction in (complaint, taken, mine, note):
        interaction.refresh_from_db()
    assert complaint.assignee == taken.assignee == mine.assignee == support.user
    assert note.assignee is None
    by_action = InteractionChange.objects.filter(actor=support.user)
    assert sorted(by_action.values_list("interaction", "old_value", "new_value")) == (
        sorted(
            [
                (complaint.pk, "", support.user.username),
                (taken.pk, "ewa", support.user.username),
            ]
        )
    )
    assert len(messages_of(response)) == 2
