"""Flows: each trigger at fixed times, once, from switching on; end to end."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.flows import FLOW_DEFAULTS, flow_update, flows_ensure, flows_run
from campaigns.models import Delivery, Flow
from campaigns.tasks import flow_send_task
from consents.double_opt_in import (
    double_opt_in_confirm,
    double_opt_in_start,
    double_opt_in_token,
)
from consents.services import consent_grant, consent_text_current, suppression_add
from customers.interactions import interaction_set_status
from orders.models import Cart, Order
from segments.models import RfmSegmentMove
from tests.factories.campaigns import EmailTemplateFactory, SmsTemplateFactory
from tests.factories.customers import CustomerFactory, InteractionFactory
from tests.factories.orders import (
    CategoryFactory,
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
)
from tests.factories.segments import CustomerMetricsFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
SEND = "campaigns.tasks.flow_send_task"


def grant(customer, purposes, code="email_marketing"):
    consent_grant(
        customer=customer,
        purpose=code,
        text=consent_text_current(purpose=purposes[code], language="pl"),
        source="newsletter_form",
        occurred_at=timezone.now() - dt.timedelta(days=3),
    )


def switch_on(kind, *, at=T0, template=None, **changes):
    """The flow of ``kind``, switched on (as if) at ``at``."""
    flows_ensure()
    flow = Flow.objects.get(kind=kind)
    flow = flow_update(
        flow=flow,
        actor=None,
        is_active=True,
        template=template or EmailTemplateFactory(),
        **changes,
    )
    Flow.objects.filter(pk=flow.pk).update(activated_at=at)
    flow.refresh_from_db()
    return flow


def triggers(flow):
    return sorted(flow.deliveries.values_list("trigger", flat=True))


@pytest.fixture
def buyer(purposes):
    customer = CustomerFactory(first_name="Zofia")
    grant(customer, purposes)
    return customer


def cart(store, customer, *, at, value="120.00", **fields):
    return Cart.objects.create(
        store=store,
        external_id=f"K-{Cart.objects.count() + 1}",
        customer=customer,
        value=Decimal(value),
        updated_at=at,
        **fields,
    )


# --- The flows as shipped, and changing them ------------------------------------


def test_flows_ensure_creates_the_five_flows_off_and_keeps_edits(purposes):
    Flow.objects.all().delete()
    flows_ensure()
    flows = {flow.kind: flow for flow in Flow.objects.all()}
    assert {kind: flow.delay_hours for kind, flow in flows.items()} == FLOW_DEFAULTS
    assert FLOW_DEFAULTS["replenishment"] == -72
    for flow in flows.values():
        assert (flow.is_active, flow.template, flow.activated_at) == (False, None, None)
        assert flow.purpose.code == "email_marketing"

    Flow.objects.filter(kind="welcome").update(delay_hours=2)
    Flow.objects.filter(kind="win_back").delete()
    flows_ensure()
    assert Flow.objects.count() == 5
    assert Flow.objects.get(kind="welcome").delay_hours == 2


def test_switching_on_needs_a_template_of_the_consents_channel(purposes):
    flows_ensure()
    flow = Flow.objects.get(kind="abandoned_cart")
    with pytest.raises(ValidationError) as caught:
        flow_update(flow=flow, actor=None, is_active=True)
    assert caught.value.error_dict["template"][0].code == "required"

    with pytest.raises(ValidationError) as caught:
        flow_update(
            flow=flow,
            actor=None,
            template=SmsTemplateFactory(),
            purpose=purposes["email_marketing"],
        )
    assert caught.value.error_dict["purpose"][0].code == "purpose_mismatch"

    with pytest.raises(ValidationError) as caught:
        flow_update(flow=flow, actor=None, purpose=purposes["profiling"])
    assert caught.value.error_dict["purpose"][0].code == "purpose_mismatch"

    # An SMS template brings the SMS consent along.
    flow = flow_update(
        flow=flow, actor=None, template=SmsTemplateFactory(), is_active=True
    )
    assert flow.purpose.code == "sms_marketing"
    assert flow.is_active


@pytest.mark.parametrize(
    ("kind", "delay", "valid"),
    [
        ("abandoned_cart", 0, True),
        ("abandoned_cart", 720, True),
        ("abandoned_cart", -1, False),
        ("abandoned_cart", 721, False),
        ("abandoned_cart", True, False),
        ("abandoned_cart", "4", False),
        ("replenishment", -720, True),
        ("replenishment", -721, False),
        ("review_request", -24, False),
    ],
)
def test_delay_range(purposes, kind, delay, valid):
    flows_ensure()
    flow = Flow.objects.get(kind=kind)
    if valid:
        assert (
            flow_update(flow=flow, actor=None, delay_hours=delay).delay_hours == delay
        )
        return
    with pytest.raises(ValidationError) as caught:
        flow_update(flow=flow, actor=None, delay_hours=delay)
    assert caught.value.error_dict["delay_hours"][0].code == "invalid"
    flow.refresh_from_db()
    assert flow.delay_hours == FLOW_DEFAULTS[kind]


def test_coupon_settings_are_checked(purposes):
    flows_ensure()
    flow = Flow.objects.get(kind="win_back")
    with pytest.raises(ValidationError) as caught:
        flow_update(flow=flow, actor=None, coupon_prefix="ZŁOTO")
    assert caught.value.error_dict["coupon_prefix"][0].code == "invalid"
    with pytest.raises(ValidationError) as caught:
        flow_update(flow=flow, actor=None, coupon_validity_days=0)
    assert caught.value.error_dict["coupon_validity_days"][0].code == "invalid"

    flow = flow_update(
        flow=flow, actor=None, coupon_prefix=" wroc ", coupon_validity_days=14
    )
    assert (flow.coupon_prefix, flow.coupon_validity_days) == ("WROC", 14)
    assert flow_update(flow=flow, actor=None, coupon_prefix="").coupon_prefix == ""


def test_switching_off_cancels_what_waits_and_on_again_starts_afresh(
    purposes, admin_user
):
    flows_ensure()
    flow = Flow.objects.get(kind="abandoned_cart")
    before = timezone.now()
    flow = flow_update(
        flow=flow, actor=admin_user, is_active=True, template=EmailTemplateFactory()
    )
    first_on = flow.activated_at
    assert first_on >= before
    waiting = Delivery.objects.create(
        flow=flow, customer=CustomerFactory(), channel="email", trigger="cart:1"
    )

    flow = flow_update(flow=flow, actor=admin_user, is_active=False)
    assert (flow.is_active, flow.activated_at) == (False, None)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.reason) == ("skipped", "cancelled")

    flow = flow_update(flow=flow, actor=admin_user, is_active=True)
    assert flow.activated_at > first_on
    # Who switched it, in the admin's history of the flow.
    entries = LogEntry.objects.filter(object_id=str(flow.pk), user=admin_user)
    assert [json.loads(e.change_message) for e in entries.order_by("id")] == [
        [{"changed": {"fields": ["Template", "Switched on"]}}],
        [{"changed": {"fields": ["Switched on"]}}],
        [{"changed": {"fields": ["Switched on"]}}],
    ]


# --- Abandoned cart ---------------------------------------------------------------


def test_abandoned_cart_once_per_cart_after_the_delay(store, buyer, purposes):
    flow = switch_on("abandoned_cart")
    left = cart(store, buyer, at=T0 + HOUR)

    assert flows_run(now=T0 + 5 * HOUR - dt.timedelta(seconds=1))[flow.kind] == 0
    assert flows_run(now=T0 + 5 * HOUR)["abandoned_cart"] == 1
    assert flows_run(now=T0 + 6 * HOUR)["abandoned_cart"] == 0
    (delivery,) = flow.deliveries.all()
    assert (delivery.customer, delivery.trigger) == (buyer, f"cart:{left.pk}")
    assert (delivery.status, delivery.reason, delivery.channel) == (
        "pending",
        "",
        "email",
    )

    # Changed and left again: still one reminder for that cart.
    Cart.objects.filter(pk=left.pk).update(updated_at=T0 + 10 * HOUR)
    assert flows_run(now=T0 + DAY)["abandoned_cart"] == 0
    # Another cart of hers is another trigger.
    second = cart(store, buyer, at=T0 + DAY)
    assert flows_run(now=T0 + DAY + 4 * HOUR)["abandoned_cart"] == 1
    assert triggers(flow) == sorted([f"cart:{left.pk}", f"cart:{second.pk}"])


def test_abandoned_cart_leaves_out_bought_empty_anonymous_and_old_carts(
    store, buyer, purposes
):
    flow = switch_on("abandoned_cart")
    cart(store, buyer, at=T0 - HOUR)  # changed before the flow was on: history
    cart(store, buyer, at=T0 + HOUR, value="0")
    cart(store, None, at=T0 + HOUR, anonymous_id="anon-1")
    cart(store, buyer, at=T0 + HOUR, converted_at=T0 + 2 * HOUR)
    ordered_since = CustomerFactory()
    grant(ordered_since, purposes)
    cart(store, ordered_since, at=T0 + HOUR)
    OrderFactory(customer=ordered_since, store=store, placed_at=T0 + 3 * HOUR)

    assert flows_run(now=T0 + DAY)["abandoned_cart"] == 0
    assert not flow.deliveries.exists()


def test_reasons_are_set_at_insert_and_only_waiting_ones_are_queued(
    store, buyer, purposes, campaigns_tasks_sent, django_capture_on_commit_callbacks
):
    flow = switch_on("abandoned_cart")
    no_consent = CustomerFactory()
    objector = CustomerFactory(marketing_objection_at=T0)
    grant(objector, purposes)
    suppressed = CustomerFactory()
    grant(suppressed, purposes)
    suppression_add(email=suppressed.email, reason="bounce")
    for customer in (no_consent, objector, suppressed):
        cart(store, customer, at=T0 + HOUR)

    with django_capture_on_commit_callbacks(execute=True):
        flows_run(now=T0 + DAY)
    reasons = dict(flow.deliveries.values_list("customer_id", "reason"))
    assert reasons == {
        no_consent.pk: "no_consent",
        objector.pk: "objected",
        suppressed.pk: "suppressed",
    }
    assert set(flow.deliveries.values_list("status", flat=True)) == {"skipped"}
    assert SEND not in [name for name, *_ in campaigns_tasks_sent]

    cart(store, buyer, at=T0 + DAY)
    with django_capture_on_commit_callbacks(execute=True):
        flows_run(now=T0 + 2 * DAY)
    assert (SEND, (flow.pk,), {}) in campaigns_tasks_sent


def test_an_sms_flow_needs_a_phone(store, purposes):
    flow = switch_on("abandoned_cart", template=SmsTemplateFactory())
    assert flow.purpose.code == "sms_marketing"
    with_phone = CustomerFactory()
    no_phone = CustomerFactory(phone="")
    for customer in (with_phone, no_phone):
        grant(customer, purposes, "sms_marketing")
        cart(store, customer, at=T0 + HOUR)

    flows_run(now=T0 + DAY)
    reasons = dict(flow.deliveries.values_list("customer_id", "reason"))
    assert reasons == {with_phone.pk: "", no_phone.pk: "no_address"}
    assert set(flow.deliveries.values_list("channel", flat=True)) == {"sms"}


def test_switching_on_does_not_mail_the_history(store, buyer, purposes):
    cart(store, buyer, at=timezone.now() - 5 * HOUR)
    flows_ensure()
    flow = flow_update(
        flow=Flow.objects.get(kind="abandoned_cart"),
        actor=None,
        is_active=True,
        template=EmailTemplateFactory(),
    )
    assert flows_run(now=timezone.now() + 30 * DAY)["abandoned_cart"] == 0

    fresh = cart(store, buyer, at=timezone.now() + HOUR)
    assert flows_run(now=timezone.now() + 6 * HOUR)["abandoned_cart"] == 1
    assert triggers(flow) == [f"cart:{fresh.pk}"]


def test_a_flow_that_is_off_or_lost_its_channel_does_nothing(store, buyer, purposes):
    flow = switch_on("abandoned_cart")
    cart(store, buyer, at=T0 + HOUR)
    # The template turned into an SMS one after the flow was set up.
    type(flow.template).objects.filter(pk=flow.template_id).update(
        channel="sms", text="Wróć do koszyka"
    )
    assert flows_run(now=T0 + DAY)["abandoned_cart"] == 0
    flow_update(flow=flow, actor=None, is_active=False)
    assert flows_run(now=T0 + DAY) == dict.fromkeys(FLOW_DEFAULTS, 0)


def test_triggers_due_long_ago_are_stale(store, buyer, purposes):
    switch_on("abandoned_cart")
    cart(store, buyer, at=T0 + HOUR)
    assert flows_run(now=T0 + 31 * DAY + 5 * HOUR)["abandoned_cart"] == 0
    assert flows_run(now=T0 + 30 * DAY + 5 * HOUR)["abandoned_cart"] == 1


# --- Replenishment ----------------------------------------------------------------


def bought(customer, store, product, *, at, quantity="1", status=Order.Status.PAID):
    order = OrderFactory(customer=customer, store=store, placed_at=at, status=status)
    return OrderLineFactory(order=order, product=product, quantity=Decimal(quantity))


def test_replenishment_scales_with_quantity_before_the_product_runs_out(
    store, purposes
):
    flow = switch_on("replenishment")
    food = ProductFactory(store=store, replenishment_days=30)
    one, two = CustomerFactory(), CustomerFactory()
    line_one = bought(one, store, food, at=T0 - 20 * DAY)
    line_two = bought(two, store, food, at=T0 - 20 * DAY, quantity="2")
    # One pack runs out at T0 + 10 days, two packs at T0 + 40 days; 3 days before.
    due_one = T0 + 7 * DAY
    due_two = T0 + 37 * DAY

    assert flows_run(now=due_one - HOUR)["replenishment"] == 0
    assert flows_run(now=due_one)["replenishment"] == 1
    assert flows_run(now=due_two - HOUR)["replenishment"] == 0
    assert flows_run(now=due_two)["replenishment"] == 1
    assert flows_run(now=due_two + DAY)["replenishment"] == 0
    assert triggers(flow) == sorted([f"line:{line_one.pk}", f"line:{line_two.pk}"])
    assert dict(flow.deliveries.values_list("trigger", "customer_id")) == {
        f"line:{line_one.pk}": one.pk,
        f"line:{line_two.pk}": two.pk,
    }


def test_replenishment_not_after_a_rebuy_nor_for_sensitive_or_unpaid(store, purposes):
    flow = switch_on("replenishment", delay_hours=0)
    food = ProductFactory(store=store, replenishment_days=30)
    pills = ProductFactory(store=store, replenishment_days=30, is_sensitive=True)
    intimate = ProductFactory(
        store=store,
        replenishment_days=30,
        category=CategoryFactory(store=store, is_sensitive=True),
    )
    no_days = ProductFactory(store=store)
    anna, ewa = CustomerFactory(), CustomerFactory()
    start = T0 - 25 * DAY
    bought(anna, store, food, at=start)
    again = bought(anna, store, food, at=start + 10 * DAY)
    bought(ewa, store, food, at=start, status=Order.Status.CANCELLED)
    for product in (pills, intimate, no_days):
        bought(ewa, store, product, at=start)

    assert flows_run(now=start + 30 * DAY)["replenishment"] == 0
    assert flows_run(now=start + 40 * DAY)["replenishment"] == 1
    assert triggers(flow) == [f"line:{again.pk}"]


def test_replenishment_counts_from_the_due_moment(store, purposes):
    flow = switch_on("replenishment")
    food = ProductFactory(store=store, replenishment_days=10)
    customer = CustomerFactory()
    # Bought long before the flow was on, due after: a reminder.
    line = bought(customer, store, food, at=T0 - 60 * DAY, quantity="7")
    # Due before the flow was switched on: history.
    bought(CustomerFactory(), store, food, at=T0 - 20 * DAY)

    assert flows_run(now=T0 + 7 * DAY)["replenishment"] == 1
    assert triggers(flow) == [f"line:{line.pk}"]


# --- Win-back ---------------------------------------------------------------------


def scored(customer, segment):
    return CustomerMetricsFactory(
        customer=customer,
        recency_score=2,
        frequency_score=3,
        monetary_score=3,
        rfm_segment=segment,
    )


def moved(customer, to, *, at, source="loyal"):
    return RfmSegmentMove.objects.create(
        customer=customer, from_segment=source, to_segment=to, moved_at=at
    )


def test_win_back_only_while_still_slipping_away(purposes):
    flow = switch_on("win_back")
    stays, recovered, drifts = CustomerFactory(), CustomerFactory(), CustomerFactory()
    returns = CustomerFactory()
    scored(stays, "at_risk")
    scored(recovered, "loyal")
    scored(drifts, "cant_lose_them")
    scored(returns, "at_risk")
    move = moved(stays, "at_risk", at=T0 + HOUR)
    moved(recovered, "at_risk", at=T0 + HOUR)
    moved(recovered, "loyal", at=T0 + 2 * HOUR, source="at_risk")
    into = moved(drifts, "at_risk", at=T0 + HOUR)
    moved(drifts, "cant_lose_them", at=T0 + 3 * HOUR, source="at_risk")
    # In, out and in again before the flow ran: the last entry counts, once.
    moved(returns, "at_risk", at=T0 + HOUR)
    moved(returns, "loyal", at=T0 + 2 * HOUR, source="at_risk")
    back = moved(returns, "at_risk", at=T0 + 3 * HOUR)

    assert flows_run(now=T0 + 25 * HOUR - dt.timedelta(seconds=1))["win_back"] == 0
    assert flows_run(now=T0 + 2 * DAY)["win_back"] == 3
    # A slide from at risk to can't lose them is not a second win-back.
    assert triggers(flow) == sorted(
        [f"move:{move.pk}", f"move:{into.pk}", f"move:{back.pk}"]
    )


def test_win_back_fires_again_after_coming_back_and_slipping_again(purposes):
    flow = switch_on("win_back")
    customer = CustomerFactory()
    metrics = scored(customer, "at_risk")
    first = moved(customer, "at_risk", at=T0 + HOUR)
    flows_run(now=T0 + 2 * DAY)
    moved(customer, "champions", at=T0 + 10 * DAY, source="at_risk")
    second = moved(customer, "at_risk", at=T0 + 40 * DAY, source="champions")
    metrics.rfm_segment = "at_risk"
    metrics.save()

    assert flows_run(now=T0 + 42 * DAY)["win_back"] == 1
    assert triggers(flow) == sorted([f"move:{first.pk}", f"move:{second.pk}"])


# --- Review request ---------------------------------------------------------------


def test_review_request_waits_for_an_open_complaint_to_be_resolved(
    store, buyer, purposes
):
    flow = switch_on("review_request")
    order = OrderFactory(
        customer=buyer,
        store=store,
        status=Order.Status.DELIVERED,
        placed_at=T0 - 2 * DAY,
        delivered_at=T0 + HOUR,
    )
    OrderFactory(  # delivered but not marked so: no request
        customer=CustomerFactory(),
        store=store,
        status=Order.Status.SHIPPED,
        placed_at=T0,
        delivered_at=T0 + HOUR,
    )
    complaint = InteractionFactory(customer=buyer, complaint=True)
    due = T0 + HOUR + 168 * HOUR

    assert flows_run(now=due)["review_request"] == 0
    interaction_set_status(
        interaction=complaint, status="waiting", actor=None, note="Czekamy na zdjęcie"
    )
    assert flows_run(now=due + HOUR)["review_request"] == 0
    interaction_set_status(interaction=complaint, status="resolved", actor=None)
    assert flows_run(now=due + 2 * HOUR)["review_request"] == 1
    assert flows_run(now=due + 3 * HOUR)["review_request"] == 0
    assert triggers(flow) == [f"order:{order.pk}"]


# --- Welcome ----------------------------------------------------------------------


def test_welcome_after_the_double_opt_in_is_confirmed(store, purposes):
    flow = switch_on("welcome", at=timezone.now() - HOUR)
    customer = CustomerFactory()
    signup = double_opt_in_start(
        customer=customer,
        purpose="email_marketing",
        store=store,
        api_key=None,
        language="pl",
        ip_address="192.0.2.1",
        user_agent="test",
        evidence={"form": "stopka"},
    )
    assert flows_run()["welcome"] == 0

    double_opt_in_confirm(
        token=double_opt_in_token(signup), ip_address="192.0.2.1", user_agent="test"
    )
    assert flows_run()["welcome"] == 1
    assert flows_run()["welcome"] == 0
    (delivery,) = flow.deliveries.all()
    assert (delivery.trigger, delivery.customer, delivery.status) == (
        f"doi:{signup.pk}",
        customer,
        "pending",
    )


# --- End to end -------------------------------------------------------------------


def test_abandoned_cart_reminder_reaches_the_customer_once(
    store, buyer, purposes, smtp_sink, campaigns_tasks_sent
):
    flow = switch_on(
        "abandoned_cart",
        at=timezone.now() - DAY,
        template=EmailTemplateFactory(subject="{{ first_name }}, Twój koszyk czeka"),
    )
    cart(store, buyer, at=timezone.now() - 5 * HOUR)
    cart(store, buyer, at=timezone.now() - HOUR)  # too fresh yet

    for _ in range(2):
        assert flows_run()["abandoned_cart"] in (0, 1)
        assert flow_send_task(flow.pk)["stopped"] == "done"

    assert smtp_sink.received_by() == {buyer.email: 1}
    (message,) = smtp_sink.messages
    assert message["Subject"] == "Zofia, Twój koszyk czeka"
    (delivery,) = flow.deliveries.all()
    assert delivery.status == "sent"
    assert message["Message-ID"] == delivery.message_id
