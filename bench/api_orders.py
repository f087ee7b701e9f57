"""api_orders: order upserts per second through ``PUT /api/v1/orders/{external_id}/``.

A real server (gunicorn ``config.wsgi``, 2 workers, DEBUG off) on 127.0.0.1 takes
single orders of three lines each, with the customer given by external id and
email (a pool of customers, so most orders belong to a returning customer), from
client threads on keep-alive connections. Reference: the goal of 300 upserts/s.

``BENCH_API_ORDERS_REQUESTS`` (default 6000), ``BENCH_API_ORDERS_SECONDS`` (time
cap, default 60) and ``BENCH_API_ORDERS_CONCURRENCY`` (default 6) tune the run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random

from bench import _harness, _server

NAME = "api_orders"
REFERENCE = 300.0
REQUESTS = int(os.environ.get("BENCH_API_ORDERS_REQUESTS", "6000"))
TIME_CAP = float(os.environ.get("BENCH_API_ORDERS_SECONDS", "60"))
CONCURRENCY = int(os.environ.get("BENCH_API_ORDERS_CONCURRENCY", "6"))
WARMUP = 60
CUSTOMERS = 2000
PRODUCTS = 500
SEED = 20240101
STATUSES = ["new"] * 3 + ["paid"] * 6 + ["shipped"]


def _order(rng: random.Random, n: int) -> tuple[str, bytes]:
    customer = rng.randrange(CUSTOMERS)
    placed_at = dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC) + dt.timedelta(minutes=n)
    lines = []
    for sku in rng.sample(range(PRODUCTS), 3):
        lines.append(
            {
                "sku": f"SKU-{sku:05d}",
                "name": f"Produkt {sku}",
                "quantity": rng.randint(1, 3),
                "unit_price": f"{rng.randint(990, 49_990) / 100:.2f}",
            }
        )
    body = {
        "number": f"ZAM/{n:07d}",
        "placed_at": placed_at.isoformat(),
        "status": rng.choice(STATUSES),
        "currency": "PLN",
        "customer": {
            "external_id": f"C{customer:05d}",
            "email": f"klient{customer}@example.pl",
        },
        "lines": lines,
    }
    return f"O-{n:07d}", json.dumps(body).encode()


def run() -> dict:
    from customers.models import Customer, Store
    from customers.services import api_key_create
    from orders.models import Order, OrderLine

    store = Store.objects.create(code="bench", name="Sklep testowy")
    _key, raw_key = api_key_create(store=store, name="bench", scopes=["write"])
    rng = random.Random(SEED)
    warmup = [_order(rng, 9_000_000 + n) for n in range(WARMUP)]
    orders = [_order(rng, n) for n in range(REQUESTS)]
    headers = {"Authorization": f"Api-Key {raw_key}"}
    with _server.api_server() as server:
        _server.run_load(
            server,
            [("PUT", f"/api/v1/orders/{ext}/", body) for ext, body in warmup],
            headers=headers,
            concurrency=CONCURRENCY,
            expect=201,
            time_cap=TIME_CAP,
        )
        warm_orders = Order.objects.count()
        cpu_before = _server.cpu_snapshot(server)
        load = _server.run_load(
            server,
            [("PUT", f"/api/v1/orders/{ext}/", body) for ext, body in orders],
            headers=headers,
            concurrency=CONCURRENCY,
            expect=201,
            time_cap=TIME_CAP,
        )
        cpu = _server.cpu_per_request(
            cpu_before, _server.cpu_snapshot(server), load.requests
        )
    if load.bodies:
        print("  unexpected answers:", *[b[:300] for b in load.bodies], sep="\n    ")
    stored = Order.objects.count() - warm_orders
    succeeded = sum(n for status, n in load.statuses.items() if status in {200, 201})
    described = load.describe()
    return _harness.write_result(
        name=NAME,
        value=succeeded / load.seconds,
        unit="upserts/s",
        reference=REFERENCE,
        conditions=_harness.conditions(
            **server.describe(),
            client={
                "threads": CONCURRENCY,
                "keep_alive": True,
                "lines_per_order": 3,
                "requests_offered": REQUESTS,
                "time_cap_s": TIME_CAP,
            },
            load=described,
            cpu_ms_per_request=cpu,
            rows={
                "orders_stored": stored,
                "order_lines": OrderLine.objects.count(),
                "customers": Customer.objects.count(),
            },
            seed=SEED,
        ),
        summary=(
            f"{succeeded:,} upserts ({stored:,} new orders) in {load.seconds:.1f} s; "
            f"latency p50 {load.percentile(0.5):.0f} ms, "
            f"p95 {load.percentile(0.95):.0f} ms; statuses {described['statuses']}; "
            f"CPU ms per request {cpu}"
        ),
    )
