"""POST and GET /api/v1/interactions/: the shop's reviews, inquiries and complaints."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from consents.models import AccessLog
from customers.interactions import (
    answer_due,
    interaction_log,
    interaction_set_status,
)
from customers.models import ApiKey, Customer, CustomerIdentity, Interaction
from customers.services import customer_upsert
from tests.factories.customers import (
    CustomerFactory,
    CustomerIdentityFactory,
    InteractionFactory,
    StoreFactory,
)
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/interactions/"
RECEIVED = "2026-03-02T09:30:00+01:00"


@pytest.fixture
def anna(store):
    customer, _created = customer_upsert(
        store=store, external_id="C-1", email="anna.nowak@example.pl"
    )
    return customer


@pytest.fixture
def anna_order(store, anna):
    return OrderFactory(store=store, customer=anna, external_id="1001")


def review(**overrides):
    return {
        "external_id": "rev-1",
        "kind": "review",
        "customer": {"external_id": "C-1"},
        "subject": "Świetny kubek",
        "body": "Dotarł cały, polecam.",
        "occurred_at": RECEIVED,
        "rating": 5,
        "rating_scale": "stars",
        **overrides,
    }


def complaint(**overrides):
    return {
        "external_id": "rma-1",
        "kind": "complaint",
        "customer": {"external_id": "C-1"},
        "order": "1001",
        "subject": "Pęknięty kubek",
        "body": "Przyszedł pęknięty.",
        "occurred_at": RECEIVED,
        **overrides,
    }


def post(api, body, **kwargs):
    return api.post(URL, body, format="json", **kwargs)


def error_codes(response) -> dict[str, list[str]]:
    assert response.status_code == 400, response.json()
    body = response.json()
    assert (body["status"], body["code"]) == (400, "invalid")
    return {
        field: [error["code"] for error in errors]
        for field, errors in body["errors"].items()
    }


# --- Posting --------------------------------------------------------------------


def test_a_review_is_created_then_the_same_post_changes_nothing(api, store, anna):
    first = post(api, review())
    assert first.status_code == 201, first.json()
    body = first.json()
    stored = Interaction.objects.get()
    assert body["id"] == stored.pk
    assert body["external_id"] == "rev-1"
    assert body["kind"] == "review"
    assert body["channel"] == "website"
    assert body["customer"] == anna.pk
    assert body["customer_external_id"] == "C-1"
    assert (body["rating"], body["rating_scale"]) == (5, "stars")
    assert (body["status"], body["due_at"], body["order"]) == (None, None, None)
    assert stored.store == store
    assert stored.api_key == ApiKey.objects.get()
    again = post(api, review())
    assert again.status_code == 200
    assert again.json() == body
    assert Interaction.objects.count() == 1
    assert Interaction.objects.get().updated_at == stored.updated_at


def test_an_edited_review_is_updated(api, anna):
    first = post(api, review()).json()
    edited = post(api, review(body="Po tygodniu ucho odpadło.", rating=2))
    assert edited.status_code == 200
    assert edited.json()["id"] == first["id"]
    assert edited.json()["rating"] == 2
    assert Interaction.objects.get().body == "Po tygodniu ucho odpadło."


def test_a_complaint_is_answered_with_its_status_and_due_date(api, anna, anna_order):
    response = post(api, complaint())
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "open"
    received = dt.datetime.fromisoformat(RECEIVED)
    assert dt.datetime.fromisoformat(body["due_at"]) == answer_due(received)
    assert body["order"] == "1001"
    assert Interaction.objects.get().order == anna_order


def test_a_repost_does_not_reopen_a_complaint_staff_resolved(api, anna, anna_order):
    first = post(api, complaint()).json()
    interaction_set_status(
        interaction=Interaction.objects.get(pk=first["id"]),
        status="resolved",
        actor=None,
    )
    again = post(api, complaint(body="Przyszedł pęknięty. Proszę o zwrot."))
    assert again.status_code == 200
    assert again.json()["status"] == "resolved"
    assert again.json()["due_at"] == first["due_at"]
    assert again.json()["resolved_at"] is not None


def test_an_unknown_customer_with_an_email_is_created_in_the_store(api, store):
    response = post(
        api,
        review(
            customer={
                "external_id": "C-9",
                "email": "Nowa.Klientka@Example.PL",
                "first_name": "Ola",
            }
        ),
    )
    assert response.status_code == 201, response.json()
    customer = Customer.objects.get()
    assert customer.email == "Nowa.Klientka@example.pl"
    assert customer.first_name == "Ola"
    assert CustomerIdentity.objects.get(customer=customer).external_id == "C-9"
    assert response.json()["customer"] == customer.pk
    assert response.json()["customer_external_id"] == "C-9"


def test_a_known_customer_is_found_by_email_without_an_id(api, anna):
    response = post(api, review(customer={"email": "ANNA.NOWAK@example.pl"}))
    assert response.status_code == 201, response.json()
    assert response.json()["customer"] == anna.pk
    assert Customer.objects.count() == 1


def test_a_customer_must_be_identified(api):
    codes = error_codes(post(api, review(customer={"first_name": "Ola"})))
    assert codes == {"customer.email": ["required"]}
    assert not Customer.objects.exists()
    assert error_codes(post(api, {**review(), "customer": None})) == {
        "customer": ["null"]
    }


def test_bad_customer_fields_are_reported_under_customer(api):
    codes = error_codes(
        post(api, review(customer={"external_id": "C-2", "email": "nie-email"}))
    )
    assert codes == {"customer.email": ["invalid_email"]}
    assert not Customer.objects.exists()


def test_a_refused_interaction_leaves_no_new_customer(api):
    body = review(
        customer={"external_id": "C-5", "email": "piotr@example.pl"}, rating=7
    )
    assert error_codes(post(api, body)) == {"rating": ["out_of_range"]}
    assert not Customer.objects.exists()
    assert not Interaction.objects.exists()


def test_the_order_is_found_by_the_stores_id(api, store, anna):
    OrderFactory(store=StoreFactory(code="inny"), customer=anna, external_id="1001")
    assert error_codes(post(api, complaint())) == {"order": ["not_found"]}
    OrderFactory(store=store, customer=CustomerFactory(), external_id="1001")
    assert error_codes(post(api, complaint())) == {"order": ["wrong_customer"]}
    assert not Interaction.objects.exists()


@pytest.mark.parametrize("order", [None, "", "  "])
def test_no_order_is_fine(api, anna, order):
    response = post(api, complaint(order=order))
    assert response.status_code == 201, response.json()
    assert response.json()["order"] is None


@pytest.mark.parametrize("kind", ["note", "conversation", "letter"])
def test_staff_only_and_unknown_kinds_are_refused(api, anna, kind):
    codes = error_codes(post(api, review(kind=kind, rating=None, rating_scale=None)))
    assert codes == {"kind": ["invalid_choice"]}
    assert not Interaction.objects.exists()


@pytest.mark.parametrize("kind", ["inquiry", "return", "feedback"])
def test_the_other_shop_kinds_are_accepted(api, anna, kind):
    rating = (9, "nps") if kind == "feedback" else (None, None)
    body = review(kind=kind, rating=rating[0], rating_scale=rating[1])
    response = post(api, body)
    assert response.status_code == 201, response.json()
    assert response.json()["kind"] == kind
    assert response.json()["status"] == ("open" if kind == "return" else None)


def test_input_errors_are_400_with_every_field(api, anna):
    body = {
        **review(),
        "kind": "review",
        "channel": "fax",
        "subject": "x" * 201,
        "rating": 11,
        "rating_scale": "percent",
        "occurred_at": "wczoraj",
        "author": "admin",
    }
    assert error_codes(post(api, body)) == {
        "channel": ["invalid_choice"],
        "subject": ["max_length"],
        "rating": ["max_value"],
        "rating_scale": ["invalid_choice"],
        "occurred_at": ["invalid"],
        "author": ["unknown_field"],
    }
    assert error_codes(post(api, {"customer": {"external_id": "C-1"}})) == {
        "kind": ["required"]
    }
    assert not Interaction.objects.exists()


def test_the_services_rules_are_400_with_field_errors(api, anna):
    future = (timezone.now() + dt.timedelta(days=1)).isoformat()
    body = review(subject="", body=" ", occurred_at=future, rating=0)
    assert error_codes(post(api, body)) == {
        "body": ["required"],
        "occurred_at": ["future"],
        "rating": ["out_of_range"],
    }
    assert error_codes(post(api, review(rating=4, rating_scale=None))) == {
        "rating_scale": ["invalid_choice"]
    }
    no_rating = complaint(order=None, rating=5, rating_scale="stars")
    assert error_codes(post(api, no_rating)) == {"rating": ["no_rating"]}
    assert not Interaction.objects.exists()


def test_an_id_used_for_another_customer_or_kind_is_400(api, store, anna):
    post(api, review())
    CustomerIdentityFactory(store=store, external_id="C-2")
    codes = error_codes(post(api, review(customer={"external_id": "C-2"})))
    assert codes == {"external_id": ["external_id_taken"]}
    codes = error_codes(post(api, review(kind="feedback")))
    assert codes == {"external_id": ["external_id_taken"]}
    assert Interaction.objects.count() == 1


def test_without_an_id_each_post_is_new_unless_an_idempotency_key(api, anna):
    body = review(external_id="")
    assert post(api, body).status_code == 201
    assert post(api, body).status_code == 201
    assert Interaction.objects.count() == 2
    first = post(api, body, HTTP_IDEMPOTENCY_KEY="k-1")
    replay = post(api, body, HTTP_IDEMPOTENCY_KEY="k-1")
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert Interaction.objects.count() == 3
    conflict = post(api, review(external_id="", rating=4), HTTP_IDEMPOTENCY_KEY="k-1")
    assert conflict.status_code == 409


def test_a_refused_post_leaves_its_idempotency_key_free(api, anna):
    assert post(api, review(rating=9), HTTP_IDEMPOTENCY_KEY="k-2").status_code == 400
    fixed = post(api, review(), HTTP_IDEMPOTENCY_KEY="k-2")
    assert fixed.status_code == 201


# --- Keys and scopes --------------------------------------------------------------


def test_missing_or_wrong_keys_are_401(api, anna):
    assert APIClient().get(URL).status_code == 401
    assert APIClient().post(URL, review(), format="json").status_code == 401
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Api-Key kt_nope_nope")
    response = wrong.get(URL)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert not Interaction.objects.exists()


def test_reading_needs_the_read_scope_and_posting_the_write_scope(
    make_api_client, store, anna
):
    reader = make_api_client(store, scopes=("read",))
    writer = make_api_client(store, scopes=("write",))
    refused = post(reader, review())
    assert refused.status_code == 403
    assert refused.json()["status"] == 403
    assert not Interaction.objects.exists()
    created = post(writer, review())
    assert created.status_code == 201
    assert writer.get(URL).status_code == 403
    assert writer.get(f"{URL}{created.json()['id']}/").status_code == 403
    assert reader.get(f"{URL}{created.json()['id']}/").status_code == 200


def test_the_api_has_no_update_or_delete(api, anna):
    interaction_id = post(api, review()).json()["id"]
    assert api.put(f"{URL}{interaction_id}/", review(), format="json").status_code in (
        404,
        405,
    )
    assert api.delete(f"{URL}{interaction_id}/").status_code == 405
    assert Interaction.objects.count() == 1


# --- Reading ----------------------------------------------------------------------


def test_another_stores_interactions_are_not_seen(api, store, anna, make_api_client):
    other = StoreFactory(code="inny")
    other_api = make_api_client(other)
    CustomerIdentityFactory(store=other, customer=anna, external_id="X-1")
    theirs = post(other_api, review(customer={"external_id": "X-1"})).json()
    assert api.get(f"{URL}{theirs['id']}/").status_code == 404
    assert api.get(URL).json()["results"] == []
    # The same id in this store is another interaction.
    ours = post(api, review())
    assert ours.status_code == 201
    assert ours.json()["id"] != theirs["id"]
    assert [row["id"] for row in api.get(URL).json()["results"]] == [ours.json()["id"]]
    assert other_api.get(f"{URL}{theirs['id']}/").json()["customer_external_id"] == (
        "X-1"
    )


def test_staff_notes_conversations_and_storeless_entries_are_not_shown(
    api, store, anna
):
    InteractionFactory(customer=anna, store=store, kind="note")
    InteractionFactory(customer=anna, store=store, kind="conversation")
    InteractionFactory(customer=anna, store=None, kind="inquiry")
    note = InteractionFactory(customer=anna, store=store, kind="note")
    shown = InteractionFactory(customer=anna, store=store, kind="inquiry")
    assert [row["id"] for row in api.get(URL).json()["results"]] == [shown.pk]
    assert api.get(f"{URL}{note.pk}/").status_code == 404


def test_a_complaint_staff_logged_for_the_store_shows_its_status(api, store, anna):
    logged = interaction_log(
        customer=anna,
        kind="complaint",
        channel="phone",
        actor=None,
        subject="Reklamacja telefoniczna",
        store=store,
    )
    interaction_set_status(interaction=logged, status="waiting", actor=None)
    body = api.get(f"{URL}{logged.pk}/").json()
    assert body["status"] == "waiting"
    assert body["external_id"] is None
    assert body["due_at"] is not None


def test_erased_customers_are_not_shown(api, store, anna):
    post(api, review())
    Customer.objects.filter(pk=anna.pk).update(erased_at=timezone.now())
    assert api.get(URL).json()["results"] == []


@pytest.mark.parametrize("bad_id", ["abc", "0", "-1", "0.5", "99999999999999999999999"])
def test_unknown_ids_are_404(api, bad_id):
    response = api.get(f"{URL}{bad_id}/")
    assert response.status_code == 404
    assert response.json()["status"] == 404


def test_list_filters(api, store, anna, anna_order):
    CustomerIdentityFactory(store=store, external_id="C-2")
    post(api, review())
    post(api, complaint())
    post(api, review(external_id="rev-2", customer={"external_id": "C-2"}))

    def ids(**params):
        response = api.get(URL, params)
        assert response.status_code == 200, response.json()
        return [row["external_id"] for row in response.json()["results"]]

    assert ids() == ["rev-1", "rma-1", "rev-2"]
    assert ids(customer="C-1") == ["rev-1", "rma-1"]
    assert ids(customer="nikt") == []
    assert ids(kind="complaint") == ["rma-1"]
    assert ids(status="open") == ["rma-1"]
    assert ids(external_id="rev-2") == ["rev-2"]
    Interaction.objects.filter(external_id="rev-1").update(
        updated_at=timezone.now() - dt.timedelta(days=2)
    )
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    assert ids(updated_since=since) == ["rma-1", "rev-2"]
    assert set(error_codes(api.get(URL, {"kind": "note"}))) == {"kind"}
    assert set(error_codes(api.get(URL, {"color": "red"}))) == {"non_field_errors"}


def test_the_list_pages_with_a_cursor_oldest_change_first(api, anna):
    for n in range(5):
        post(api, review(external_id=f"rev-{n}"))
    page = api.get(URL, {"page_size": 2}).json()
    assert [row["external_id"] for row in page["results"]] == ["rev-0", "rev-1"]
    following = api.get(page["next"]).json()
    assert [row["external_id"] for row in following["results"]] == ["rev-2", "rev-3"]


def test_the_list_costs_the_same_queries_for_any_page_size(api, store, anna):
    orders = [OrderFactory(store=store, customer=anna) for _ in range(6)]
    for n, order in enumerate(orders):
        post(api, complaint(external_id=f"rma-{n}", order=order.external_id))
    with CaptureQueriesContext(connection) as small:
        assert len(api.get(URL, {"page_size": 1}).json()["results"]) == 1
    with CaptureQueriesContext(connection) as large:
        assert len(api.get(URL, {"page_size": 6}).json()["results"]) == 6
    assert len(large.captured_queries) == len(small.captured_queries)


# --- The access log ---------------------------------------------------------------


def test_reading_logs_who_read_whose_data(api, store, anna):
    other = CustomerIdentityFactory(store=store, external_id="C-2").customer
    first = post(api, review()).json()
    post(api, review(external_id="rev-2", customer={"external_id": "C-2"}))
    post(api, review(external_id="rev-3"))
    assert not AccessLog.objects.exists()  # posting is not reading

    response = api.get(URL, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    entries = AccessLog.objects.all()
    assert sorted(entry.customer_id for entry in entries) == sorted([anna.pk, other.pk])
    for entry in entries:
        assert entry.action == AccessLog.Action.API_READ
        assert entry.purpose == "interactions"
        assert entry.api_key == ApiKey.objects.get()
        assert entry.user is None
        assert entry.ip_address == "10.1.2.3"

    before = AccessLog.objects.count()
    assert api.get(f"{URL}{first['id']}/").status_code == 200
    assert AccessLog.objects.count() == before + 1
    assert AccessLog.objects.order_by("-id").first().customer_id == anna.pk


def test_a_404_and_an_empty_page_log_nothing(api, store, anna):
    assert api.get(f"{URL}12345/").status_code == 404
    assert api.get(URL).status_code == 200
    assert not AccessLog.objects.exists()
