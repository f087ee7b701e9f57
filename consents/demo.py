"""Demo consents: a realistic ledger for the seeded customers (see customers.demo).

About half the customers agreed to the newsletter when they signed up or ordered
(some through a double opt-in), fewer to SMS, a third to profiling; one in eight of
those later withdrew through an unsubscribe link or the preference centre. The rows
are copied in one COPY; the ledger's trigger derives the current state as they go.
"""

from __future__ import annotations

import hashlib
import json

from consents.models import ConsentEvent, ConsentPurpose, ConsentText
from customers.demo import DemoRun, as_datetime, copy_model

# purpose code: (share of customers granting it, sources with weights)
GRANTS = {
    "email_marketing": (0.52, (("checkout_form", 6), ("double_opt_in", 3))),
    "sms_marketing": (0.18, (("checkout_form", 1),)),
    "profiling": (0.34, (("checkout_form", 2), ("account_form", 1))),
    "tracking": (0.30, (("checkout_form", 1),)),
}
WITHDRAW_SHARE = 0.12
WITHDRAW_SOURCES = (("unsubscribe_link", 3), ("preference_centre", 1))
EVENT_FIELDS = (
    "customer_id",
    "purpose_id",
    "action",
    "text_id",
    "occurred_at",
    "recorded_at",
    "source",
    "store_id",
    "import_file_hash",
    "evidence",
    "evidence_hash",
    "ip_address",
    "user_agent",
)
USER_AGENTS = (
    "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0",
)


def demo_seed_app(run: DemoRun) -> None:
    """Seed the consent ledger of the run's customers."""
    purposes = {p.code: p for p in ConsentPurpose.objects.filter(code__in=GRANTS)}
    texts = {
        purpose.code: ConsentText.objects.filter(purpose=purpose, language="pl")
        .order_by("version")
        .first()
        for purpose in purposes.values()
    }
    rng = run.rng
    now_ts = run.calendar.now_ts
    stores = run.stores

    def pick(options):
        total = sum(weight for _value, weight in options)
        roll = rng.random() * total
        for value, weight in options:
            roll -= weight
            if roll <= 0:
                return value
        return options[-1][0]

    def rows():
        for customer in run.customers:
            store = stores[customer.store_codes[0]]
            ip = f"83.{rng.randrange(256)}.{rng.randrange(256)}.0"
            agent = rng.choice(USER_AGENTS)
            for code, (share, sources) in GRANTS.items():
                if code not in purposes or rng.random() >= share:
                    continue
                source = pick(sources)
                granted_ts = (
                    customer.first_order_ts
                    if source == "checkout_form" and customer.first_order_ts
                    else customer.created_ts
                )
                granted_ts = min(granted_ts + rng.randrange(5, 600), now_ts)
                evidence = json.dumps({"form": source, "demo": True}, sort_keys=True)
                yield (
                    customer.id,
                    purposes[code].pk,
                    ConsentEvent.Action.GRANT,
                    texts[code].pk,
                    as_datetime(granted_ts),
                    as_datetime(granted_ts),
                    source,
                    store.pk,
                    "",
                    evidence,
                    hashlib.sha256(evidence.encode()).hexdigest(),
                    ip,
                    agent,
                )
                if rng.random() < WITHDRAW_SHARE and granted_ts < now_ts - 86400:
                    withdrawn_ts = rng.uniform(granted_ts + 3600, now_ts)
                    yield (
                        customer.id,
                        purposes[code].pk,
                        ConsentEvent.Action.WITHDRAW,
                        None,
                        as_datetime(withdrawn_ts),
                        as_datetime(withdrawn_ts),
                        pick(WITHDRAW_SOURCES),
                        store.pk,
                        "",
                        "{}",
                        "",
                        None,
                        "",
                    )

    # Rows go in customer order; the ledger trigger keeps the state per row.
    run.counts["consent_events"] = copy_model(ConsentEvent, EVENT_FIELDS, rows())
    run.tables += ["consents_consentevent", "consents_consentstate"]
    run.log(f"Seeded {run.counts['consent_events']} consent events")
