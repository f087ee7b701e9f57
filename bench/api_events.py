"""api_events: behaviour events per second through ``POST /api/v1/events/``.

A real server (gunicorn ``config.wsgi``, 2 workers, DEBUG off) on 127.0.0.1 takes
batches of 1,000 events from client threads on keep-alive connections. The mix:
two thirds anonymous visitors, a quarter known customers, the rest visitors who
log in (both ids), all with IPs, devices and a share of UTM tags and searches.
Reference: the goal of 20,000 events/s on a two-core machine.

``BENCH_API_EVENTS_BATCHES`` (default 400), ``BENCH_API_EVENTS_SECONDS`` (time
cap, default 60) and ``BENCH_API_EVENTS_CONCURRENCY`` (default 4) tune the run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random

from bench import _harness, _server

NAME = "api_events"
REFERENCE = 20_000.0
BATCH = 1000
BATCHES = int(os.environ.get("BENCH_API_EVENTS_BATCHES", "400"))
TIME_CAP = float(os.environ.get("BENCH_API_EVENTS_SECONDS", "60"))
CONCURRENCY = int(os.environ.get("BENCH_API_EVENTS_CONCURRENCY", "4"))
WARMUP_BATCHES = 8
CUSTOMERS = 1000
VISITORS = 30_000
SEED = 20240101

KINDS = ["page_view"] * 50 + ["product_view"] * 30 + ["search"] * 10
KINDS += ["add_to_cart"] * 7 + ["checkout_started"] * 3
DEVICES = [
    ("mobile", "Android", "Chrome"),
    ("mobile", "iOS", "Safari"),
    ("desktop", "Windows", "Chrome"),
    ("desktop", "Windows", "Edge"),
    ("desktop", "macOS", "Safari"),
    ("tablet", "iPadOS", "Safari"),
    ("desktop", "Linux", "Firefox"),
]
WORDS = ["kubek", "zielony", "koszulka", "buty", "plecak", "lampa", "rower", "kurtka"]
REFERRERS = [
    "https://www.google.com/",
    "https://www.facebook.com/",
    "https://allegro.pl/",
]


def _event(rng: random.Random, n: int, moment: dt.datetime) -> dict:
    visitor = rng.randrange(VISITORS)
    roll = rng.random()
    event: dict = {"external_id": f"ev-{n}"}
    if roll < 0.65:
        event["anonymous_id"] = f"v-{visitor:06d}"
    elif roll < 0.90:
        event["customer"] = f"C{rng.randrange(CUSTOMERS):05d}"
    else:
        # A visitor who logs in is always the same customer.
        event["anonymous_id"] = f"v-{visitor:06d}"
        event["customer"] = f"C{visitor % CUSTOMERS:05d}"
    kind = rng.choice(KINDS)
    sku = f"SKU-{rng.randrange(5000):05d}"
    device, os_name, browser = DEVICES[visitor % len(DEVICES)]
    event.update(
        kind=kind,
        occurred_at=moment.isoformat(),
        url=f"https://sklep.example.pl/p/{sku.lower()}?ref={n % 97}",
        device=device,
        os=os_name,
        browser=browser,
        ip=(
            f"83.{visitor % 256}.{visitor // 256 % 256}.{rng.randrange(1, 255)}"
            if visitor % 10
            else f"2a02:a311:{visitor:x}:1::{rng.randrange(1, 65535):x}"
        ),
    )
    if kind in {"product_view", "add_to_cart"}:
        event["product_sku"] = sku
    if kind == "search":
        event["keyword"] = " ".join(rng.sample(WORDS, 2))
    if rng.random() < 0.3:
        event["referrer"] = rng.choice(REFERRERS)
    if rng.random() < 0.2:
        event.update(utm_source="newsletter", utm_medium="email", utm_campaign="wiosna")
    return event


def _bodies(count: int, *, first: int, rng: random.Random) -> list[bytes]:
    start = dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)
    bodies = []
    for batch in range(count):
        events = [
            _event(
                rng,
                first + batch * BATCH + i,
                start + dt.timedelta(seconds=(batch * BATCH + i) // 10),
            )
            for i in range(BATCH)
        ]
        bodies.append(json.dumps({"events": events}).encode())
    return bodies


def run() -> dict:
    from customers.models import Customer, Event, Store, Visitor
    from customers.services import api_key_create, customer_upsert

    store = Store.objects.create(code="bench", name="Sklep testowy")
    _key, raw_key = api_key_create(store=store, name="bench", scopes=["write"])
    for n in range(CUSTOMERS):
        customer_upsert(
            store=store, external_id=f"C{n:05d}", email=f"klient{n}@example.pl"
        )
    rng = random.Random(SEED)
    warmup = _bodies(WARMUP_BATCHES, first=10_000_000, rng=rng)
    bodies = _bodies(BATCHES, first=0, rng=rng)
    headers = {"Authorization": f"Api-Key {raw_key}"}
    path = "/api/v1/events/"
    with _server.api_server() as server:
        _server.run_load(
            server,
            [("POST", path, body) for body in warmup],
            headers=headers,
            concurrency=CONCURRENCY,
            expect=202,
            time_cap=TIME_CAP,
        )
        warm_events = Event.objects.count()
        cpu_before = _server.cpu_snapshot(server)
        load = _server.run_load(
            server,
            [("POST", path, body) for body in bodies],
            headers=headers,
            concurrency=CONCURRENCY,
            expect=202,
            time_cap=TIME_CAP,
        )
        cpu = _server.cpu_per_request(
            cpu_before, _server.cpu_snapshot(server), load.requests
        )
    accepted_requests = load.statuses.get(202, 0)
    stored = Event.objects.count() - warm_events
    if load.bodies:
        print("  unexpected answers:", *[b[:300] for b in load.bodies], sep="\n    ")
    value = stored / load.seconds
    described = load.describe()
    return _harness.write_result(
        name=NAME,
        value=value,
        unit="events/s",
        reference=REFERENCE,
        conditions=_harness.conditions(
            **server.describe(),
            client={
                "threads": CONCURRENCY,
                "keep_alive": True,
                "batch_size": BATCH,
                "batches_offered": BATCHES,
                "time_cap_s": TIME_CAP,
            },
            load=described,
            cpu_ms_per_batch=cpu,
            rows={
                "events_stored": stored,
                "events_accepted_requests": accepted_requests * BATCH,
                "visitors": Visitor.objects.count(),
                "customers": Customer.objects.count(),
            },
            seed=SEED,
        ),
        summary=(
            f"{stored:,} events in {accepted_requests:,} batches of {BATCH:,} in "
            f"{load.seconds:.1f} s; latency p50 {load.percentile(0.5):.0f} ms, "
            f"p95 {load.percentile(0.95):.0f} ms; statuses {described['statuses']}; "
            f"CPU ms per batch {cpu}"
        ),
    )
