"""The support log's services: every rule of customers.interactions."""

import datetime as dt
import threading
from itertools import product
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from customers.interactions import (
    ALLOWED_TRANSITIONS,
    ANSWER_DAYS,
    BODY_LIMIT,
    answer_due,
    attachment_type,
    interaction_assign,
    interaction_attach,
    interaction_log,
    interaction_set_status,
    interaction_upsert,
)
from customers.models import Interaction, InteractionAttachment, InteractionChange
from customers.services import api_key_create
from tests.factories.customers import (
    CustomerFactory,
    InteractionFactory,
    StoreFactory,
)
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db

Kind = Interaction.Kind
Status = Interaction.Status
RECEIVED = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48


@pytest.fixture
def staff(make_staff):
    return make_staff("Support", username="ewa")


@pytest.fixture
def colleague(make_staff):
    return make_staff("Support", username="adam")


@pytest.fixture
def complaint(customer, staff):
    return interaction_log(
        customer=customer,
        kind=Kind.COMPLAINT,
        channel=Interaction.Channel.EMAIL,
        actor=staff,
        subject="Pęknięty kubek",
        occurred_at=RECEIVED,
    )


@pytest.fixture
def memory_storage(settings):
    """Attachments kept in memory: proves they go through Django's storage API."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    return default_storage


def codes(error: ValidationError) -> dict[str, list[str]]:
    return {
        field: [item.code for item in errors]
        for field, errors in error.error_dict.items()
    }


def log(customer, actor=None, **kwargs):
    values = {
        "kind": Kind.INQUIRY,
        "channel": Interaction.Channel.PHONE,
        "subject": "Pytanie o dostawę",
        **kwargs,
    }
    return interaction_log(customer=customer, actor=actor, **values)


# --- Logging: what every interaction must be -----------------------------------------


def test_log_keeps_who_wrote_it_and_strips_the_text(customer, staff, store):
    interaction = log(
        customer,
        staff,
        subject="  Dostawa  ",
        body="\n Kiedy dotrze paczka? \n",
        store=store,
        direction=Interaction.Direction.OUTBOUND,
    )
    interaction.refresh_from_db()
    assert interaction.author == staff
    assert interaction.store == store
    assert interaction.subject == "Dostawa"
    assert interaction.body == "Kiedy dotrze paczka?"
    assert interaction.direction == Interaction.Direction.OUTBOUND
    assert interaction.status == ""
    assert interaction.due_at is None


def test_direction_is_inbound_unless_said(customer):
    assert log(customer).direction == Interaction.Direction.INBOUND


@pytest.mark.parametrize("kind", [Kind.COMPLAINT, Kind.RETURN])
def test_complaints_and_returns_are_open_and_due_fourteen_days_after_receipt(
    customer, kind
):
    interaction = log(customer, kind=kind, occurred_at=RECEIVED)
    interaction.refresh_from_db()
    assert interaction.status == Status.OPEN
    assert interaction.due_at == answer_due(RECEIVED)
    assert ANSWER_DAYS == 14
    # Received on 2 March (10:30 in Warsaw): due by the end of 16 March there.
    assert answer_due(RECEIVED) == dt.datetime(
        2026, 3, 16, 23, 59, 59, tzinfo=ZoneInfo("Europe/Warsaw")
    )


@pytest.mark.parametrize(
    "kind", [Kind.CONVERSATION, Kind.REVIEW, Kind.INQUIRY, Kind.FEEDBACK, Kind.NOTE]
)
def test_other_kinds_have_no_status_nor_due_date(customer, kind):
    interaction = log(customer, kind=kind)
    interaction.refresh_from_db()
    assert (interaction.status, interaction.due_at) == ("", None)


def test_without_a_time_it_happened_now_and_a_naive_time_is_warsaw(customer):
    before = timezone.now()
    assert log(customer).occurred_at >= before
    naive = log(customer, occurred_at=dt.datetime(2026, 1, 15, 10, 0))  # noqa: DTZ001
    # 10:00 in Warsaw in winter is 09:00 UTC.
    assert naive.occurred_at == dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)


def test_a_future_time_is_refused_but_clock_skew_is_not(customer):
    with pytest.raises(ValidationError) as caught:
        log(customer, occurred_at=timezone.now() + dt.timedelta(hours=1))
    assert codes(caught.value) == {"occurred_at": ["future"]}
    skewed = log(customer, occurred_at=timezone.now() + dt.timedelta(minutes=2))
    assert skewed.pk
    assert Interaction.objects.count() == 1


@pytest.mark.parametrize(("subject", "body"), [("", ""), ("  ", "\n\t")])
def test_it_must_say_what_it_was_about(customer, subject, body):
    with pytest.raises(ValidationError) as caught:
        log(customer, subject=subject, body=body)
    assert codes(caught.value) == {"body": ["required"]}
    assert not Interaction.objects.exists()


def test_a_body_alone_or_a_subject_alone_is_enough(customer):
    assert log(customer, subject="", body="Dzwoniła w sprawie faktury.").pk
    assert log(customer, subject="Faktura", body="").pk


def test_body_and_subject_lengths(customer):
    assert log(customer, body="x" * BODY_LIMIT).pk
    with pytest.raises(ValidationError) as caught:
        log(customer, body="x" * (BODY_LIMIT + 1), subject="y" * 201)
    assert codes(caught.value) == {"body": ["max_length"], "subject": ["max_length"]}
    assert log(customer, subject="y" * 200).pk


def test_unknown_kind_channel_and_direction_are_refused(customer):
    with pytest.raises(ValidationError) as caught:
        log(customer, kind="letter", channel="pigeon", direction="sideways")
    assert codes(caught.value) == {
        "kind": ["invalid_choice"],
        "channel": ["invalid_choice"],
        "direction": ["invalid_choice"],
    }


def test_the_order_must_be_the_customers(customer):
    own = OrderFactory(customer=customer)
    assert log(customer, kind=Kind.COMPLAINT, order=own).order == own
    with pytest.raises(ValidationError) as caught:
        log(customer, kind=Kind.COMPLAINT, order=OrderFactory())
    assert codes(caught.value) == {"order": ["wrong_customer"]}
    assert Interaction.objects.count() == 1


def test_every_error_is_reported_at_once(customer):
    with pytest.raises(ValidationError) as caught:
        log(
            customer,
            kind=Kind.COMPLAINT,
            subject="",
            body="",
            occurred_at=timezone.now() + dt.timedelta(days=2),
            order=OrderFactory(),
            rating=3,
            rating_scale="stars",
        )
    assert set(codes(caught.value)) == {"body", "occurred_at", "order", "rating"}


# --- Ratings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "scale", "rating"),
    [
        (Kind.REVIEW, "stars", 1),
        (Kind.REVIEW, "stars", 5),
        (Kind.REVIEW, "nps", 0),
        (Kind.FEEDBACK, "nps", 10),
        (Kind.FEEDBACK, "stars", 3),
    ],
)
def test_ratings_within_their_scale_are_kept(customer, kind, scale, rating):
    interaction = log(customer, kind=kind, rating=rating, rating_scale=scale)
    interaction.refresh_from_db()
    assert (interaction.rating, interaction.rating_scale) == (rating, scale)


@pytest.mark.parametrize(
    ("scale", "rating"), [("stars", 0), ("stars", 6), ("nps", 11), ("stars", None)]
)
def test_ratings_outside_their_scale_are_refused(customer, scale, rating):
    with pytest.raises(ValidationError) as caught:
        log(customer, kind=Kind.REVIEW, rating=rating, rating_scale=scale)
    assert codes(caught.value) == {"rating": ["out_of_range"]}
    assert not Interaction.objects.exists()


@pytest.mark.parametrize("scale", ["", "percent"])
def test_a_rating_needs_a_known_scale(customer, scale):
    with pytest.raises(ValidationError) as caught:
        log(customer, kind=Kind.REVIEW, rating=4, rating_scale=scale)
    assert codes(caught.value) == {"rating_scale": ["invalid_choice"]}


@pytest.mark.parametrize(
    "kind", [Kind.COMPLAINT, Kind.RETURN, Kind.INQUIRY, Kind.CONVERSATION, Kind.NOTE]
)
def test_only_reviews_and_feedback_have_a_rating(customer, kind):
    with pytest.raises(ValidationError) as caught:
        log(customer, kind=kind, rating=5, rating_scale="stars")
    assert codes(caught.value) == {"rating": ["no_rating"]}
    with pytest.raises(ValidationError):
        log(customer, kind=kind, rating_scale="nps")


def test_a_review_without_a_rating_has_no_scale(customer):
    interaction = log(customer, kind=Kind.REVIEW)
    assert (interaction.rating, interaction.rating_scale) == (None, "")


# --- Assignee when logging -------------------------------------------------------


def test_a_complaint_may_be_logged_with_an_assignee(customer, staff, colleague):
    interaction = log(customer, staff, kind=Kind.COMPLAINT, assignee=colleague)
    interaction.refresh_from_db()
    assert interaction.assignee == colleague


def test_only_complaints_and_returns_are_logged_with_an_assignee(customer, colleague):
    with pytest.raises(ValidationError) as caught:
        log(customer, kind=Kind.INQUIRY, assignee=colleague)
    assert codes(caught.value) == {"assignee": ["not_assignable"]}
    assert not Interaction.objects.exists()


# --- Status --------------------------------------------------------------------------

ALLOWED = [
    (old, new) for old, targets in ALLOWED_TRANSITIONS.items() for new in targets
]
REFUSED = [
    (old, new)
    for old, new in product(Status.values, repeat=2)
    if old != new and new not in ALLOWED_TRANSITIONS[old]
]


def test_the_transition_table_is_what_the_law_and_the_team_need():
    assert ALLOWED_TRANSITIONS == {
        "open": {"waiting", "resolved", "rejected"},
        "waiting": {"open", "resolved", "rejected"},
        "resolved": {"open"},
        "rejected": {"open"},
    }


def force_status(interaction, status):
    """Put a complaint in ``status`` without the service (test setup only)."""
    resolved_at = RECEIVED if status in ("resolved", "rejected") else None
    Interaction.objects.filter(pk=interaction.pk).update(
        status=status, resolved_at=resolved_at
    )
    interaction.refresh_from_db()


@pytest.mark.parametrize(("old", "new"), ALLOWED)
def test_every_allowed_move_changes_status_and_records_who(complaint, staff, old, new):
    force_status(complaint, old)
    assert interaction_set_status(
        interaction=complaint, status=new, actor=staff, note="  Zdjęcia są.  "
    )
    complaint.refresh_from_db()
    assert complaint.status == new
    change = InteractionChange.objects.get(interaction=complaint)
    assert (change.field, change.old_value, change.new_value) == ("status", old, new)
    assert change.actor == staff
    assert change.note == "Zdjęcia są."


@pytest.mark.parametrize(("old", "new"), REFUSED)
def test_any_other_move_is_refused_and_changes_nothing(complaint, staff, old, new):
    force_status(complaint, old)
    before = Interaction.objects.values().get(pk=complaint.pk)
    with pytest.raises(ValidationError) as caught:
        interaction_set_status(interaction=complaint, status=new, actor=staff)
    assert codes(caught.value) == {"status": ["invalid_transition"]}
    assert Interaction.objects.values().get(pk=complaint.pk) == before
    assert complaint.status == old
    assert not InteractionChange.objects.exists()


def test_refused_moves_exist():
    # Guards the parametrisation above from silently testing nothing.
    assert ("resolved", "waiting") in REFUSED
    assert ("rejected", "resolved") in REFUSED


@pytest.mark.parametrize("status", ["", "closed"])
def test_an_unknown_status_is_refused(complaint, staff, status):
    with pytest.raises(ValidationError) as caught:
        interaction_set_status(interaction=complaint, status=status, actor=staff)
    assert codes(caught.value) == {"status": ["invalid_transition"]}


def test_the_same_status_again_is_no_change(complaint, staff):
    updated_at = complaint.updated_at
    assert not interaction_set_status(interaction=complaint, status="open", actor=staff)
    complaint.refresh_from_db()
    assert complaint.updated_at == updated_at
    assert not InteractionChange.objects.exists()


def test_kinds_without_status_cannot_get_one(customer, staff):
    review = log(customer, kind=Kind.REVIEW)
    with pytest.raises(ValidationError) as caught:
        interaction_set_status(interaction=review, status="resolved", actor=staff)
    assert codes(caught.value) == {"status": ["invalid_transition"]}
    review.refresh_from_db()
    assert review.status == ""


@pytest.mark.parametrize("closing", ["resolved", "rejected"])
def test_closing_sets_resolved_at_and_reopening_clears_it(complaint, staff, closing):
    before = timezone.now()
    interaction_set_status(interaction=complaint, status=closing, actor=staff)
    assert complaint.resolved_at >= before  # the caller's instance follows
    complaint.refresh_from_db()
    assert complaint.resolved_at >= before
    interaction_set_status(interaction=complaint, status="open", actor=staff)
    assert complaint.resolved_at is None
    complaint.refresh_from_db()
    assert complaint.resolved_at is None
    assert complaint.due_at == answer_due(RECEIVED)  # still the law's
    assert list(complaint.changes.values_list("old_value", "new_value", "actor")) == [
        ("open", closing, staff.pk),
        (closing, "open", staff.pk),
    ]


def test_waiting_is_not_closed(complaint, staff):
    interaction_set_status(interaction=complaint, status="waiting", actor=staff)
    complaint.refresh_from_db()
    assert complaint.resolved_at is None
    assert complaint.is_pending


# --- Assignee --------------------------------------------------------------------


def test_assigning_records_from_whom_to_whom_and_by_whom(complaint, staff, colleague):
    assert interaction_assign(interaction=complaint, assignee=colleague, actor=staff)
    assert interaction_assign(interaction=complaint, assignee=staff, actor=colleague)
    assert interaction_assign(interaction=complaint, assignee=None, actor=staff)
    complaint.refresh_from_db()
    assert complaint.assignee is None
    assert list(
        complaint.changes.values_list("field", "old_value", "new_value", "actor")
    ) == [
        ("assignee", "", "adam", staff.pk),
        ("assignee", "adam", "ewa", colleague.pk),
        ("assignee", "ewa", "", staff.pk),
    ]


def test_the_same_assignee_again_is_no_change(complaint, staff, colleague):
    interaction_assign(interaction=complaint, assignee=colleague, actor=staff)
    updated_at = Interaction.objects.get(pk=complaint.pk).updated_at
    assert not interaction_assign(
        interaction=complaint, assignee=colleague, actor=staff
    )
    assert complaint.changes.count() == 1
    assert Interaction.objects.get(pk=complaint.pk).updated_at == updated_at
    unassigned = log(complaint.customer, kind=Kind.RETURN)
    assert not interaction_assign(interaction=unassigned, assignee=None, actor=staff)
    assert not unassigned.changes.exists()


@pytest.mark.parametrize("kind", [Kind.REVIEW, Kind.INQUIRY, Kind.NOTE])
def test_only_complaints_and_returns_are_assigned(customer, staff, kind):
    interaction = log(customer, kind=kind)
    with pytest.raises(ValidationError) as caught:
        interaction_assign(interaction=interaction, assignee=staff, actor=staff)
    assert codes(caught.value) == {"assignee": ["not_assignable"]}
    interaction.refresh_from_db()
    assert interaction.assignee is None
    assert not InteractionChange.objects.exists()


# --- The shop's upsert -----------------------------------------------------------


@pytest.fixture
def api_key(store):
    key, _raw = api_key_create(store=store, name="sklep", scopes=["write"])
    return key


def upsert(store, customer, **kwargs):
    values = {
        "kind": Kind.REVIEW,
        "external_id": "rev-1",
        "subject": "Świetny kubek",
        "body": "Dotarł cały, polecam.",
        "occurred_at": RECEIVED,
        "rating": 5,
        "rating_scale": "stars",
        **kwargs,
    }
    return interaction_upsert(store=store, customer=customer, **values)


def test_upsert_creates_what_the_shop_posted(store, customer, api_key):
    interaction, created = upsert(store, customer, api_key=api_key)
    assert created
    interaction.refresh_from_db()
    assert interaction.store == store
    assert interaction.api_key == api_key
    assert interaction.external_id == "rev-1"
    assert interaction.channel == Interaction.Channel.WEBSITE
    assert interaction.direction == Interaction.Direction.INBOUND
    assert interaction.author is None
    assert (interaction.rating, interaction.rating_scale) == (5, "stars")


def test_the_same_post_twice_is_one_row_and_no_write(store, customer):
    first, created = upsert(store, customer)
    again, created_again = upsert(store, customer, external_id="  rev-1 ")
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert Interaction.objects.count() == 1
    stored = Interaction.objects.get()
    assert stored.updated_at == first.updated_at


def test_an_edited_review_is_updated_in_place(store, customer):
    first, _created = upsert(store, customer)
    edited, created = upsert(
        store, customer, body="Po miesiącu ucho odpadło.", rating=2
    )
    assert not created
    assert edited.pk == first.pk
    stored = Interaction.objects.get()
    assert stored.body == "Po miesiącu ucho odpadło."
    assert stored.rating == 2
    assert stored.updated_at > first.updated_at
    assert stored.occurred_at == RECEIVED


def test_an_update_without_a_time_keeps_the_received_one(store, customer):
    upsert(store, customer)
    upsert(store, customer, occurred_at=None, body="Dopisek.")
    assert Interaction.objects.get().occurred_at == RECEIVED


def test_an_updated_complaint_keeps_its_status_and_due_date(store, customer, staff):
    complaint, _created = upsert(
        store, customer, kind=Kind.COMPLAINT, rating=None, rating_scale=""
    )
    interaction_set_status(interaction=complaint, status="waiting", actor=staff)
    later = RECEIVED + dt.timedelta(days=3)
    upsert(
        store,
        customer,
        kind=Kind.COMPLAINT,
        rating=None,
        rating_scale="",
        body="Dosyłam zdjęcia.",
        occurred_at=later,
    )
    stored = Interaction.objects.get()
    assert stored.status == Status.WAITING
    assert stored.due_at == answer_due(RECEIVED)
    assert stored.body == "Dosyłam zdjęcia."


@pytest.mark.parametrize("other", ["customer", "kind"])
def test_an_id_used_for_another_customer_or_kind_is_refused(store, customer, other):
    first, _created = upsert(store, customer)
    changed = (
        {"customer": CustomerFactory()}
        if other == "customer"
        else {"kind": Kind.FEEDBACK}
    )
    with pytest.raises(ValidationError) as caught:
        interaction_upsert(
            store=store,
            **{
                "customer": customer,
                "kind": Kind.REVIEW,
                **changed,
                "external_id": "rev-1",
                "body": "Podmiana",
                "rating": 1,
                "rating_scale": "stars",
            },
        )
    assert codes(caught.value) == {"external_id": ["external_id_taken"]}
    stored = Interaction.objects.get()
    assert (stored.customer_id, stored.kind, stored.body) == (
        customer.pk,
        Kind.REVIEW,
        "Dotarł cały, polecam.",
    )
    assert stored.updated_at == first.updated_at


def test_external_ids_are_per_store(store, customer):
    upsert(store, customer)
    _other, created = upsert(StoreFactory(code="drugi"), customer)
    assert created
    assert Interaction.objects.count() == 2


def test_without_an_id_every_post_is_new(store, customer):
    upsert(store, customer, external_id="")
    upsert(store, customer, external_id="  ")
    assert Interaction.objects.count() == 2


def test_an_invalid_update_changes_nothing(store, customer):
    first, _created = upsert(store, customer)
    with pytest.raises(ValidationError) as caught:
        upsert(store, customer, rating=9)
    assert codes(caught.value) == {"rating": ["out_of_range"]}
    stored = Interaction.objects.get()
    assert (stored.rating, stored.updated_at) == (5, first.updated_at)


def test_upsert_applies_the_same_rules_as_logging(store, customer):
    with pytest.raises(ValidationError) as caught:
        upsert(
            store,
            customer,
            subject="",
            body="",
            order=OrderFactory(),
            occurred_at=timezone.now() + dt.timedelta(days=1),
        )
    assert set(codes(caught.value)) == {"body", "order", "occurred_at"}
    assert not Interaction.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_review_inserted_by_a_concurrent_post_is_updated_not_an_error():
    store = StoreFactory()
    customer = CustomerFactory()
    inserted, release, failures = threading.Event(), threading.Event(), []

    def first_post() -> None:
        try:
            with transaction.atomic():
                upsert(store, customer)
                inserted.set()
                release.wait(10)  # holds the new row uncommitted
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)
            inserted.set()
        finally:
            connection.close()

    thread = threading.Thread(target=first_post)
    thread.start()
    assert inserted.wait(10)
    # The second post does not see the uncommitted row, tries to insert it and
    # waits on the unique index until the first commits; then it updates it.
    threading.Timer(0.5, release.set).start()
    interaction, created = upsert(store, customer, body="Poprawiona treść.")
    thread.join(10)

    assert failures == []
    assert created is False
    stored = Interaction.objects.get(store=store, external_id="rev-1")
    assert stored.pk == interaction.pk
    assert stored.body == "Poprawiona treść."


# --- Attachments -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "name", "content_type"),
    [
        (PDF, "faktura.pdf", "application/pdf"),
        (PNG, "zdjecie.png", "image/png"),
        (JPEG, "IMG_2031.JPG", "image/jpeg"),
        (GIF, "anim.gif", "image/gif"),
        (WEBP, "foto.webp", "image/webp"),
        ("Numer paczki: 123, źle zapakowana.".encode(), "opis.txt", "text/plain"),
        ("Cena < 100 zł, a dostawa > 2 dni <3".encode(), "notatka", "text/plain"),
    ],
)
def test_allowed_files_are_kept_in_storage_with_their_real_type(
    complaint, staff, memory_storage, content, name, content_type
):
    attachment = interaction_attach(
        interaction=complaint, upload=ContentFile(content, name=name), actor=staff
    )
    attachment.refresh_from_db()
    assert attachment.content_type == content_type
    assert attachment.name == name
    assert attachment.size == len(content)
    assert attachment.uploaded_by == staff
    assert attachment.file.name.startswith("interactions/")
    assert memory_storage.exists(attachment.file.name)
    with memory_storage.open(attachment.file.name) as stored:
        assert stored.read() == content


def test_the_type_comes_from_the_content_not_the_name(complaint, staff, memory_storage):
    attachment = interaction_attach(
        interaction=complaint, upload=ContentFile(PNG, name="skan.pdf"), actor=staff
    )
    assert attachment.content_type == "image/png"


def test_a_path_in_the_name_is_dropped(complaint, staff, memory_storage):
    attachment = interaction_attach(
        interaction=complaint,
        upload=ContentFile(PDF, name="..\\..\\Windows\\faktura.pdf"),
        actor=staff,
    )
    assert attachment.name == "faktura.pdf"
    assert ".." not in attachment.file.name


def stored_files(storage, path: str = "") -> list[str]:
    """Every file name under ``path`` in ``storage``."""
    dirs, files = storage.listdir(path)
    found = [f"{path}/{name}".lstrip("/") for name in files]
    for name in dirs:
        found += stored_files(storage, f"{path}/{name}".lstrip("/"))
    return found


def refused(complaint, staff, content, name):
    with pytest.raises(ValidationError) as caught:
        interaction_attach(
            interaction=complaint, upload=ContentFile(content, name=name), actor=staff
        )
    assert not InteractionAttachment.objects.exists()
    return codes(caught.value)


def test_too_large_a_file_is_refused_and_nothing_stored(
    complaint, staff, settings, memory_storage
):
    settings.INTERACTION_ATTACHMENT_MAX_BYTES = 1000
    assert refused(complaint, staff, PDF + b" " * 1000, "duzy.pdf") == {
        "file": ["too_large"]
    }
    assert stored_files(memory_storage) == []
    exactly = interaction_attach(
        interaction=complaint,
        upload=ContentFile(PDF + b" " * (1000 - len(PDF)), name="ok.pdf"),
        actor=staff,
    )
    assert exactly.size == 1000


def test_an_empty_file_is_refused(complaint, staff, memory_storage):
    assert refused(complaint, staff, b"", "pusty.pdf") == {"file": ["empty"]}


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (EXE, "faktura.pdf"),
        (EXE, "zdjecie.jpg"),
        (b"<!DOCTYPE html><html><body>Faktura</body></html>", "faktura.pdf"),
        (b"\n  <html><script>alert(document.cookie)</script></html>", "opis.txt"),
        (b"\xef\xbb\xbf<script>fetch('/admin/')</script>", "notatka.txt"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "a.png"),
        (b'<svg onload="alert(1)"></svg>', "logo.txt"),
        (b"<!-- komentarz --><p>tekst</p>", "tekst.txt"),
        ("Zażółć gęślą jaźń".encode("cp1250"), "opis.txt"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "faktura.pdf"),
    ],
)
def test_disguised_or_unknown_types_are_refused(
    complaint, staff, memory_storage, content, name
):
    assert refused(complaint, staff, content, name) == {"file": ["type_not_allowed"]}
    assert stored_files(memory_storage) == []


def test_sniffing_leaves_the_file_readable_from_the_start():
    upload = ContentFile(b"Zwykly tekst.", name="a.txt")
    upload.read(3)
    assert attachment_type(upload) == "text/plain"
    assert upload.read() == b"Zwykly tekst."


def test_a_failed_save_leaves_no_file_behind(
    complaint, staff, memory_storage, monkeypatch
):
    def broken_save(self, *args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(InteractionAttachment, "save", broken_save)
    with pytest.raises(RuntimeError):
        interaction_attach(
            interaction=complaint, upload=ContentFile(PDF, name="f.pdf"), actor=staff
        )
    assert stored_files(memory_storage) == []


def test_factory_complaint_matches_the_service(customer):
    # The factory's trait stands in for the service in other tests: keep them equal.
    made = InteractionFactory(complaint=True, customer=customer, occurred_at=RECEIVED)
    logged = log(customer, kind=Kind.COMPLAINT, occurred_at=RECEIVED)
    assert (made.status, made.due_at) == (logged.status, logged.due_at)


# --- The deadline and who may be given a complaint -----------------------------------


def test_a_complaint_is_overdue_only_once_its_fourteenth_day_has_ended(customer):
    warsaw = ZoneInfo("Europe/Warsaw")
    complaint = log(customer, kind=Kind.COMPLAINT, occurred_at=RECEIVED)
    last_evening = dt.datetime(2026, 3, 16, 22, 0, tzinfo=warsaw)
    next_morning = dt.datetime(2026, 3, 17, 0, 0, 1, tzinfo=warsaw)
    assert not complaint.is_overdue(now=last_evening)
    assert complaint.is_overdue(now=next_morning)
    assert not Interaction.objects.overdue(now=last_evening).exists()
    assert list(Interaction.objects.overdue(now=next_morning)) == [complaint]
    # Received late in the evening (already the next day in Warsaw): counted from
    # the day in Warsaw, not in UTC.
    late = dt.datetime(2026, 3, 2, 23, 30, tzinfo=dt.UTC)  # 00:30 on 3 March
    assert answer_due(late).date() == dt.date(2026, 3, 17)


def test_only_active_staff_who_see_complaints_can_be_given_one(
    customer, staff, make_staff, django_user_model
):
    complaint = log(customer, kind=Kind.COMPLAINT)
    marketer = make_staff("Marketing", username="marta")
    outsider = django_user_model.objects.create_user(username="gosc", password="x")
    left = make_staff("Support", username="odeszla")
    left.is_active = False
    left.save(update_fields=["is_active"])
    for user in (outsider, left):
        with pytest.raises(ValidationError) as refused:
            interaction_assign(interaction=complaint, assignee=user, actor=staff)
        assert refused.value.error_dict["assignee"][0].code == "not_staff"
        with pytest.raises(ValidationError):
            log(customer, kind=Kind.COMPLAINT, assignee=user)
    # Marketing may read the support log, so it may be asked to answer.
    assert interaction_assign(interaction=complaint, assignee=marketer, actor=staff)
    assert not InteractionChange.objects.filter(new_value__in=["gosc", "odeszla"])
