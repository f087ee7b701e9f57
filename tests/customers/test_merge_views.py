"""The merge pages: compare and merge, batch, history, undo; and the admin."""

import pytest
from django.urls import reverse

from consents.models import AccessLog
from customers.merging import customers_merge
from customers.models import Customer, CustomerMerge, DuplicateCandidate
from tests.factories.customers import CustomerFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def records():
    older = CustomerFactory(first_name="Jan", company="", email="jan@example.pl")
    newer = CustomerFactory(first_name="Janek", company="Kowalski SA")
    OrderFactory(customer=newer)
    return older, newer


@pytest.fixture
def manager(client, make_staff):
    user = make_staff("Manager")
    client.force_login(user)
    return user


def compare_url(survivor, merged):
    return reverse("merges:compare", args=[survivor.pk, merged.pk])


@pytest.mark.parametrize(
    ("role", "status"),
    [("Manager", 200), ("Data protection officer", 200), ("Support", 403)],
)
def test_who_may_compare_and_merge(client, make_staff, records, role, status):
    client.force_login(make_staff(role))
    assert client.get(compare_url(*records)).status_code == status
    assert client.get(reverse("merges:batch")).status_code == status
    assert client.get(reverse("merges:list")).status_code == status


def test_marketing_may_not_merge(client, make_staff, records):
    client.force_login(make_staff("Marketing"))
    assert client.get(compare_url(*records)).status_code == 403
    assert client.post(compare_url(*records)).status_code == 403


def test_anonymous_goes_to_the_login_page(client, records):
    response = client.get(compare_url(*records))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_compare_page_shows_both_and_logs_the_access(client, manager, records):
    older, newer = records

    response = client.get(compare_url(older, newer))

    page = response.content.decode()
    assert "Kowalski SA" in page
    assert "Janek" in page
    # The survivor's empty company is taken from the other record unless changed.
    assert 'name="company" value="merged"' in page
    form = response.context["form"]
    assert form.fields["company"].initial == "merged"
    assert form.fields["first_name"].initial == "survivor"
    logged = AccessLog.objects.filter(user=manager).values_list("customer", flat=True)
    assert set(logged) == {older.pk, newer.pk}


def test_merging_from_the_page(client, manager, records):
    older, newer = records

    response = client.post(
        compare_url(older, newer), {"first_name": "merged", "company": "survivor"}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("customers:detail", args=[older.pk])
    older.refresh_from_db()
    assert (older.first_name, older.company) == ("Janek", "")
    merge = CustomerMerge.objects.get()
    assert merge.merged_by == manager
    assert older.orders.count() == 1
    # The merged-away record's page leads to the survivor.
    followed = client.get(reverse("customers:detail", args=[newer.pk]))
    assert followed.status_code == 302
    assert followed["Location"] == reverse("customers:detail", args=[older.pk])
    listed = client.get(reverse("customers:list"))
    assert newer.pk not in {row.pk for row in listed.context["customers"]}


def test_a_refused_merge_shows_why(client, manager, records):
    older, newer = records
    customers_merge(survivor=CustomerFactory(), merged=newer)

    response = client.post(compare_url(older, newer), {})

    assert response.status_code == 400
    assert response.context["form"].non_field_errors()
    assert not CustomerMerge.objects.filter(survivor=older).exists()


def test_a_bad_choice_is_a_form_error(client, manager, records):
    response = client.post(compare_url(*records), {"company": "both"})
    assert response.status_code == 400
    assert "company" in response.context["form"].errors
    assert not CustomerMerge.objects.exists()


def test_start_finds_the_other_record_by_email(client, manager, records):
    older, newer = records
    response = client.get(
        reverse("merges:start"), {"a": newer.pk, "b": "JAN@example.pl"}
    )
    assert response["Location"] == compare_url(newer, older)

    missing = client.get(reverse("merges:start"), {"a": newer.pk, "b": "nikt"})
    assert missing["Location"].startswith(reverse("customers:detail", args=[newer.pk]))


def test_history_detail_and_undo(client, make_staff, records):
    older, newer = records
    merge = customers_merge(survivor=older, merged=newer, take={"company"})
    dpo = make_staff("Data protection officer")
    client.force_login(dpo)

    listed = client.get(reverse("merges:list"))
    assert merge in listed.context["merges"]
    detail = client.get(reverse("merges:detail", args=[merge.pk]))
    assert detail.status_code == 200
    assert "Kowalski SA" in detail.content.decode()  # the snapshot

    response = client.post(reverse("merges:undo", args=[merge.pk]))

    assert response.status_code == 302
    merge.refresh_from_db()
    assert merge.undone_by == dpo
    newer.refresh_from_db()
    assert newer.merged_into is None
    assert newer.company == "Kowalski SA"
    again = client.post(reverse("merges:undo", args=[merge.pk]), follow=True)
    assert again.status_code == 200
    assert CustomerMerge.objects.filter(undone_at__isnull=False).count() == 1


def test_the_customer_page_offers_the_likely_duplicates(client, manager, records):
    older, newer = records
    DuplicateCandidate.objects.create(
        customer=older, other=newer, reason="email", key="jan@example.pl"
    )
    page = client.get(reverse("customers:detail", args=[older.pk])).content.decode()
    assert compare_url(older, newer) in page


def test_batch_merge_from_the_page(client, manager):
    first = CustomerFactory(phone="+48601000001")
    second = CustomerFactory(phone="+48601000001", email=None)
    DuplicateCandidate.objects.create(
        customer=first, other=second, reason="phone", key="+48601000001"
    )

    preview = client.get(reverse("merges:batch"), {"reason": "phone"})

    assert [g.survivor for g in preview.context["groups"]] == [first]
    response = client.post(
        reverse("merges:batch"),
        {"reason": "phone", "group": [f"{first.pk}-{second.pk}"]},
    )
    assert response.status_code == 302
    second.refresh_from_db()
    assert second.merged_into == first
    empty = client.post(reverse("merges:batch"), {"reason": "phone"}, follow=True)
    assert empty.status_code == 200


def test_admin_action_opens_the_compare_page(client, manager, records):
    older, newer = records
    response = client.post(
        reverse("admin:customers_customer_changelist"),
        {"action": "merge_selected", "_selected_action": [newer.pk, older.pk]},
    )
    assert response.status_code == 302
    assert response["Location"] == compare_url(older, newer)


def test_admin_lists_and_undoes_merges(client, manager, records):
    older, newer = records
    merge = customers_merge(survivor=older, merged=newer)
    changelist = reverse("admin:customers_customermerge_changelist")
    assert client.get(changelist).status_code == 200
    assert (
        client.get(
            reverse("admin:customers_customermerge_change", args=[merge.pk])
        ).status_code
        == 200
    )
    # Merged-away customers are hidden from the customer changelist by default.
    customers = client.get(reverse("admin:customers_customer_changelist"))
    assert newer not in customers.context["cl"].result_list

    client.post(changelist, {"action": "undo_selected", "_selected_action": [merge.pk]})

    merge.refresh_from_db()
    assert merge.undone_at is not None
    assert Customer.objects.get(pk=newer.pk).merged_into is None
