"""Segments and RFM in the Django admin: every write with rules through the services."""

import csv
import importlib
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone, translation

from consents.erasure import customer_restrict
from consents.models import AccessLog
from customers import roles
from customers.paginators import EstimatedCountPaginator
from customers.roles import grant_role_permissions
from segments.metrics import metrics_recompute
from segments.models import (
    CurrencyRate,
    CustomerMetrics,
    RfmCell,
    RfmSegment,
    Segment,
    SegmentChange,
    SegmentMembership,
    SegmentRebuild,
)
from segments.rfm import rfm_grid_ensure
from segments.rules import describe_rules
from segments.services import segment_create, segment_members_add, segment_rebuild
from segments.tasks import metrics_recompute_task, segment_rebuild_task
from tests.conftest import ensure_roles
from tests.factories.customers import CustomerFactory, StoreFactory
from tests.factories.orders import OrderFactory
from tests.staff import StaffClient

pytestmark = pytest.mark.django_db

SEGMENTS = reverse("admin:segments_segment_changelist")
ADD_SEGMENT = reverse("admin:segments_segment_add")
MEMBERS = reverse("admin:segments_segmentmembership_changelist")
ADD_MEMBER = reverse("admin:segments_segmentmembership_add")
METRICS = reverse("admin:segments_customermetrics_changelist")
CELLS = reverse("admin:segments_rfmcell_changelist")
REPEAT_BUYERS = {
    "op": "and",
    "rules": [{"field": "orders_count", "operator": "gte", "value": 2}],
}


def url(name, *args):
    return reverse(f"admin:segments_{name}", args=args)


def messages_of(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def management(prefix, total=0, initial=0):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def segment_data(**overrides):
    data = {
        "name": "Stali klienci",
        "description": "",
        "kind": "dynamic",
        "rules": json.dumps(REPEAT_BUYERS),
        "schedule": "daily",
        "is_active": "on",
    }
    data.update(overrides)
    return data


def change_data(segment, **overrides):
    """POST data of a segment's change page (its read-only rebuilds inline)."""
    initial = min(segment.rebuilds.count(), 10)
    data = {
        "name": segment.name,
        "description": segment.description,
        "schedule": segment.schedule,
        "is_active": "on" if segment.is_active else "",
        **management("rebuilds", total=initial, initial=initial),
    }
    if segment.is_dynamic:
        data["rules"] = json.dumps(segment.rules)
    data.update(overrides)
    return {key: value for key, value in data.items() if value != ""}


def offered_actions(page):
    """The actions the changelist offers the user (none: no action form at all)."""
    form = page.context["action_form"]
    return set() if form is None else set(dict(form.fields["action"].choices))


def action(name, *objects):
    return {"action": name, ACTION_CHECKBOX_NAME: [str(obj.pk) for obj in objects]}


@pytest.fixture(autouse=True)
def _english(client):
    """Texts are checked in English (Polish is the default language)."""
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _segments_roles(db):
    """The roles' segment permissions and the RFM grid, as the migration made them.

    A flushed database (a transactional test ran before) gets the roles back
    without them from tests.conftest.ensure_roles; the grant is idempotent.
    """
    from django.apps import apps

    ensure_roles()
    migration = importlib.import_module("segments.migrations.0002_rfm_grid_and_roles")
    grant_role_permissions(apps, "segments", migration.PERMISSIONS)
    rfm_grid_ensure()


@pytest.fixture
def login(client, make_staff):
    def as_role(*role_names, username):
        user = make_staff(*role_names, username=username)
        client.force_login(user)
        client.user = user
        return client

    return as_role


@pytest.fixture
def marketing(login):
    return login(roles.MARKETING, username="marta")


@pytest.fixture
def support(login):
    return login(roles.SUPPORT, username="sylwia")


@pytest.fixture
def manager(login):
    return login(roles.MANAGER, username="kierownik")


@pytest.fixture
def rebuilds_queued(monkeypatch):
    """segment_rebuild_task.delay calls, recorded instead of going to a broker."""
    calls = []
    monkeypatch.setattr(
        segment_rebuild_task, "delay", lambda *a, **kw: calls.append((a, kw))
    )
    return calls


def run_queued(calls):
    for args, kwargs in calls:
        segment_rebuild_task(*args, **kwargs)


@pytest.fixture
def buyers(db):
    """Four buyers with 1, 2, 3 and 4 orders, and their metrics."""
    store = StoreFactory(code="main")
    people = []
    for count in (1, 2, 3, 4):
        customer = CustomerFactory()
        for days in range(count):
            OrderFactory(
                customer=customer,
                store=store,
                placed_at=timezone.now() - timedelta(days=10 + days * 20),
            )
        people.append(customer)
    metrics_recompute()
    return people


# --- Segments: permissions per role ------------------------------------------------


def test_marketing_adds_a_dynamic_segment_through_the_service(
    marketing, buyers, rebuilds_queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = marketing.post(ADD_SEGMENT, segment_data())
    assert response.status_code == 302, response.context["adminform"].form.errors
    segment = Segment.objects.get()
    assert segment.created_by == marketing.user
    assert segment.kind == "dynamic"
    assert segment.rules == REPEAT_BUYERS
    assert "The members are being selected by the new rules." in messages_of(response)
    assert rebuilds_queued == [
        ((segment.pk,), {"trigger": "edit", "user_id": marketing.user.pk})
    ]
    run_queued(rebuilds_queued)
    segment.refresh_from_db()
    assert segment.size == 3
    rebuild = segment.rebuilds.get()
    assert (rebuild.trigger, rebuild.requested_by) == ("edit", marketing.user)


def test_an_inactive_new_segment_is_saved_inactive_and_not_rebuilt(
    marketing, rebuilds_queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = marketing.post(ADD_SEGMENT, segment_data(is_active=""))
    assert response.status_code == 302
    assert Segment.objects.get().is_active is False
    assert rebuilds_queued == []


def test_the_add_page_offers_the_rules_as_json(marketing):
    response = marketing.get(ADD_SEGMENT)
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.fields) == [
        "name",
        "description",
        "kind",
        "rules",
        "schedule",
        "is_active",
    ]
    assert '"operator": "gte"' in str(form.fields["rules"].help_text)


def test_a_static_segments_page_has_no_rules(marketing, customer):
    segment = segment_create(name="Lista VIP", kind="static")
    segment_members_add(segment=segment, customers=[customer])
    page = marketing.get(url("segment_change", segment.pk))
    assert "rules" not in page.context["adminform"].form.fields
    response = marketing.post(
        url("segment_change", segment.pk), change_data(segment, name="Lista VIP 2")
    )
    assert response.status_code == 302
    segment.refresh_from_db()
    assert (segment.name, segment.kind, segment.rules) == ("Lista VIP 2", "static", {})
    assert segment.memberships.count() == 1


def test_marketing_adds_a_static_segment_without_rules(
    marketing, rebuilds_queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = marketing.post(
            ADD_SEGMENT, segment_data(kind="static", rules=json.dumps(REPEAT_BUYERS))
        )
    assert response.status_code == 302
    segment = Segment.objects.get()
    assert (segment.kind, segment.rules) == ("static", {})
    assert rebuilds_queued == []


def test_support_sees_segments_but_cannot_add_or_change_them(support):
    segment = segment_create(name="Stali klienci", rules=REPEAT_BUYERS)
    assert support.get(SEGMENTS).status_code == 200
    page = support.get(url("segment_change", segment.pk))
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert support.get(ADD_SEGMENT).status_code == 403
    response = support.post(
        url("segment_change", segment.pk), change_data(segment, name="Zmiana")
    )
    assert response.status_code == 403
    assert support.post(ADD_SEGMENT, segment_data()).status_code == 403
    segment.refresh_from_db()
    assert segment.name == "Stali klienci"
    assert Segment.objects.count() == 1


# --- Segments: the rules on the form -------------------------------------------------


def test_invalid_rules_show_the_services_message_and_save_nothing(marketing):
    rules = {"op": "and", "rules": [{"field": "password", "operator": "equals",
                                     "value": "x"}]}  # fmt: skip
    response = marketing.post(ADD_SEGMENT, segment_data(rules=json.dumps(rules)))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["rules"]
    assert "rules.0.field" in errors["rules"][0]
    assert "password" in errors["rules"][0]
    assert "rules.0.field" in response.content.decode()
    assert not Segment.objects.exists()
    assert not SegmentRebuild.objects.exists()


def test_rules_that_are_not_json_are_refused(marketing):
    response = marketing.post(ADD_SEGMENT, segment_data(rules='{"op": "and",'))
    assert response.status_code == 200
    assert "rules" in response.context["adminform"].form.errors
    assert not Segment.objects.exists()


def test_the_services_other_rules_show_on_their_fields(marketing):
    response = marketing.post(ADD_SEGMENT, segment_data(name="   "))
    assert response.status_code == 200
    assert "name" in response.context["adminform"].form.errors
    assert not Segment.objects.exists()


def test_changed_rules_go_through_segment_update_and_rebuild(
    marketing, buyers, rebuilds_queued, django_capture_on_commit_callbacks
):
    segment = segment_create(name="Stali klienci", rules=REPEAT_BUYERS)
    segment_rebuild(segment=segment)
    three = {"op": "and", "rules": [{"field": "orders_count", "operator": "gte",
                                     "value": 3}]}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = marketing.post(
            url("segment_change", segment.pk),
            change_data(segment, rules=json.dumps(three), kind="static"),
        )
    assert response.status_code == 302, response.context["adminform"].form.errors
    segment.refresh_from_db()
    assert segment.rules == three
    assert segment.kind == "dynamic"  # fixed once created
    assert [kw["trigger"] for _a, kw in rebuilds_queued] == ["edit"]
    run_queued(rebuilds_queued)
    segment.refresh_from_db()
    assert segment.size == 2
    assert segment.changes.filter(kind="left").count() == 1


def test_a_new_name_alone_does_not_rebuild(
    marketing, rebuilds_queued, django_capture_on_commit_callbacks
):
    segment = segment_create(name="Stali klienci", rules=REPEAT_BUYERS)
    with django_capture_on_commit_callbacks(execute=True):
        response = marketing.post(
            url("segment_change", segment.pk), change_data(segment, name="Wierni")
        )
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.name == "Wierni"
    assert rebuilds_queued == []


def test_invalid_rules_on_change_keep_the_stored_ones(marketing):
    segment = segment_create(name="Stali klienci", rules=REPEAT_BUYERS)
    bad = {"op": "xor", "rules": []}
    response = marketing.post(
        url("segment_change", segment.pk),
        change_data(segment, rules=json.dumps(bad), name="Inna nazwa"),
    )
    assert response.status_code == 200
    assert "rules" in response.context["adminform"].form.errors
    segment.refresh_from_db()
    assert (segment.name, segment.rules) == ("Stali klienci", REPEAT_BUYERS)


def test_the_change_page_reads_the_rules_out_and_lists_recent_rebuilds(
    marketing, buyers
):
    segment = segment_create(name="Stali klienci", rules=REPEAT_BUYERS)
    for _ in range(12):
        segment_rebuild(segment=segment)
    response = marketing.get(url("segment_change", segment.pk))
    assert response.status_code == 200
    content = response.content.decode()
    assert describe_rules(REPEAT_BUYERS) in content
    (inline,) = response.context["inline_admin_formsets"]
    assert len(inline.formset.forms) == 10  # the latest only
    assert not inline.has_add_permission
    assert not inline.has_change_permission
    assert f"?segment__id__exact={segment.pk}" in content


# --- Segments: actions ---------------------------------------------------------------


def test_rebuild_now_queues_each_segment_and_the_task_rebuilds_it(
    marketing, buyers, rebuilds_queued, django_capture_on_commit_callbacks
):
    repeat = segment_create(name="Stali klienci", rules=REPEAT_BUYERS)
    everyone = segment_create(name="Wszyscy", rules={})
    with django_capture_on_commit_callbacks(execute=True):
        response = marketing.post(SEGMENTS, action("rebuild_now", repeat, everyone))
    assert response.status_code == 302
    assert "2 segments will be rebuilt in a moment." in messages_of(response)
    assert sorted(args for args, _kw in rebuilds_queued) == [
        (repeat.pk,),
        (everyone.pk,),
    ]
    assert {(kw["trigger"], kw["user_id"]) for _a, kw in rebuilds_queued} == {
        ("manual", marketing.user.pk)
    }
    run_queued(rebuilds_queued)
    repeat.refresh_from_db()
    everyone.refresh_from_db()
    assert (repeat.size, everyone.size) == (3, 4)
    assert repeat.rebuilds.get().requested_by == marketing.user


def test_support_cannot_rebuild(
    support, rebuilds_queued, django_capture_on_commit_callbacks
):
    segment = segment_create(name="Stali klienci", rules=REPEAT_BUYERS)
    page = support.get(SEGMENTS)
    assert "rebuild_now" not in offered_actions(page)
    with django_capture_on_commit_callbacks(execute=True):
        support.post(SEGMENTS, action("rebuild_now", segment))
    assert rebuilds_queued == []


@pytest.fixture
def listed(buyers):
    """A static segment with a customer whose name is a spreadsheet formula."""
    segment = segment_create(name="Lista VIP", kind="static")
    tricky = CustomerFactory(first_name='=HYPERLINK("http://x")', last_name="Zła")
    restricted = buyers[0]
    segment_members_add(segment=segment, customers=[buyers[1], tricky, restricted])
    customer_restrict(customer=restricted, actor=None)
    return segment, tricky, restricted


def test_export_members_is_a_formula_safe_csv_and_logged(marketing, buyers, listed):
    segment, tricky, restricted = listed
    response = marketing.post(SEGMENTS, action("export_members", segment))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert f"segment-{segment.pk}-lista-vip" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert {row["email"] for row in rows} == {buyers[1].email, tricky.email}
    by_email = {row["email"]: row for row in rows}
    assert by_email[tricky.email]["first_name"] == '\'=HYPERLINK("http://x")'
    # Restricted customers are never exported; everyone exported is logged.
    logged = AccessLog.objects.filter(action="export")
    assert set(logged.values_list("customer_id", flat=True)) == {
        buyers[1].pk,
        tricky.pk,
    }
    assert set(logged.values_list("user", flat=True)) == {marketing.user.pk}
    assert "Lista VIP" in logged.first().purpose


def test_export_is_refused_without_the_permission(support, listed):
    segment, _tricky, _restricted = listed
    page = support.get(SEGMENTS)
    assert "export_members" not in offered_actions(page)
    response = support.post(SEGMENTS, action("export_members", segment))
    assert not response.get("Content-Type", "").startswith("text/csv")
    assert not AccessLog.objects.filter(action="export").exists()


def test_marketing_deletes_a_segment_without_listing_every_member(marketing, buyers):
    segment = segment_create(name="Wszyscy", rules={})
    segment_rebuild(segment=segment)
    page = marketing.post(SEGMENTS, action("delete_selected", segment))
    assert page.status_code == 200
    assert dict(page.context["model_count"])["segment members"] == 4
    assert not page.context["perms_lacking"]
    response = marketing.post(
        SEGMENTS, {**action("delete_selected", segment), "post": "yes"}
    )
    assert response.status_code == 302
    assert not Segment.objects.exists()
    assert not SegmentMembership.objects.exists()


# --- Segment members -----------------------------------------------------------------


def test_marketing_puts_a_customer_on_a_static_list_through_the_service(
    marketing, customer
):
    segment = segment_create(name="Lista VIP", kind="static")
    segment_create(name="Wszyscy", rules={})
    page = marketing.get(ADD_MEMBER)
    assert page.status_code == 200
    choices = page.context["adminform"].form.fields["segment"].queryset
    assert list(choices) == [segment]  # static segments only
    response = marketing.post(
        ADD_MEMBER, {"segment": segment.pk, "customer": customer.pk}
    )
    assert response.status_code == 302
    membership = SegmentMembership.objects.get()
    assert (membership.segment, membership.customer) == (segment, customer)
    assert membership.added_by == marketing.user
    change = SegmentChange.objects.get()
    assert (change.kind, change.rebuild.trigger) == ("entered", "list")
    segment.refresh_from_db()
    assert segment.size == 1


def test_a_customer_already_on_the_list_is_refused(marketing, customer):
    segment = segment_create(name="Lista VIP", kind="static")
    segment_members_add(segment=segment, customers=[customer])
    response = marketing.post(
        ADD_MEMBER, {"segment": segment.pk, "customer": customer.pk}
    )
    assert response.status_code == 200
    assert "customer" in response.context["adminform"].form.errors
    assert SegmentMembership.objects.count() == 1
    assert SegmentRebuild.objects.filter(trigger="list").count() == 1


def test_dynamic_segments_cannot_be_added_to(marketing, customer):
    segment = segment_create(name="Wszyscy", rules={})
    response = marketing.post(
        ADD_MEMBER, {"segment": segment.pk, "customer": customer.pk}
    )
    assert response.status_code == 200
    assert "segment" in response.context["adminform"].form.errors
    assert not SegmentMembership.objects.exists()


def test_removing_from_a_list_goes_through_the_service(marketing, buyers):
    static = segment_create(name="Lista VIP", kind="static")
    segment_members_add(segment=static, customers=buyers[:2])
    dynamic = segment_create(name="Wszyscy", rules={})
    segment_rebuild(segment=dynamic)
    selected = [
        *static.memberships.all(),
        dynamic.memberships.get(customer=buyers[0]),
    ]
    response = marketing.post(MEMBERS, action("remove_from_list", *selected))
    assert response.status_code == 302
    assert messages_of(response) == [
        "2 customers taken off the list.",
        "1 skipped: a dynamic segment's members come from its rules.",
    ]
    assert not static.memberships.exists()
    assert static.changes.filter(kind="left").count() == 2
    assert dynamic.memberships.count() == 4


def test_a_dynamic_segments_member_cannot_be_deleted(marketing, buyers):
    dynamic = segment_create(name="Wszyscy", rules={})
    segment_rebuild(segment=dynamic)
    membership = dynamic.memberships.first()
    assert (
        marketing.get(url("segmentmembership_delete", membership.pk)).status_code == 403
    )
    static = segment_create(name="Lista VIP", kind="static")
    segment_members_add(segment=static, customers=[buyers[0]])
    listed = static.memberships.get()
    response = marketing.post(
        url("segmentmembership_delete", listed.pk), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not static.memberships.exists()
    assert static.changes.get(kind="left").customer == buyers[0]
    assert dynamic.memberships.count() == 4


def test_support_cannot_change_lists(support, customer):
    segment = segment_create(name="Lista VIP", kind="static")
    assert support.get(MEMBERS).status_code == 200
    response = support.post(
        ADD_MEMBER, {"segment": segment.pk, "customer": customer.pk}
    )
    assert response.status_code == 403
    assert not SegmentMembership.objects.exists()


# --- Customer metrics: read-only -----------------------------------------------------


def test_metrics_are_read_only_even_for_the_manager(manager, buyers):
    metrics = CustomerMetrics.objects.overall().get(customer=buyers[3])
    assert manager.get(url("customermetrics_add")).status_code == 403
    page = manager.get(url("customermetrics_change", metrics.pk))
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert not page.context["has_delete_permission"]
    response = manager.post(
        url("customermetrics_change", metrics.pk), {"orders_count": 99}
    )
    assert response.status_code == 403
    assert manager.get(url("customermetrics_delete", metrics.pk)).status_code == 403
    metrics.refresh_from_db()
    assert metrics.orders_count == 4


def test_viewing_a_customers_metrics_is_logged(support, buyers):
    metrics = CustomerMetrics.objects.overall().get(customer=buyers[3])
    assert support.get(url("customermetrics_change", metrics.pk)).status_code == 200
    entry = AccessLog.objects.get()
    assert (entry.customer, entry.action, entry.user) == (
        buyers[3],
        "view",
        support.user,
    )


def test_metrics_list_never_counts_the_whole_table(
    support, buyers, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):
        response = support.get(METRICS)
    assert response.status_code == 200
    changelist = response.context["cl"]
    assert isinstance(changelist.paginator, EstimatedCountPaginator)
    assert changelist.show_full_result_count is False
    assert len(changelist.result_list) == 8  # four buyers, overall and in the store


def test_metrics_list_filters_and_searches(support, buyers):
    response = support.get(METRICS, {"store": "all"})
    assert {m.store_id for m in response.context["cl"].result_list} == {None}
    response = support.get(METRICS, {"q": buyers[2].email})
    assert {m.customer_id for m in response.context["cl"].result_list} == {buyers[2].pk}
    response = support.get(METRICS, {"rfm_segment__exact": "no-such-segment"})
    assert list(response.context["cl"].result_list) == []


# --- RFM grid, segments and currency rates -------------------------------------------


def test_the_manager_moves_a_grid_cell_and_is_told_when_it_applies(manager):
    cell = RfmCell.objects.get(recency=1, frequency=1)
    hibernating = RfmSegment.objects.get(code="hibernating")
    response = manager.post(url("rfmcell_change", cell.pk), {"segment": hibernating.pk})
    assert response.status_code == 302
    cell.refresh_from_db()
    assert cell.segment == hibernating
    assert any("next recompute" in message for message in messages_of(response))


def test_the_grid_list_takes_a_fixed_number_of_queries(
    manager, django_assert_max_num_queries
):
    # The selects' choices are read once, not once per row (25 rows).
    with django_assert_max_num_queries(14):
        response = manager.get(CELLS)
    assert len(response.context["cl"].result_list) == 25


def test_the_grid_is_edited_in_the_list(manager):
    cells = list(RfmCell.objects.order_by("-recency", "frequency"))
    lost = RfmSegment.objects.get(code="lost")
    data = {
        **management("form", total=len(cells), initial=len(cells)),
        "_save": "Save",
    }
    for index, cell in enumerate(cells):
        data[f"form-{index}-id"] = cell.pk
        data[f"form-{index}-segment"] = lost.pk if index == 0 else cell.segment_id
    response = manager.post(CELLS, data)
    assert response.status_code == 302
    assert RfmCell.objects.get(pk=cells[0].pk).segment == lost
    notes = [m for m in messages_of(response) if "next recompute" in m]
    assert len(notes) == 1  # once, however many cells changed


def test_recompute_now_queues_the_recompute_that_applies_the_grid(
    manager, buyers, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(metrics_recompute_task, "delay", lambda: queued.append(1))
    scored = CustomerMetrics.objects.overall().get(customer=buyers[0])
    cell = RfmCell.objects.get(
        recency=scored.recency_score, frequency=scored.frequency_score
    )
    other = RfmSegment.objects.exclude(pk=cell.segment_id).first()
    RfmCell.objects.filter(pk=cell.pk).update(segment=other)
    with django_capture_on_commit_callbacks(execute=True):
        response = manager.post(CELLS, action("recompute_now", cell))
    assert response.status_code == 302
    assert queued == [1]
    metrics_recompute_task()
    scored.refresh_from_db()
    assert scored.rfm_segment == other.code


def test_marketing_cannot_change_the_grid_or_recompute(marketing):
    cell = RfmCell.objects.get(recency=1, frequency=1)
    lost = RfmSegment.objects.get(code="lost")
    response = marketing.post(url("rfmcell_change", cell.pk), {"segment": lost.pk})
    assert response.status_code == 403
    page = marketing.get(CELLS)
    assert page.status_code == 200
    assert "recompute_now" not in offered_actions(page)


def test_rfm_segments_are_renamed_never_added_or_deleted(manager):
    segment = RfmSegment.objects.get(code="champions")
    assert manager.get(url("rfmsegment_add")).status_code == 403
    assert manager.get(url("rfmsegment_delete", segment.pk)).status_code == 403
    response = manager.post(
        url("rfmsegment_change", segment.pk),
        {
            "code": "lost",  # read-only: ignored
            "name": "Mistrzowie",
            "description": "Kupują często i dużo.",
            "color": "#123abc",
            "position": 3,
        },
    )
    assert response.status_code == 302
    segment.refresh_from_db()
    assert (segment.code, segment.name, segment.color) == (
        "champions",
        "Mistrzowie",
        "#123abc",
    )
    bad = manager.post(
        url("rfmsegment_change", segment.pk),
        {"name": "", "description": "", "color": "red", "position": 0},
    )
    assert "color" in bad.context["adminform"].form.errors


def test_currency_rates_are_the_managers(manager, marketing_user_client):
    response = manager.post(
        url("currencyrate_add"), {"currency": "EUR", "rate": "4.30"}
    )
    assert response.status_code == 302
    assert CurrencyRate.objects.get().rate == Decimal("4.30")
    assert any("next recompute" in message for message in messages_of(response))
    assert marketing_user_client.get(url("currencyrate_changelist")).status_code == 200
    assert marketing_user_client.get(url("currencyrate_add")).status_code == 403


@pytest.fixture
def marketing_user_client(make_staff):
    client = StaffClient()
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    client.force_login(make_staff(roles.MARKETING, username="marek"))
    return client


@pytest.mark.parametrize(
    "model",
    [
        "segmentrebuild",
        "segmentchange",
        "rfmsegmentmove",
        "rfmthreshold",
        "metricsqueue",
    ],
)
def test_history_and_computed_tables_are_read_only_lists(admin_client, buyers, model):
    segment = segment_create(name="Wszyscy", rules={})
    segment_rebuild(segment=segment)
    assert admin_client.get(url(f"{model}_changelist")).status_code == 200
    assert admin_client.get(url(f"{model}_add")).status_code == 403
