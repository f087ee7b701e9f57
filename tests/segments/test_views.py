"""The segments staff pages: list, builder, live count, segment page, lists, export."""

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse
from django.utils import timezone, translation

from consents.models import AccessLog
from segments import views
from segments.metrics import metrics_recompute
from segments.models import (
    RfmSegmentMove,
    Segment,
    SegmentMembership,
    SegmentRebuild,
)
from segments.services import segment_create, segment_members_add, segment_rebuild
from segments.tasks import segment_rebuild_task
from tests.factories.customers import AddressFactory, CustomerFactory
from tests.factories.orders import OrderFactory

pytestmark = pytest.mark.django_db

LIST = reverse("segments:list")
CREATE = reverse("segments:create")
PREVIEW = reverse("segments:preview")
TWO_ORDERS = {
    "op": "and",
    "rules": [{"field": "orders_count", "operator": "gte", "value": 2}],
}


@pytest.fixture(autouse=True)
def _english(client):
    """Texts are checked in English (Polish is the default language)."""
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def queued(monkeypatch):
    """Rebuilds the pages ask for, recorded instead of going to a broker."""
    calls = []
    monkeypatch.setattr(
        segment_rebuild_task,
        "delay",
        lambda segment_id, trigger, user_id=None: calls.append(
            (segment_id, trigger, user_id)
        ),
    )
    return calls


@pytest.fixture
def marketing(client, make_staff):
    user = make_staff("Marketing", username="magda")
    client.force_login(user)
    return user


@pytest.fixture
def support(client, make_staff):
    user = make_staff("Support", username="sylwia")
    client.force_login(user)
    return user


@pytest.fixture
def buyers(store):
    """Three customers with 3, 2 and 1 paid orders, and one who never ordered."""
    now = timezone.now()
    people = {}
    for name, orders in (("ala", 3), ("bartek", 2), ("cezary", 1), ("dorota", 0)):
        customer = CustomerFactory(first_name=name.title(), email=f"{name}@example.pl")
        for index in range(orders):
            OrderFactory(
                store=store,
                customer=customer,
                placed_at=now - timedelta(days=5 + 20 * index),
                total=Decimal("100.00"),
            )
        people[name] = customer
    metrics_recompute()
    return people


def detail_url(segment):
    return reverse("segments:detail", args=[segment.pk])


def form_data(**fields):
    data = {
        "name": "Powracający",
        "description": "Co najmniej dwa zamówienia",
        "kind": "dynamic",
        "schedule": "daily",
        "rules": json.dumps(TWO_ORDERS),
    }
    data.update(fields)
    return data


# ---------- Who may do what ----------


@pytest.mark.parametrize(
    "url",
    [LIST, CREATE, reverse("segments:rfm"), reverse("segments:detail", args=[1])],
)
def test_anonymous_users_are_sent_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{reverse('login')}?next=")


@pytest.mark.parametrize(
    ("role", "list_status", "create_status", "export_status"),
    [
        ("Marketing", 200, 200, 200),
        ("Manager", 200, 200, 200),
        ("Support", 200, 403, 403),
        ("Data protection officer", 200, 403, 403),
    ],
)
def test_pages_per_role(
    client, make_staff, queued, role, list_status, create_status, export_status
):
    segment = segment_create(name="Lista", kind="static")
    client.force_login(make_staff(role))
    assert client.get(LIST).status_code == list_status
    assert client.get(detail_url(segment)).status_code == list_status
    assert client.get(CREATE).status_code == create_status
    edit = reverse("segments:edit", args=[segment.pk])
    assert client.get(edit).status_code == create_status
    rebuild = client.post(reverse("segments:rebuild", args=[segment.pk]))
    assert rebuild.status_code == (302 if create_status == 200 else 403)
    export = reverse("segments:export", args=[segment.pk])
    assert client.get(export).status_code == export_status
    preview = client.post(PREVIEW, {"rules": json.dumps(TWO_ORDERS)})
    assert preview.status_code == create_status


def test_staff_without_a_segments_role_get_403(client, make_staff):
    client.force_login(make_staff())
    assert client.get(LIST).status_code == 403
    assert client.get(reverse("segments:rfm")).status_code == 403


def test_main_navigation_and_new_segment_button_follow_permissions(client, make_staff):
    client.force_login(make_staff("Support"))
    content = client.get(LIST).content.decode()
    assert f'href="{LIST}" aria-current="page"' in content
    assert f'href="{reverse("segments:rfm")}"' in content
    assert f'href="{CREATE}"' not in content

    client.force_login(make_staff("Marketing"))
    content = client.get(LIST).content.decode()
    assert f'href="{CREATE}"' in content

    client.force_login(make_staff())
    content = client.get(reverse("customers:list")).content.decode()
    assert f'href="{LIST}"' not in content


def test_segment_list_shows_kind_size_schedule_and_last_rebuild(
    client, marketing, buyers
):
    dynamic = segment_create(name="Powracający", rules=TWO_ORDERS, schedule="hourly")
    segment_rebuild(segment=dynamic)
    segment_create(name="VIP z targów", kind="static")
    response = client.get(LIST)
    content = response.content.decode()
    assert [s.name for s in response.context["segments"]] == [
        "Powracający",
        "VIP z targów",
    ]
    row = content.split(f'data-segment="{dynamic.pk}"')[1].split("</tr>")[0]
    assert "Dynamic (by rules)" in row
    assert ">2<" in row
    assert "Every hour" in row
    assert "not yet" not in row
    assert "Static (a list)" in content


# ---------- The builder ----------


def test_builder_page_carries_the_schema_and_the_script(client, marketing):
    content = client.get(CREATE).content.decode()
    assert 'id="segment-schema"' in content
    assert 'id="segment-builder-texts"' in content
    assert "js/segment_builder.js" in content
    assert f'hx-post="{PREVIEW}"' in content
    assert 'name="rules"' in content
    schema = json.loads(
        content.split('id="segment-schema" type="application/json">')[1].split(
            "</script>"
        )[0]
    )
    codes = {f["code"] for group in schema["groups"] for f in group["fields"]}
    assert "orders_count" in codes
    # No inline script: only the JSON islands and the files.
    assert "<script>" not in content


def test_create_a_dynamic_segment_queues_its_first_rebuild(
    client, marketing, queued, buyers, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(CREATE, form_data())
    segment = Segment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == detail_url(segment)
    assert segment.kind == "dynamic"
    assert segment.rules == TWO_ORDERS
    assert segment.created_by == marketing
    assert queued == [(segment.pk, "edit", marketing.pk)]

    # The worker's rebuild, then the page shows the members.
    segment_rebuild_task(*queued[0])
    segment.refresh_from_db()
    assert segment.size == 2
    content = client.get(detail_url(segment)).content.decode()
    assert "orders ≥ 2" in content
    assert "Ala" in content
    assert "Bartek" in content
    assert "Cezary" not in content


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            {"op": "and", "rules": [{"field": "password", "operator": "eq"}]},
            "rules.0.field: unknown field &quot;password&quot;",
        ),
        (
            {"op": "and", "rules": [{"field": "orders_count", "operator": "gte"}]},
            "rules.0.value: a value is needed for orders",
        ),
        ("{not json", "The rules could not be read"),
    ],
)
def test_invalid_rules_show_the_message_and_save_nothing(
    client, marketing, queued, rules, message, django_capture_on_commit_callbacks
):
    text = rules if isinstance(rules, str) else json.dumps(rules)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(CREATE, form_data(rules=text))
    assert response.status_code == 200
    content = response.content.decode()
    assert message in content
    assert "Nothing was saved" in content
    assert not Segment.objects.exists()
    assert queued == []
    # The builder starts again from what was posted.
    assert response.context["form"].rules_json == text


def test_create_a_static_segment_without_rules_or_javascript(
    client, marketing, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            CREATE, form_data(name="Targi 2026", kind="static", rules="")
        )
    segment = Segment.objects.get()
    assert response.status_code == 302
    assert (segment.kind, segment.rules, segment.size) == ("static", {}, 0)
    assert queued == []


def test_edit_rebuilds_only_when_the_rules_change_and_keeps_the_kind(
    client, marketing, queued, buyers, django_capture_on_commit_callbacks
):
    segment = segment_create(name="Powracający", rules=TWO_ORDERS)
    edit = reverse("segments:edit", args=[segment.pk])
    page = client.get(edit)
    assert json.loads(page.context["form"].rules_json) == TWO_ORDERS
    assert "Fixed once the segment is created." in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(edit, form_data(name="Wracają", kind="static", is_active="on"))
    segment.refresh_from_db()
    assert (segment.name, segment.kind) == ("Wracają", "dynamic")
    assert queued == []

    three = {"op": "and", "rules": [{**TWO_ORDERS["rules"][0], "value": 3}]}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(edit, form_data(rules=json.dumps(three), is_active="on"))
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.rules == three
    assert queued == [(segment.pk, "edit", marketing.pk)]


# ---------- The live count ----------


def test_preview_counts_the_customers_the_rules_select(client, marketing, buyers):
    response = client.post(
        PREVIEW, {"rules": json.dumps(TWO_ORDERS)}, HTTP_HX_REQUEST="true"
    )
    content = response.content.decode()
    assert response.status_code == 200
    assert 'data-preview-count="2"' in content
    assert "<strong>2</strong> customers" in content

    one = {"op": "and", "rules": [{**TWO_ORDERS["rules"][0], "value": 1}]}
    content = client.post(PREVIEW, {"rules": json.dumps(one)}).content.decode()
    assert 'data-preview-count="3"' in content

    # No conditions: everyone who may be profiled.
    content = client.post(PREVIEW, {"rules": "{}"}).content.decode()
    assert 'data-preview-count="4"' in content
    assert "no conditions" in content


def test_preview_shows_what_is_wrong(client, marketing):
    bad = {"op": "and", "rules": [{"field": "orders_count", "operator": "gte"}]}
    content = client.post(PREVIEW, {"rules": json.dumps(bad)}).content.decode()
    assert "data-preview-errors" in content
    assert "rules.0.value: a value is needed for orders" in content
    assert "data-preview-count" not in content
    assert not Segment.objects.exists()


def test_a_count_that_takes_too_long_is_given_up(client, marketing, monkeypatch):
    def slow(rules):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(2)")
        return 1

    monkeypatch.setattr(views, "PREVIEW_TIMEOUT_MS", 50)
    monkeypatch.setattr(views, "segment_preview", slow)
    response = client.post(PREVIEW, {"rules": json.dumps(TWO_ORDERS)})
    assert response.status_code == 200
    assert "Counting took too long" in response.content.decode()


# ---------- The segment page ----------


def test_rebuild_now_queues_a_manual_rebuild(
    client, marketing, queued, buyers, django_capture_on_commit_callbacks
):
    segment = segment_create(name="Powracający", rules=TWO_ORDERS)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("segments:rebuild", args=[segment.pk]))
    assert response.status_code == 302
    assert response["Location"] == detail_url(segment)
    assert queued == [(segment.pk, "manual", marketing.pk)]
    segment_rebuild_task(*queued[0])
    rebuild = SegmentRebuild.objects.get(segment=segment)
    assert (rebuild.trigger, rebuild.size, rebuild.requested_by) == (
        "manual",
        2,
        marketing,
    )
    content = client.get(detail_url(segment)).content.decode()
    assert "A rebuild of “Powracający” is on its way" in content
    assert "On demand" in content  # the recent changes table


def test_rebuild_needs_a_post(client, marketing, queued):
    segment = segment_create(name="Lista", kind="static")
    assert client.get(reverse("segments:rebuild", args=[segment.pk])).status_code == 405


def test_segment_page_draws_the_size_chart_from_the_last_90_days(
    client, marketing, buyers
):
    segment = segment_create(name="Powracający", rules=TWO_ORDERS)
    now = timezone.now()
    for days, size in ((120, 7), (40, 1), (10, 3), (10, 2)):
        at = now - timedelta(days=days, hours=1 if size == 3 else 2)
        SegmentRebuild.objects.create(
            segment=segment,
            trigger="schedule",
            started_at=at,
            finished_at=at,
            size=size,
            entered=size,
            left=1,
        )
    response = client.get(detail_url(segment))
    chart = response.context["chart"]
    # 120 days ago is out of the window; two rebuilds on one day: the later one.
    assert [(day.size, day.entered, day.left) for day in chart.days] == [
        (1, 1, 1),
        (3, 5, 2),
    ]
    content = response.content.decode()
    assert '<svg class="sizechart"' in content
    assert 'role="img"' in content
    assert '<title id="size-chart-title">' in content
    assert "<polyline" in content
    # The numbers for those who cannot see the chart.
    table = content.split("Members per day")[1].split("</table>")[0]
    assert "<td>3</td><td>5</td><td>2</td>" in table


def test_members_are_paged_without_counting(
    client, marketing, buyers, monkeypatch, django_assert_max_num_queries
):
    monkeypatch.setattr(views, "MEMBERS_PER_PAGE", 2)
    one = {"op": "and", "rules": [{**TWO_ORDERS["rules"][0], "value": 1}]}
    segment = segment_create(name="Kupujący", rules=one)
    segment_rebuild(segment=segment)
    AddressFactory(customer=buyers["ala"], city="Gdańsk")
    with django_assert_max_num_queries(20) as queries:
        first = client.get(detail_url(segment))
    assert not any(
        "count(" in q["sql"].lower() and "segmentmembership" in q["sql"].lower()
        for q in queries.captured_queries
    )
    assert [row.customer for row in first.context["rows"]] == [
        buyers["ala"],
        buyers["bartek"],
    ]
    assert first.context["page"].has_next
    content = first.content.decode()
    assert "Gdańsk" in content
    assert "of 3 results" in content  # the total is the segment's size
    assert f'href="{reverse("customers:detail", args=[buyers["ala"].pk])}"' in content
    # Each row's named RFM segment, as staff call it.
    assert f"rfmtag rfmseg--{first.context['rows'][0].rfm_segment}" in content
    assert first.context["rows"][1].rfm_segment_name in content

    second = client.get(detail_url(segment), {"page": 2})
    assert [row.customer for row in second.context["rows"]] == [buyers["cezary"]]
    assert not second.context["page"].has_next

    # Each listed customer is in the access log.
    logged = set(
        AccessLog.objects.filter(action="view", user=marketing).values_list(
            "customer_id", flat=True
        )
    )
    assert logged == {buyers["ala"].pk, buyers["bartek"].pk, buyers["cezary"].pk}


def test_export_of_members_for_marketing_is_formula_safe_and_logged(
    client, marketing, buyers
):
    buyers["ala"].first_name = '=HYPERLINK("http://x")'
    buyers["ala"].save(update_fields=["first_name"])
    segment = segment_create(name="Powracający", rules=TWO_ORDERS)
    segment_rebuild(segment=segment)
    response = client.get(reverse("segments:export", args=[segment.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert f"segment-{segment.pk}-" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(row["email"] for row in rows) == [
        "ala@example.pl",
        "bartek@example.pl",
    ]
    first_names = {row["email"]: row["first_name"] for row in rows}
    assert first_names["ala@example.pl"] == '\'=HYPERLINK("http://x")'
    exported = set(
        AccessLog.objects.filter(action="export", user=marketing).values_list(
            "customer_id", flat=True
        )
    )
    assert exported == {buyers["ala"].pk, buyers["bartek"].pk}


def test_export_is_refused_to_support(client, support, buyers):
    segment = segment_create(name="Powracający", rules=TWO_ORDERS)
    segment_rebuild(segment=segment)
    assert client.get(reverse("segments:export", args=[segment.pk])).status_code == 403
    assert "export.csv" not in client.get(detail_url(segment)).content.decode()
    assert not AccessLog.objects.filter(action="export").exists()


# ---------- Static lists ----------


def test_paste_adds_known_contacts_and_reports_the_rest(client, marketing, buyers):
    segment = segment_create(name="Targi", kind="static")
    segment_members_add(segment=segment, customers=[buyers["cezary"]])
    paste = reverse("segments:members_paste", args=[segment.pk])
    text = "ALA@example.pl; 601-000-999\ncezary@example.pl, nikt@example.pl"
    buyers["bartek"].phone = "+48601000999"
    buyers["bartek"].save(update_fields=["phone"])
    response = client.post(paste, {"text": text}, follow=True)
    content = response.content.decode()
    assert "2 customers added to the list." in content
    assert "1 was on the list already." in content
    assert "1 contact matches no customer: nikt@example.pl" in content
    assert set(
        SegmentMembership.objects.filter(segment=segment).values_list(
            "customer_id", flat=True
        )
    ) == {buyers["ala"].pk, buyers["bartek"].pk, buyers["cezary"].pk}
    segment.refresh_from_db()
    assert segment.size == 3


def test_remove_a_member_from_a_static_list(client, marketing, buyers):
    segment = segment_create(name="Targi", kind="static")
    segment_members_add(segment=segment, customers=[buyers["ala"], buyers["bartek"]])
    content = client.get(detail_url(segment)).content.decode()
    remove = reverse("segments:member_remove", args=[segment.pk, buyers["ala"].pk])
    assert f'action="{remove}"' in content
    response = client.post(remove, {"page": "1"})
    assert response.status_code == 302
    assert response["Location"] == f"{detail_url(segment)}?page=1#members"
    assert list(
        SegmentMembership.objects.filter(segment=segment).values_list(
            "customer_id", flat=True
        )
    ) == [buyers["bartek"].pk]


def test_lists_are_kept_only_by_those_allowed_and_only_when_static(
    client, support, make_staff, buyers
):
    segment = segment_create(name="Targi", kind="static")
    segment_members_add(segment=segment, customers=[buyers["ala"]])
    paste = reverse("segments:members_paste", args=[segment.pk])
    remove = reverse("segments:member_remove", args=[segment.pk, buyers["ala"].pk])
    content = client.get(detail_url(segment)).content.decode()
    assert paste not in content
    assert remove not in content
    assert client.post(paste, {"text": "bartek@example.pl"}).status_code == 403
    assert client.post(remove).status_code == 403
    assert SegmentMembership.objects.filter(segment=segment).count() == 1

    client.force_login(make_staff("Marketing"))
    dynamic = segment_create(name="Reguły", rules=TWO_ORDERS)
    dynamic_paste = reverse("segments:members_paste", args=[dynamic.pk])
    assert client.post(dynamic_paste, {"text": "ala@example.pl"}).status_code == 404
    assert dynamic_paste not in client.get(detail_url(dynamic)).content.decode()


# ---------- The customer page ----------


def test_customer_page_shows_metrics_segments_and_moves(client, support, buyers):
    ala = buyers["ala"]
    RfmSegmentMove.objects.create(
        customer=ala, from_segment="", to_segment="loyal", moved_at=timezone.now()
    )
    segment = segment_create(name="Powracający", rules=TWO_ORDERS)
    segment_rebuild(segment=segment)
    response = client.get(reverse("customers:detail", args=[ala.pk]))
    content = response.content.decode()
    panel = content.split("data-customer-metrics")[1].split("</section>")[0]
    metrics = ala.metrics.get(store__isnull=True)
    assert "Metrics and segments" in content
    assert f'data-rfm-segment="{metrics.rfm_segment}"' in panel
    assert f"R{metrics.recency_score}" in panel
    assert "Lifetime value (CLV)" in panel
    assert "300.00" in panel  # revenue: three orders of 100
    assert f'href="{detail_url(segment)}"' in panel
    assert "Powracający" in panel
    assert "not scored → Loyal" in panel


def test_customer_page_panel_needs_the_metrics_permission(
    client, django_user_model, buyers
):
    user = django_user_model.objects.create_user("widz", password="x")
    user.user_permissions.add(
        Permission.objects.get(
            codename="view_customer", content_type__app_label="customers"
        )
    )
    client.force_login(user)
    response = client.get(reverse("customers:detail", args=[buyers["ala"].pk]))
    assert response.status_code == 200
    assert "data-customer-metrics" not in response.content.decode()
