"""The data quality scan, its checks and pages (customers.quality, quality_views)."""

import csv
import io
from datetime import timedelta

import phonenumbers
import pytest
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from consents.models import AccessLog
from customers import tasks
from customers.models import Customer, DuplicateCandidate
from customers.models.quality import QualityFinding, QualityScan
from customers.quality import (
    EXACT_GROUP_LIMIT,
    duplicates_scan,
    email_canonical,
    email_invalid,
    phone_valid_sql,
    quality_check,
    quality_checks,
    quality_scan,
)
from customers.validators import validate_phone
from tests.factories.customers import AddressFactory, CustomerFactory

Reason = DuplicateCandidate.Reason
INDEX = reverse("quality:index")


def person(first="", last="", *, email=None, phone="", **extra):
    return CustomerFactory(
        first_name=first, last_name=last, email=email, phone=phone, **extra
    )


def lives_at(customer, *, street, postcode, city="Warszawa", **extra):
    return AddressFactory(
        customer=customer, street=street, postcode=postcode, city=city, **extra
    )


def pairs(reason=None):
    found = DuplicateCandidate.objects.all()
    if reason:
        found = found.filter(reason=reason)
    return {(p.customer_id, p.other_id) for p in found}


def pair(a, b):
    return (min(a.pk, b.pk), max(a.pk, b.pk))


# ---------- Normalising ----------


@pytest.mark.parametrize(
    ("email", "canonical"),
    [
        ("Jan.Kowalski@gmail.com", "jankowalski@gmail.com"),
        ("jan.kowalski+sklep@googlemail.com", "jankowalski@gmail.com"),
        ("anna+promo@Example.PL", "anna@example.pl"),
        ("a.nowak@example.pl", "a.nowak@example.pl"),
        ("+tylkotag@example.pl", "+tylkotag@example.pl"),
    ],
)
def test_email_canonical(email, canonical):
    assert email_canonical(email) == canonical


@pytest.mark.django_db
def test_the_sql_canonical_email_is_the_python_one():
    from customers.quality import _email_canonical_sql

    emails = [
        "Jan.Kowalski@gmail.com",
        "jan.kowalski+sklep@googlemail.com",
        "anna+promo@Example.PL",
        "a.nowak@example.pl",
        "+tylkotag@example.pl",
        '"quoted@local"@example.pl',
    ]
    sql = f"SELECT {_email_canonical_sql('%s')}"
    with connection.cursor() as cursor:
        for email in emails:
            cursor.execute(sql, [email] * sql.count("%s"))
            assert cursor.fetchone()[0] == email_canonical(email), email


# ---------- The duplicate scan ----------


@pytest.mark.django_db
def test_scan_finds_email_variants_gmail_dots_and_tags():
    first = person("Jan", "Kowalski", email="jan.kowalski@gmail.com")
    dots = person("Jan", "Kowalski", email="jankowalski@googlemail.com")
    tag = person("J.", "Kowalski", email="jan.kowalski+sklep@gmail.com")
    tagged = person("Anna", "Nowak", email="anna+promo@example.pl")
    plain = person("Anna", "Nowak", email="anna@example.pl")
    # Dots count only at Gmail.
    person("Ewa", "Lis", email="e.lis@example.pl")
    person("Ewa", "Lis", email="elis@example.pl")

    counts = duplicates_scan()

    assert pairs(Reason.EMAIL) == {
        (first.pk, dots.pk),
        (first.pk, tag.pk),
        (tagged.pk, plain.pk),
    }
    assert counts[Reason.EMAIL] == 3
    stored = DuplicateCandidate.objects.get(customer=first, other=dots)
    assert stored.key == "jankowalski@gmail.com"
    assert stored.score == 1.0  # the same name
    assert DuplicateCandidate.objects.get(customer=first, other=tag).score < 1


@pytest.mark.django_db
def test_scan_pairs_a_shared_phone_with_its_oldest_record():
    oldest = person("Marta", "Zając", phone="+48601000001")
    second = person("Marta", "Zajac", phone="+48601000001")
    third = person("M.", "Zając", phone="+48601000001")
    person("Olga", "Kruk", phone="+48601000002")

    duplicates_scan()

    assert pairs(Reason.PHONE) == {(oldest.pk, second.pk), (oldest.pk, third.pk)}
    assert DuplicateCandidate.objects.get(other=second).key == "+48601000001"


@pytest.mark.django_db
def test_a_phone_shared_by_many_is_no_duplicate():
    for _ in range(EXACT_GROUP_LIMIT + 1):
        person(phone="+48601999999")

    assert duplicates_scan()[Reason.PHONE] == 0


@pytest.mark.django_db
def test_scan_finds_similar_names_at_one_postcode():
    original = person("Katarzyna", "Wiśniewska")
    lives_at(original, street="ul. Polna 3", postcode="00-950")
    typo = person("Katarzyna", "Wisniewka")
    lives_at(typo, street="ul. Leśna 12", postcode="00-950")
    accents = person("katarzyna", "WIŚNIEWSKA ")
    lives_at(accents, street="Ogrodowa 1", postcode="00-950", kind="billing")
    elsewhere = person("Katarzyna", "Wiśniewska")
    lives_at(elsewhere, street="ul. Polna 3", postcode="31-000", city="Kraków")

    duplicates_scan()

    found = pairs(Reason.NAME_POSTCODE)
    assert pair(original, typo) in found
    assert pair(original, accents) in found
    assert all(elsewhere.pk not in p for p in found)
    stored = DuplicateCandidate.objects.get(
        customer=original, other=accents, reason=Reason.NAME_POSTCODE
    )
    assert stored.key == "00-950"
    assert stored.score == 1.0


@pytest.mark.django_db
def test_scan_finds_similar_names_at_one_street_whatever_the_postcode():
    original = person("Tomasz", "Lewandowski")
    lives_at(original, street="ul. Długa 5/3", postcode="00-238")
    again = person("Tomasz", "Lewandowsky")
    lives_at(again, street="Dluga 5 m. 3", postcode="00-283")  # postcode typo
    swapped = person("Lewandowski", "Tomasz")
    lives_at(swapped, street="UL. DŁUGA 5 / 3", postcode="01-111")
    other_flat = person("Tomasz", "Lewandowski")
    lives_at(other_flat, street="ul. Długa 7", postcode="00-238", city="Łódź")

    duplicates_scan()

    found = pairs(Reason.NAME_STREET)
    assert found == {
        pair(original, again),
        pair(original, swapped),
        pair(again, swapped),
    }
    assert DuplicateCandidate.objects.filter(
        reason=Reason.NAME_STREET, key="dluga 5 3, warszawa"
    ).exists()


@pytest.mark.django_db
def test_a_pair_found_by_street_is_not_listed_again_by_postcode():
    a = person("Zofia", "Wójcik")
    lives_at(a, street="Polna 3", postcode="00-950")
    b = person("Zofia", "Wojcik")
    lives_at(b, street="Polna 3", postcode="00-950")

    duplicates_scan()

    assert pairs(Reason.NAME_STREET) == {pair(a, b)}
    assert pairs(Reason.NAME_POSTCODE) == set()


@pytest.mark.django_db
def test_dissimilar_names_and_missing_names_are_not_paired():
    husband = person("Piotr", "Nowak")
    lives_at(husband, street="Polna 3", postcode="00-950")
    wife = person("Anna", "Nowak")
    lives_at(wife, street="Polna 3", postcode="00-950")
    son = person("Jan", "Kowalski")
    lives_at(son, street="Polna 3", postcode="00-950")
    first_only = person("Anna", "")
    lives_at(first_only, street="Polna 3", postcode="00-950")
    no_number = person("Piotr", "Nowak")
    lives_at(no_number, street="Polna", postcode="11-111", city="Gdańsk")
    no_number_too = person("Piotr", "Nowak")
    lives_at(no_number_too, street="Polna", postcode="22-222", city="Gdańsk")

    assert duplicates_scan() == {
        Reason.EMAIL: 0,
        Reason.PHONE: 0,
        Reason.NAME_POSTCODE: 0,
        Reason.NAME_STREET: 0,
    }


@pytest.mark.django_db
def test_merged_and_erased_customers_take_no_part():
    kept = person("Jan", "Kowalski", email="jan@example.pl", phone="+48601000003")
    lives_at(kept, street="Polna 3", postcode="00-950")
    merged = person("Jan", "Kowalski", email="jan+x@example.pl", phone="+48601000003")
    lives_at(merged, street="Polna 3", postcode="00-950")
    Customer.objects.filter(pk=merged.pk).update(
        merged_into=kept, merged_at=timezone.now()
    )
    erased = person("Jan", "Kowalski", email="jan+y@example.pl", phone="+48601000003")
    lives_at(erased, street="Polna 3", postcode="00-950")
    Customer.objects.filter(pk=erased.pk).update(erased_at=timezone.now())

    assert sum(duplicates_scan().values()) == 0
    assert not DuplicateCandidate.objects.exists()


@pytest.mark.django_db
def test_scan_again_keeps_what_still_holds_and_drops_what_no_longer_does():
    a = person("Jan", "Kowalski", email="jan@example.pl")
    b = person("Jan", "Kowalski", email="jan+x@example.pl")
    c = person("Ewa", "Lis", phone="+48601000004")
    d = person("Ewa", "Lis", phone="+48601000004")
    duplicates_scan()
    long_ago = timezone.now() - timedelta(days=40)
    DuplicateCandidate.objects.update(found_at=long_ago)
    before = {(p.customer_id, p.other_id, p.reason): p.pk for p in pairs_rows()}

    duplicates_scan()

    after = {(p.customer_id, p.other_id, p.reason): p.pk for p in pairs_rows()}
    assert after == before  # the same rows, not new ones
    assert set(DuplicateCandidate.objects.values_list("found_at", flat=True)) == {
        long_ago
    }

    Customer.objects.filter(pk=d.pk).update(phone="+48601000005")
    e = person("Jan", "Kowalski", email="jan+z@example.pl")
    duplicates_scan()

    assert pairs(Reason.PHONE) == set()
    assert pairs(Reason.EMAIL) == {(a.pk, b.pk), (a.pk, e.pk)}
    assert DuplicateCandidate.objects.get(other=b).found_at == long_ago
    assert DuplicateCandidate.objects.get(other=e).found_at > long_ago
    assert c.pk  # paired no more


def pairs_rows():
    return list(DuplicateCandidate.objects.all())


# ---------- The checks' rules ----------

EMAILS = [
    "anna@example.pl",
    "Anna.Nowak+tag@sub.example.co.uk",
    "o'brien@example.ie",
    '"quoted local"@example.pl',
    "user@localhost",
    "user@[192.168.0.1]",
    "user@[::1]",
    "józef@zażółć.pl",
    "user@xn--zaz-6qa.pl",
    "plainaddress",
    "two@@example.pl",
    "trailing.dot.@example.pl",
    "user@example",
    "user@-example.pl",
    "user@example-.pl",
    "user@exam_ple.pl",
    "user@example.p",
    "user@example.123",
    "user name@example.pl",
    "user@[999.1.1.1]",
    "@example.pl",
    "user@",
    "user@sub-.example.pl",
    "UPPER@EXAMPLE.PL",
    "user@exa--mple.pl",
    "a" * 60 + "@example.pl",  # long: read with Django's patterns, valid
    "user@" + "a" * 64 + ".pl",  # a label longer than 63
    "user@" + "a" * 63 + ".pl",
]


def _valid_email(value):
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


@pytest.mark.django_db
def test_invalid_email_rule_agrees_with_djangos_validator():
    customers = {
        email: Customer.objects.create(email=email, first_name="X") for email in EMAILS
    }

    invalid = set(email_invalid(Customer.objects.all()).values_list("pk", flat=True))

    expected = {c.pk for email, c in customers.items() if not _valid_email(email)}
    assert invalid == expected
    assert len(expected) >= 12  # the samples do test both sides


def _random_numbers():
    numbers = []
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions[:3]:
            if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
                example = phonenumbers.example_number_for_non_geo_entity(code)
            else:
                example = phonenumbers.example_number(region)
            if example is None:
                continue
            e164 = phonenumbers.format_number(
                example, phonenumbers.PhoneNumberFormat.E164
            )
            numbers += [e164, e164[:-1], e164 + "7", e164[:-2] + "00"]
    numbers += ["+48100000000", "+4860123456", "+99912345678", "+48500000000"]
    return sorted({n for n in numbers if 8 <= len(n) <= 16})


def _valid_phone(value):
    try:
        validate_phone(value)
    except ValidationError:
        return False
    return True


@pytest.mark.django_db
def test_phone_rule_agrees_with_the_phone_validator_for_every_country():
    numbers = _random_numbers()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT p, {phone_valid_sql('p')} FROM unnest(%s::text[]) AS t(p)",  # noqa: S608
            [numbers],
        )
        verdicts = dict(cursor.fetchall())

    disagree = [n for n in numbers if verdicts[n] != _valid_phone(n)]
    assert disagree == []
    assert 300 < sum(verdicts.values()) < len(numbers) - 300


@pytest.mark.django_db
def test_each_check_counts_and_lists_what_it_finds():
    bad_email = person("Ola", "Zła", email="ola@@example.pl")
    Customer.objects.create(first_name="Ela", email="ela@example.pl")
    bad_phone = person("Ida", "Krótka", phone="+4860123456")
    person("Iza", "Dobra", phone="+48500000000")
    nobody = person("Nikt", "Nieznany")
    reachable = person("Ktoś", "Znany")
    lives_at(reachable, street="Polna 3", postcode="00-950")
    restricted = person("Ograniczony", "Ktoś", restricted_at=timezone.now())
    a = person("Jan", "Kowalski", phone="+48601000006")
    b = person("Jan", "Kowalski", phone="+48601000006")

    scan = quality_scan()

    def listed(code):
        return {row.pk for row in quality_check(code).found()}

    assert listed("invalid-email") == {bad_email.pk}
    assert listed("invalid-phone") == {bad_phone.pk}
    assert listed("no-contact") == {nobody.pk}
    assert restricted.pk not in listed("no-contact")
    assert {
        (p.customer_id, p.other_id) for p in quality_check("duplicates").found()
    } == {(a.pk, b.pk)}
    assert scan.finished_at is not None
    assert scan.counts["invalid-email"] == quality_check("invalid-email").count() == 1
    assert scan.counts["invalid-phone"] == 1
    assert scan.counts["no-contact"] == 1
    assert scan.counts["duplicates"] == 1
    assert scan.duplicates[Reason.PHONE] == 1
    assert set(scan.counts) == {check.code for check in quality_checks()}


@pytest.mark.django_db
def test_findings_that_still_hold_keep_their_date_and_fixed_ones_go():
    bad = person("Ola", "Zła", email="ola@@example.pl")
    other = person("Ala", "Zła", email="ala@@example.pl")
    quality_scan()
    long_ago = timezone.now() - timedelta(days=3)
    QualityFinding.objects.update(found_at=long_ago)
    Customer.objects.filter(pk=other.pk).update(email="ala@example.pl")

    check = quality_check("invalid-email")
    assert check.still_failing([bad.pk, other.pk]) == {bad.pk}

    quality_scan()

    assert list(
        QualityFinding.objects.values_list("code", "object_id", "found_at")
    ) == [("invalid-email", bad.pk, long_ago)]


@pytest.mark.django_db
def test_a_page_of_phones_is_checked_again_without_the_whole_table():
    bad = person("Ida", "Krótka", phone="+4860123456")
    fixed = person("Ala", "Krótka", phone="+4860123457")
    quality_scan()
    Customer.objects.filter(pk=fixed.pk).update(phone="+48500000001")

    check = quality_check("invalid-phone")

    assert {row.pk for row in check.found()} == {bad.pk, fixed.pk}
    assert check.still_failing([bad.pk, fixed.pk]) == {bad.pk}


@pytest.mark.django_db
def test_the_task_runs_the_scan_and_records_it():
    person("Jan", "Kowalski", email="jan@example.pl")
    person("Jan", "Kowalski", email="jan+1@example.pl")

    result = tasks.duplicates_scan_task()

    assert result["duplicates"][Reason.EMAIL] == 1
    assert QualityScan.objects.finished().count() == 1


# ---------- Pages ----------


@pytest.fixture
def manager(client, make_staff):
    user = make_staff("Manager")
    client.force_login(user)
    return user


@pytest.fixture
def scan_sent(monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.duplicates_scan_task, "delay", lambda: sent.append(1))
    return sent


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("Manager", 200),
        ("Data protection officer", 200),
        ("Marketing", 403),
        ("Support", 403),
    ],
)
@pytest.mark.django_db
def test_who_sees_the_quality_pages(client, make_staff, role, status):
    client.force_login(make_staff(role))
    assert client.get(INDEX).status_code == status
    for check in quality_checks():
        url = reverse("quality:list", args=[check.code])
        assert client.get(url).status_code == status, check.code
        export = reverse("quality:export", args=[check.code])
        if status == 200 and check.code == "orders-without-customer":
            # Order exports are the Manager's alone.
            status_export = 200 if role == "Manager" else 403
        else:
            status_export = status
        assert client.get(export).status_code == status_export, check.code
    assert client.post(reverse("quality:scan")).status_code in (302, 403)


@pytest.mark.django_db
def test_anonymous_users_are_sent_to_login(client):
    for url in (
        INDEX,
        reverse("quality:list", args=["duplicates"]),
        reverse("quality:export", args=["invalid-email"]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login") + "?next=")


@pytest.mark.django_db
def test_an_unknown_check_is_not_found(client, manager):
    assert client.get(reverse("quality:list", args=["nope"])).status_code == 404


@pytest.mark.django_db
def test_overview_shows_the_last_scans_counts_and_when(client, manager):
    page = client.get(INDEX)
    assert page.status_code == 200
    assert b"data-last-scan" in page.content
    assert page.context["last_scan"] is None
    assert all(card["count"] is None for card in page.context["cards"])

    person("Ola", "Zła", email="ola@@example.pl")
    quality_scan()
    page = client.get(INDEX)

    cards = {card["check"].code: card["count"] for card in page.context["cards"]}
    assert cards["invalid-email"] == 1
    assert cards["duplicates"] == 0
    assert b'data-check="invalid-email"' in page.content
    assert reverse("quality:list", args=["invalid-email"]).encode() in page.content


@pytest.mark.django_db
def test_scan_now_queues_the_task_after_commit(
    client, manager, scan_sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("quality:scan"), follow=True)

    assert scan_sent == [1]
    assert response.redirect_chain[-1][0] == INDEX
    assert [m.level_tag for m in response.context["messages"]] == ["success"]
    assert client.get(reverse("quality:scan")).status_code == 405


@pytest.mark.django_db
def test_a_running_scan_is_shown(client, manager):
    QualityScan.objects.create()
    page = client.get(INDEX)
    assert b"data-scan-running" in page.content


@pytest.mark.django_db
def test_list_links_rows_marks_fixed_ones_and_logs_access(
    client, manager, django_assert_max_num_queries
):
    bad = [person("Ola", f"Zła{i}", email=f"ola{i}@@example.pl") for i in range(3)]
    quality_scan()
    Customer.objects.filter(pk=bad[0].pk).update(email="ola@example.pl")
    url = reverse("quality:list", args=["invalid-email"])

    with django_assert_max_num_queries(12):
        page = client.get(url)

    assert page.status_code == 200
    for customer in bad:
        assert reverse("customers:detail", args=[customer.pk]).encode() in page.content
    assert [row["fixed"] for row in page.context["rows"]] == [False, False, True]
    assert page.content.count(b"data-fixed") == 1
    logged = set(
        AccessLog.objects.filter(action="view", user=manager).values_list(
            "customer_id", flat=True
        )
    )
    assert logged == {c.pk for c in bad}


@pytest.mark.django_db
def test_lists_are_paged_without_counting(client, manager):
    for i in range(55):
        person("Ola", f"Zła{i}", email=f"ola{i}@@example.pl")
    quality_scan()
    url = reverse("quality:list", args=["invalid-email"])

    first = client.get(url)
    second = client.get(url, {"page": 2})

    assert len(first.context["rows"]) == 50
    assert first.context["page"].has_next
    assert len(second.context["rows"]) == 5
    assert second.context["known_total"] == 55


@pytest.mark.django_db
def test_duplicates_page_shows_pairs_side_by_side(
    client, manager, django_assert_max_num_queries
):
    a = person("Jan", "Kowalski", email="jan@example.pl", phone="+48601000007")
    lives_at(a, street="Polna 3", postcode="00-950", city="Radom")
    b = person("Jan", "Kowalski", email="jan+x@example.pl")
    c = person("Ewa", "Lis", phone="+48601000008")
    d = person("Ewa", "Lis", phone="+48601000008")
    quality_scan()
    url = reverse("quality:list", args=["duplicates"])

    with django_assert_max_num_queries(13):
        page = client.get(url)

    assert page.status_code == 200
    content = page.content.decode()
    assert f'data-pair="{a.pk}-{b.pk}"' in content
    assert f'data-pair="{c.pk}-{d.pk}"' in content
    assert "Radom" in content
    for customer in (a, b, c, d):
        assert reverse("customers:detail", args=[customer.pk]) in content
    tabs = {tab["code"]: tab["count"] for tab in page.context["tabs"]}
    assert tabs[Reason.EMAIL] == 1
    assert tabs[Reason.PHONE] == 1
    assert page.context["total"] == 2
    assert [item["pair"].reason for item in page.context["pairs"]] == [
        Reason.EMAIL,
        Reason.PHONE,
    ]
    assert [tab["code"] for tab in page.context["tabs"]] == sorted(Reason.values)
    items = {item["pair"].reason: item for item in page.context["pairs"]}
    assert [side["customer"] for side in items[Reason.EMAIL]["sides"]] == [a, b]
    logged = set(
        AccessLog.objects.filter(user=manager).values_list("customer_id", flat=True)
    )
    assert logged == {a.pk, b.pk, c.pk, d.pk}

    only_phone = client.get(url, {"reason": Reason.PHONE})
    assert [item["pair"].other_id for item in only_phone.context["pairs"]] == [d.pk]


@pytest.mark.django_db
def test_duplicates_page_links_to_compare_and_batch_merge_when_they_exist(
    client, manager
):
    a = person("Jan", "Kowalski", email="jan@example.pl")
    b = person("Jan", "Kowalski", email="jan+x@example.pl")
    quality_scan()

    page = client.get(reverse("quality:list", args=["duplicates"]), {"reason": "email"})

    item = page.context["pairs"][0]
    try:
        compare = reverse("merges:compare", args=[a.pk, b.pk])
    except Exception:  # noqa: BLE001 - the merge pages come with their own change
        compare = None
    assert item["compare_url"] == compare
    if compare:
        assert compare.encode() in page.content
        assert b'data-batch="email"' in page.content
    assert set(page.context["batch_urls"]) == {"email", "phone"}


@pytest.mark.django_db
def test_pairs_whose_record_was_merged_since_the_scan_are_not_listed(client, manager):
    a = person("Jan", "Kowalski", email="jan@example.pl")
    b = person("Jan", "Kowalski", email="jan+x@example.pl")
    quality_scan()
    Customer.objects.filter(pk=b.pk).update(merged_into=a, merged_at=timezone.now())

    page = client.get(reverse("quality:list", args=["duplicates"]))

    assert page.context["pairs"] == []
    assert quality_check("duplicates").count() == 0


def _csv(response):
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.django_db
def test_csv_of_a_list_holds_its_rows_and_logs_the_export(client, manager):
    bad = person("Ola", "Zła", email="=ola@@example.pl", phone="+48500000000")
    lives_at(bad, street="Polna 3", postcode="00-950", city="Radom")
    quality_scan()

    response = client.get(reverse("quality:export", args=["invalid-email"]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "invalid-email-" in response["Content-Disposition"]
    assert response["Cache-Control"] == "no-store"
    rows = _csv(response)
    assert rows == [
        {
            "name": "Ola Zła",
            "email": "'=ola@@example.pl",  # formula-safe
            "phone": "'+48500000000",  # formula-safe too; importers drop it
            "city": "Radom",
            "created_at": rows[0]["created_at"],
            "customer_id": str(bad.pk),
        }
    ]
    assert AccessLog.objects.filter(
        action="export", customer=bad, user=manager
    ).exists()


@pytest.mark.django_db
def test_csv_of_duplicates_has_both_records_and_logs_both(client, manager):
    a = person("Jan", "Kowalski", email="jan@example.pl")
    b = person("Jan", "Kowalsky", email="jan+x@example.pl")
    quality_scan()

    rows = _csv(client.get(reverse("quality:export", args=["duplicates"])))

    assert [(r["reason"], r["customer_id"], r["other_id"]) for r in rows] == [
        ("email", str(a.pk), str(b.pk))
    ]
    assert rows[0]["key"] == "jan@example.pl"
    assert rows[0]["other_name"] == "Jan Kowalsky"
    assert set(
        AccessLog.objects.filter(action="export").values_list("customer_id", flat=True)
    ) == {a.pk, b.pk}


# ---------- Admin ----------


@pytest.mark.django_db
def test_admin_lists_pairs_read_only_and_finds_by_either_customer(client, manager):
    a = person("Jan", "Kowalski", email="jan@example.pl")
    b = person("Jan", "Kowalski", email="jan+x@example.pl")
    person("Ewa", "Lis", phone="+48601000009")
    person("Ewa", "Lis", phone="+48601000009")
    duplicates_scan()
    url = reverse("admin:customers_duplicatecandidate_changelist")

    page = client.get(url)
    assert page.status_code == 200
    assert (
        reverse("admin:customers_customer_change", args=[b.pk]).encode() in page.content
    )
    assert client.get(url, {"reason": "phone"}).context["cl"].result_count == 1
    found = client.get(url, {"q": "jan+x@example.pl"}).context["cl"].result_list
    assert [(p.customer_id, p.other_id) for p in found] == [(a.pk, b.pk)]
    pk = DuplicateCandidate.objects.first().pk
    assert (
        client.get(reverse("admin:customers_duplicatecandidate_add")).status_code == 403
    )
    change = client.get(reverse("admin:customers_duplicatecandidate_change", args=[pk]))
    assert b'name="reason"' not in change.content  # view only


@pytest.mark.django_db
def test_admin_rescan_runs_without_a_selection(
    client, manager, scan_sent, django_capture_on_commit_callbacks
):
    url = reverse("admin:customers_duplicatecandidate_changelist")
    assert b'value="rescan"' in client.get(url).content  # on an empty list too

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"action": "rescan", "index": 0}, follow=True)

    assert scan_sent == [1]
    assert [m.level_tag for m in response.context["messages"]] == ["success"]


@pytest.mark.django_db
def test_admin_is_closed_to_roles_without_the_permission(client, make_staff):
    client.force_login(make_staff("Marketing"))
    url = reverse("admin:customers_duplicatecandidate_changelist")
    assert client.get(url).status_code == 403
