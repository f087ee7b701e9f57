"""Demo campaigns for ``seed_demo``; called by ``customers.demo.demo_seed``.

Runs after the segments app's hook (INSTALLED_APPS order), on its segments: five
Polish templates, a newsletter sent three weeks ago to the repeat buyers, a
win-back campaign in draft, and the five flows with the abandoned cart and the
welcome switched on.

Everything with rules goes through the services: the templates through
``template_save``, the campaigns through ``campaign_create``, the newsletter's
audience through ``campaign_transition`` and ``campaign_prepare`` (so who was left
out, and why, is what the product would decide), the flows through ``flow_update``.
What only time would make, the sending, is then written set-based: the waiting
deliveries marked sent over an hour, opens and clicks for a realistic share of the
recipients whose tracking consent lets us see them, one coupon per recipient, and
the campaign's times moved back to the day it went out.

Idempotent: templates and campaigns are found by name and flows already set up
are left alone, so seeding again adds customers and nothing here twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from campaigns.coupons import CODE_ALPHABET, CODE_LENGTH
from campaigns.flows import flow_update, flows_ensure
from campaigns.models import (
    Campaign,
    CampaignEvent,
    Channel,
    Coupon,
    Delivery,
    Flow,
    MessageTemplate,
)
from campaigns.rendering import template_links
from campaigns.services import (
    campaign_create,
    campaign_prepare,
    campaign_transition,
    template_save,
)
from consents.models import ConsentPurpose
from customers.demo import DemoRun, copy_model
from segments.models import Segment

SHOP = "https://sklep.kartoteka.pl"
ZOO = "https://zoo.kartoteka.pl"
FOOTER = (
    '<p style="font-size:12px;color:#6b7280">Otrzymujesz tę wiadomość, bo masz '
    "włączoną zgodę na newsletter {{ shop_name }}. "
    '<a href="{{ preferences_url }}">Ustawienia zgód</a> · '
    '<a href="{{ unsubscribe_url }}">Wypisz się</a></p>'
)

NEWSLETTER = "Newsletter: nowości i rabat dla stałych klientów"
WIN_BACK = "Tęsknimy za Tobą (win-back)"
CART = "Porzucony koszyk: przypomnienie"
WELCOME = "Powitanie po zapisie na newsletter"
SMS = "SMS: weekendowa wyprzedaż w Zoo"

# name: (channel, subject, html or SMS text)
TEMPLATES: dict[str, tuple[str, str, str]] = {
    NEWSLETTER: (
        Channel.EMAIL,
        "{{ first_name }}, nowości tygodnia i rabat tylko dla Ciebie",
        "<h1>Nowości w {{ shop_name }}</h1>"
        "<p>Dzień dobry {{ first_name }},</p>"
        "<p>w tym tygodniu dotarło do nas sporo nowości. Wybraliśmy kilka "
        "produktów, które mogą Ci się spodobać:</p>"
        "<p>{{ recommendations }}</p>"
        "<p>Dla stałych klientów mamy rabat 10%: wpisz w koszyku kod "
        "<strong>{{ coupon }}</strong> (ważny do {{ coupon_valid_until }}).</p>"
        f'<p><a href="{SHOP}/nowosci">Zobacz wszystkie nowości</a> · '
        f'<a href="{ZOO}/promocje">Promocje w Zoo</a></p>' + FOOTER,
    ),
    WIN_BACK: (
        Channel.EMAIL,
        "{{ first_name }}, tęsknimy za Tobą!",
        "<p>Cześć {{ first_name }},</p>"
        "<p>dawno nie było Cię w {{ shop_name }}, a przez ten czas sporo się "
        "zmieniło: nowe marki, szybsza dostawa i darmowy zwrot do 30 dni.</p>"
        "<p>Na powrót mamy dla Ciebie 15% rabatu z kodem "
        "<strong>{{ coupon }}</strong>, ważnym do {{ coupon_valid_until }}.</p>"
        "<p>{{ recommendations }}</p>"
        f'<p><a href="{SHOP}/">Wracam na zakupy</a></p>' + FOOTER,
    ),
    CART: (
        Channel.EMAIL,
        "{{ first_name }}, Twój koszyk na Ciebie czeka",
        "<p>Cześć {{ first_name }},</p>"
        "<p>w Twoim koszyku wciąż czekają produkty. Zakupy dokończysz w minutę, "
        "a przy zamówieniu od 149 zł dostawa jest gratis.</p>"
        f'<p><a href="{SHOP}/koszyk">Wróć do koszyka</a></p>'
        "<p>Może zainteresuje Cię też:</p>"
        "<p>{{ recommendations }}</p>" + FOOTER,
    ),
    WELCOME: (
        Channel.EMAIL,
        "Witamy w {{ shop_name }}, {{ first_name }}!",
        "<p>Cześć {{ first_name }},</p>"
        "<p>dziękujemy za potwierdzenie zapisu. Raz w tygodniu napiszemy o "
        "nowościach i promocjach, bez zasypywania skrzynki.</p>"
        f'<p><a href="{SHOP}/">Odwiedź sklep</a> · <a href="{ZOO}/">Kartoteka Zoo</a>'
        "</p>" + FOOTER,
    ),
    SMS: (
        Channel.SMS,
        "",
        "{{ shop_name }}: -20% na karmę i żwirek do niedzieli, kod ZOO20. "
        "Rezygnacja: {{ unsubscribe_url }}",
    ),
}

# The sent newsletter: to which demo segment, when, with which coupon.
SENT_SEGMENT = "Stali klienci"
SENT_DAYS_AGO = 21
SENT_HOUR = 10  # local time
SEND_MINUTES = 60
COUPON_PREFIX = "NOWOSCI"
COUPON_DAYS = 14
# Of the recipients whose opens we may track: who opened, who clicked (a share of
# all of them, every clicker an opener).
OPEN_SHARE = 0.35
CLICK_SHARE = 0.05
# Openers who opened the message again later.
REOPEN_SHARE = 0.3

DRAFT = "Powrót klientów: 15% rabatu"
DRAFT_SEGMENT = "Do odzyskania"

# Flow kind: the template it sends, switched on.
FLOWS_ON = {Flow.Kind.ABANDONED_CART: CART, Flow.Kind.WELCOME: WELCOME}


def demo_seed_app(run: DemoRun) -> None:
    """Seed templates, a sent and a draft campaign, and switch on two flows."""
    actor = get_user_model().objects.filter(username="marketing").first()
    templates = _templates(actor)
    run.counts["message_templates"] = len(templates)
    sent = _sent_campaign(run, templates[NEWSLETTER], actor)
    if sent is not None:
        run.log(f"Demo newsletter sent to {sent:,} customers")
    _draft_campaign(templates[WIN_BACK], actor)
    _flows(templates, actor)
    run.counts["campaigns"] = Campaign.objects.count()
    run.tables += ["campaigns_delivery", "campaigns_deliveryevent", "campaigns_coupon"]
    run.log("Demo campaigns and flows set up")


def _templates(actor: Any) -> dict[str, MessageTemplate]:
    existing: dict[str, MessageTemplate] = {}
    for template in MessageTemplate.objects.filter(name__in=TEMPLATES).order_by("pk"):
        existing.setdefault(template.name, template)
    templates = {}
    for name, (channel, subject, body) in TEMPLATES.items():
        templates[name] = existing.get(name) or template_save(
            actor=actor,
            name=name,
            channel=channel,
            subject=subject,
            html=body if channel == Channel.EMAIL else "",
            text=body if channel == Channel.SMS else "",
        )
    return templates


def _segment(name: str) -> Segment | None:
    # Seeding again makes the segments again: the first ones are the campaigns'.
    return Segment.objects.filter(name=name, is_active=True).order_by("pk").first()


def _draft_campaign(template: MessageTemplate, actor: Any) -> None:
    segment = _segment(DRAFT_SEGMENT)
    if segment is None or Campaign.objects.filter(name=DRAFT).exists():
        return
    campaign_create(
        actor=actor,
        name=DRAFT,
        template=template,
        segment=segment,
        coupon_prefix="WRACAJ",
        coupon_validity_days=30,
    )


def _sent_campaign(run: DemoRun, template: MessageTemplate, actor: Any) -> int | None:
    """The newsletter, sent three weeks ago; returns how many it reached."""
    segment = _segment(SENT_SEGMENT)
    if segment is None or Campaign.objects.filter(name=NEWSLETTER).exists():
        return None
    zone = ZoneInfo(settings.TIME_ZONE)
    day = timezone.localdate(timezone.now(), zone) - dt.timedelta(days=SENT_DAYS_AGO)
    start = dt.datetime.combine(day, dt.time(SENT_HOUR), tzinfo=zone)
    campaign = campaign_create(
        actor=actor,
        name=NEWSLETTER,
        template=template,
        segment=segment,
        coupon_prefix=COUPON_PREFIX,
        coupon_validity_days=COUPON_DAYS,
    )
    campaign_transition(campaign=campaign, status=Campaign.Status.SENDING, actor=actor)
    campaign_prepare(campaign=campaign)
    deliveries = Delivery.objects.filter(campaign=campaign)
    # Nobody is sent a message before they became a customer.
    deliveries.filter(customer__created_at__gt=start).delete()
    params = {
        "campaign": campaign.pk,
        "start": start,
        "minutes": SEND_MINUTES,
        "domain": "kartoteka.pl",
        "tracking": _tracking_purpose(),
        "open": OPEN_SHARE,
        "click": CLICK_SHARE,
        "reopen": REOPEN_SHARE,
        "urls": template_links(template.html) or [SHOP],
    }
    with connection.cursor() as cursor:
        # The same data for the same --seed: Postgres's random() from the run's.
        cursor.execute("SELECT setseed(%s)", [run.rng.random() * 2 - 1])
        cursor.execute(_SEND_SQL, params)
        sent = cursor.rowcount
        cursor.execute(_OPENS_SQL, params)
        cursor.execute(_EVENTS_SQL, params)
    _coupons(run, campaign)
    campaign_transition(campaign=campaign, status=Campaign.Status.SENT, actor=None)
    _backdate(campaign, start=start, created=start - dt.timedelta(days=2))
    return sent


def _tracking_purpose() -> int:
    tracking = ConsentPurpose.objects.filter(code=ConsentPurpose.Code.TRACKING).first()
    return tracking.pk if tracking else 0


# What the sender would have done over the hour: the waiting rows sent, each at
# its moment, with its message id.
_SEND_SQL = """
UPDATE campaigns_delivery d
SET status = 'sent', attempts = 1,
    sent_at = %(start)s + random() * %(minutes)s * interval '1 minute',
    message_id = '<kartoteka.' || d.id || '@' || %(domain)s || '>'
WHERE d.campaign_id = %(campaign)s AND d.status = 'pending'
"""

# Opens come mostly in the first hours, some days later (the cube of a uniform
# draw); a click follows its open within ten minutes. Only for recipients who
# granted tracking: the sender tracks nobody else.
_OPENS_SQL = """
WITH tracked AS MATERIALIZED (
    SELECT d.id, d.sent_at, random() AS roll,
        interval '2 minutes' + power(random(), 3) * interval '4 days' AS wait,
        (20 + random() * 580) * interval '1 second' AS reading
    FROM campaigns_delivery d
    WHERE d.campaign_id = %(campaign)s AND d.status = 'sent'
        AND EXISTS (
            SELECT 1 FROM consents_consentstate s WHERE s.customer_id = d.customer_id
            AND s.purpose_id = %(tracking)s AND s.granted
        )
)
UPDATE campaigns_delivery d
SET opened_at = t.sent_at + t.wait,
    clicked_at = CASE WHEN t.roll < %(click)s
        THEN t.sent_at + t.wait + t.reading END
FROM tracked t
WHERE d.id = t.id AND t.roll < %(open)s
"""

# The events behind the first open and click, a later open for some, and which
# of the message's links each click went to.
_EVENTS_SQL = """
INSERT INTO campaigns_deliveryevent (delivery_id, kind, url, at)
SELECT d.id, 'open', '', d.opened_at
FROM campaigns_delivery d
WHERE d.campaign_id = %(campaign)s AND d.opened_at IS NOT NULL
UNION ALL
SELECT d.id, 'open', '', d.opened_at + interval '1 hour' + random() * interval '3 days'
FROM campaigns_delivery d
WHERE d.campaign_id = %(campaign)s AND d.opened_at IS NOT NULL
    AND random() < %(reopen)s
UNION ALL
SELECT d.id, 'click',
    (%(urls)s::text[])[1 + floor(random() * cardinality(%(urls)s::text[]))::int],
    d.clicked_at
FROM campaigns_delivery d
WHERE d.campaign_id = %(campaign)s AND d.clicked_at IS NOT NULL
"""


def _coupons(run: DemoRun, campaign: Campaign) -> None:
    """One code per recipient, valid from the moment their message went out."""
    rows = Delivery.objects.filter(
        campaign=campaign, status=Delivery.Status.SENT
    ).values_list("pk", "customer_id", "sent_at")
    taken = set(
        Coupon.objects.filter(
            code__startswith=f"{campaign.coupon_prefix}-"
        ).values_list("code", flat=True)
    )
    validity = dt.timedelta(days=campaign.coupon_validity_days)
    coupons = []
    for delivery_id, customer_id, sent_at in rows.order_by("pk").iterator():
        code = _code(run, campaign.coupon_prefix)
        while code in taken:
            code = _code(run, campaign.coupon_prefix)
        taken.add(code)
        coupons.append((code, customer_id, delivery_id, sent_at, sent_at + validity))
    copy_model(
        Coupon,
        ("code", "customer_id", "delivery_id", "valid_from", "valid_until"),
        coupons,
    )


def _code(run: DemoRun, prefix: str) -> str:
    suffix = "".join(run.rng.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{prefix}-{suffix}"


def _backdate(campaign: Campaign, *, start: dt.datetime, created: dt.datetime) -> None:
    """Move the campaign, its rows and its audit trail to when it went out.

    The services stamp everything "now"; the demo's newsletter went out weeks ago.
    """
    finished = start + dt.timedelta(minutes=SEND_MINUTES + 2)
    Campaign.objects.filter(pk=campaign.pk).update(
        created_at=created,
        updated_at=finished,
        started_at=start,
        prepared_at=start,
        heartbeat_at=finished,
        finished_at=finished,
        audience_size=Delivery.objects.filter(campaign=campaign).count(),
    )
    Delivery.objects.filter(campaign=campaign).update(created_at=start)
    events = CampaignEvent.objects.filter(campaign=campaign)
    events.filter(kind=CampaignEvent.Kind.CREATED).update(at=created)
    events.filter(new_status=Campaign.Status.SENDING).update(at=start)
    events.filter(new_status=Campaign.Status.SENT).update(at=finished)


def _flows(templates: dict[str, MessageTemplate], actor: Any) -> None:
    """The five flows; the abandoned cart and welcome on, unless set up already."""
    flows_ensure()
    for kind, name in FLOWS_ON.items():
        flow = Flow.objects.filter(kind=kind).first()
        if flow is None or flow.template_id is not None or flow.is_active:
            continue
        flow_update(flow=flow, actor=actor, is_active=True, template=templates[name])
