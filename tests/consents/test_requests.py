"""Data-subject requests: the deadline, its extension, the status table, the pages."""

import datetime as dt
import io
import json
import zipfile
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from consents.models import AccessLog, DataSubjectRequest
from consents.requests import (
    ALLOWED_TRANSITIONS,
    dsr_create,
    dsr_extend,
    dsr_max_extension,
    dsr_set_status,
)
from tests.factories.consents import DataSubjectRequestFactory
from tests.factories.customers import AddressFactory, CustomerFactory

pytestmark = pytest.mark.django_db

Status = DataSubjectRequest.Status
Kind = DataSubjectRequest.Kind
WARSAW = ZoneInfo("Europe/Warsaw")


def at(*args):
    return dt.datetime(*args, 10, 0, tzinfo=WARSAW)


@pytest.fixture
def dpo(make_staff):
    return make_staff("Data protection officer", username="dpo")


@pytest.fixture
def request_(customer, dpo):
    return dsr_create(
        kind=Kind.ACCESS, customer=customer, received_at=at(2026, 1, 31), actor=dpo
    )


# --- Deadline --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "due"),
    [
        ((2026, 1, 31), dt.date(2026, 2, 28)),
        ((2024, 1, 31), dt.date(2024, 2, 29)),
        ((2026, 3, 31), dt.date(2026, 4, 30)),
        ((2026, 1, 15), dt.date(2026, 2, 15)),
        ((2025, 12, 20), dt.date(2026, 1, 20)),
    ],
)
def test_due_one_month_after_receipt(customer, dpo, received, due):
    request = dsr_create(
        kind=Kind.ERASURE, customer=customer, received_at=at(*received), actor=dpo
    )
    assert request.due_on == due
    assert request.status == Status.RECEIVED
    assert request.deadline == due


def test_create_refuses_unknown_kind_and_future_receipt(customer, dpo):
    with pytest.raises(ValidationError) as error:
        dsr_create(
            kind="gossip",
            customer=customer,
            received_at=dt.datetime.now(tz=WARSAW) + dt.timedelta(days=2),
            actor=dpo,
        )
    assert set(error.value.error_dict) == {"kind", "received_at"}
    assert not DataSubjectRequest.objects.exists()


# --- Extension -------------------------------------------------------------------


def test_extension_is_recorded(request_, dpo):
    dsr_extend(
        request=request_,
        until=dt.date(2026, 4, 15),
        reason="Many requests at once",
        actor=dpo,
    )
    request_.refresh_from_db()
    assert request_.extended_until == dt.date(2026, 4, 15)
    assert request_.extension_reason == "Many requests at once"
    assert request_.deadline == dt.date(2026, 4, 15)
    assert request_.handled_by == dpo


def test_extension_is_capped_at_two_further_months(request_, dpo):
    # Received 31 January, due 28 February: three months from receipt at most.
    assert dsr_max_extension(request_) == dt.date(2026, 4, 30)
    dsr_extend(request=request_, until=dt.date(2026, 4, 30), reason="r", actor=dpo)
    with pytest.raises(ValidationError) as error:
        dsr_extend(request=request_, until=dt.date(2026, 5, 1), reason="r", actor=dpo)
    assert error.value.error_dict["until"][0].code == "too_late"
    request_.refresh_from_db()
    assert request_.extended_until == dt.date(2026, 4, 30)


def test_extension_needs_a_reason_and_a_later_date(request_, dpo):
    with pytest.raises(ValidationError) as error:
        dsr_extend(request=request_, until=dt.date(2026, 2, 28), reason=" ", actor=dpo)
    assert error.value.error_dict["reason"][0].code == "required"
    assert error.value.error_dict["until"][0].code == "out_of_range"
    request_.refresh_from_db()
    assert request_.extended_until is None


def test_closed_request_cannot_be_extended(request_, dpo):
    dsr_set_status(request=request_, status=Status.IN_PROGRESS, actor=dpo)
    dsr_set_status(request=request_, status=Status.COMPLETED, actor=dpo)
    with pytest.raises(ValidationError) as error:
        dsr_extend(request=request_, until=dt.date(2026, 3, 5), reason="r", actor=dpo)
    assert error.value.error_dict["status"][0].code == "closed"


# --- Status ----------------------------------------------------------------------

ALLOWED = [
    (old, new) for old, targets in ALLOWED_TRANSITIONS.items() for new in targets
]
REFUSED = [
    (old, new)
    for old in Status.values
    for new in Status.values
    if new not in ALLOWED_TRANSITIONS[old]
]


def _in_status(customer, status):
    return DataSubjectRequestFactory(
        customer=customer, status=status, due_on=dt.date(2026, 2, 28)
    )


def test_transitions_table_is_as_documented():
    assert ALLOWED_TRANSITIONS == {
        "received": {"verifying", "in_progress", "rejected"},
        "verifying": {"in_progress", "rejected"},
        "in_progress": {"completed", "rejected"},
        "completed": set(),
        "rejected": set(),
    }


@pytest.mark.parametrize(("old", "new"), ALLOWED)
def test_allowed_transitions(customer, dpo, old, new):
    request = _in_status(customer, old)
    dsr_set_status(request=request, status=new, actor=dpo, outcome="Done and told")
    request.refresh_from_db()
    assert request.status == new
    assert request.handled_by == dpo
    closed = new in (Status.COMPLETED, Status.REJECTED)
    assert (request.completed_at is not None) is closed


@pytest.mark.parametrize(("old", "new"), REFUSED)
def test_refused_transitions(customer, dpo, old, new):
    request = _in_status(customer, old)
    with pytest.raises(ValidationError) as error:
        dsr_set_status(request=request, status=new, actor=dpo, outcome="x")
    assert error.value.error_dict["status"][0].code == "invalid_transition"
    request.refresh_from_db()
    assert request.status == old


def test_completing_records_who_when_and_outcome(request_, dpo):
    dsr_set_status(request=request_, status=Status.IN_PROGRESS, actor=dpo)
    dsr_set_status(
        request=request_, status=Status.COMPLETED, actor=dpo, outcome="Sent the ZIP"
    )
    request_.refresh_from_db()
    assert request_.completed_at is not None
    assert request_.handled_by == dpo
    assert request_.outcome == "Sent the ZIP"
    assert not DataSubjectRequest.objects.open().exists()


def test_rejecting_needs_the_reason(request_, dpo):
    with pytest.raises(ValidationError) as error:
        dsr_set_status(request=request_, status=Status.REJECTED, actor=dpo)
    assert error.value.error_dict["outcome"][0].code == "required"


# --- Pages -----------------------------------------------------------------------

QUEUE = reverse("consents:request_list")


def detail(request):
    return reverse("consents:request_detail", args=[request.pk])


def test_support_gets_403_everywhere(client, make_staff, request_):
    client.force_login(make_staff("Support"))
    assert client.get(QUEUE).status_code == 403
    assert client.get(detail(request_)).status_code == 403
    assert client.get(reverse("consents:request_create")).status_code == 403
    response = client.post(
        reverse("consents:request_erase", args=[request_.pk]),
        {"confirm": str(request_.customer_id)},
    )
    assert response.status_code == 403
    request_.customer.refresh_from_db()
    assert request_.customer.erased_at is None


def test_anonymous_is_sent_to_login(client, request_):
    response = client.get(QUEUE)
    assert response.status_code == 302
    assert reverse("login") in response.url


def test_queue_lists_open_first_and_marks_overdue(client, dpo, customer):
    overdue = DataSubjectRequestFactory(
        customer=customer, kind=Kind.ERASURE, due_on=dt.date(2020, 1, 1)
    )
    done = DataSubjectRequestFactory(
        customer=customer,
        kind=Kind.ACCESS,
        status=Status.COMPLETED,
        due_on=dt.date(2019, 1, 1),
    )
    client.force_login(dpo)
    response = client.get(QUEUE)
    assert response.status_code == 200
    rows = list(response.context["requests"])
    assert rows.index(overdue) < rows.index(done)
    assert b"is-overdue" in response.content

    only_done = client.get(QUEUE, {"status": "completed"})
    assert list(only_done.context["requests"]) == [done]
    only_erasure = client.get(QUEUE, {"kind": "erasure"})
    assert list(only_erasure.context["requests"]) == [overdue]


def test_manager_may_view_but_not_change(client, make_staff, request_):
    client.force_login(make_staff("Manager"))
    assert client.get(QUEUE).status_code == 200
    assert client.get(detail(request_)).status_code == 200
    response = client.post(
        reverse("consents:request_status", args=[request_.pk]),
        {"status": "in_progress"},
    )
    assert response.status_code == 403


def test_create_page_makes_a_request(client, dpo, customer):
    client.force_login(dpo)
    assert client.get(reverse("consents:request_create")).status_code == 200
    response = client.post(
        reverse("consents:request_create"),
        {
            "kind": "access",
            "customer": customer.pk,
            "received_at": "2026-01-31T10:00",
            "channel": "email",
            "requester": "Signed email",
        },
    )
    request = DataSubjectRequest.objects.get()
    assert response.status_code == 302
    assert response.url == detail(request)
    assert request.due_on == dt.date(2026, 2, 28)
    assert request.customer == customer


def test_status_and_extension_forms(client, dpo, request_):
    client.force_login(dpo)
    page = client.get(detail(request_))
    assert page.status_code == 200
    client.post(
        reverse("consents:request_status", args=[request_.pk]),
        {"status": "in_progress"},
    )
    client.post(
        reverse("consents:request_extend", args=[request_.pk]),
        {"until": "2026-04-10", "reason": "Complex"},
    )
    refused = client.post(
        reverse("consents:request_status", args=[request_.pk]),
        {"status": "received"},
        follow=True,
    )
    request_.refresh_from_db()
    assert request_.status == Status.IN_PROGRESS
    assert request_.extended_until == dt.date(2026, 4, 10)
    assert refused.status_code == 200
    assert any(m.level_tag == "error" for m in refused.context["messages"])


def test_export_download(client, dpo, request_):
    client.force_login(dpo)
    response = client.post(reverse("consents:request_export", args=[request_.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "attachment" in response["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        document = json.loads(archive.read("customer.json"))
    assert document["profile"]["email"] == request_.customer.email
    assert AccessLog.objects.filter(
        customer=request_.customer, action="access_export", user=dpo
    ).exists()


def test_dpo_erases_after_typing_the_customer_id(client, dpo):
    customer = CustomerFactory()
    AddressFactory(customer=customer)
    request = DataSubjectRequestFactory(
        customer=customer, kind=Kind.ERASURE, due_on=dt.date(2026, 2, 28)
    )
    client.force_login(dpo)
    erase = reverse("consents:request_erase", args=[request.pk])
    assert client.get(erase).status_code == 200

    wrong = client.post(erase, {"confirm": str(customer.pk + 1)})
    assert wrong.status_code == 200
    customer.refresh_from_db()
    assert customer.erased_at is None

    response = client.post(erase, {"confirm": str(customer.pk)})
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.erased_at is not None
    assert customer.email is None
    assert not customer.addresses.exists()


def test_erasure_needs_change_customer_too(client, make_staff, request_):
    from django.contrib.auth.models import Permission

    user = make_staff(username="no-customer-change")
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_datasubjectrequest", "change_datasubjectrequest"]
        )
    )
    client.force_login(user)
    assert client.get(detail(request_)).status_code == 200
    response = client.post(
        reverse("consents:request_erase", args=[request_.pk]),
        {"confirm": str(request_.customer_id)},
    )
    assert response.status_code == 403


def test_restrict_and_object_actions(client, dpo, customer):
    request = DataSubjectRequestFactory(
        customer=customer, kind=Kind.RESTRICTION, due_on=dt.date(2026, 2, 28)
    )
    client.force_login(dpo)
    action = reverse("consents:request_action", args=[request.pk])
    client.post(action, {"action": "restrict"})
    customer.refresh_from_db()
    assert customer.restricted_at is not None
    client.post(action, {"action": "restriction_lift"})
    client.post(action, {"action": "object_marketing"})
    customer.refresh_from_db()
    assert customer.restricted_at is None
    assert customer.marketing_objection_at is not None
    response = client.post(action, {"action": "nonsense"})
    assert response.status_code == 400


def test_queue_query_count_does_not_grow(client, dpo, django_assert_max_num_queries):
    client.force_login(dpo)
    for _i in range(3):
        DataSubjectRequestFactory(due_on=dt.date(2026, 2, 28), handled_by=dpo)
    client.get(QUEUE)  # warm the session and permission caches
    with django_assert_max_num_queries(8) as few:
        client.get(QUEUE)
    for _i in range(20):
        DataSubjectRequestFactory(due_on=dt.date(2026, 2, 28), handled_by=dpo)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(QUEUE)


def test_detail_offers_the_kind_s_actions(client, dpo, customer):
    client.force_login(dpo)
    restriction = DataSubjectRequestFactory(
        customer=customer, kind=Kind.RESTRICTION, due_on=dt.date(2026, 2, 28)
    )
    page = client.get(detail(restriction)).content.decode()
    assert 'value="restrict"' in page
    assert reverse("consents:request_export", args=[restriction.pk]) not in page
    access = DataSubjectRequestFactory(
        customer=customer, kind=Kind.ACCESS, due_on=dt.date(2026, 2, 28)
    )
    page = client.get(detail(access)).content.decode()
    assert reverse("consents:request_export", args=[access.pk]) in page
    assert 'value="restrict"' not in page
