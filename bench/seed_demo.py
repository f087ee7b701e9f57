"""seed_demo: customers per second when seeding 100,000 customers with their orders.

Reference: the goal of 100,000 customers in two minutes (833 customers/s) on a
two-core machine. ``BENCH_SEED_DEMO_CUSTOMERS`` overrides the count for a quick run.
"""

from __future__ import annotations

import os
import sys
import time

from bench import _harness

NAME = "seed_demo"
CUSTOMERS = int(os.environ.get("BENCH_SEED_DEMO_CUSTOMERS", "100000"))
REFERENCE = 100_000 / 120
SEED = 20240101


def run() -> dict:
    from django.core.management import call_command

    from customers.models import Address, Customer, CustomerIdentity
    from orders.models import Order, OrderLine

    started = time.perf_counter()
    call_command("seed_demo", customers=CUSTOMERS, seed=SEED, stdout=sys.stdout)
    seconds = time.perf_counter() - started
    rows = {
        "customers": Customer.objects.count(),
        "addresses": Address.objects.count(),
        "identities": CustomerIdentity.objects.count(),
        "orders": Order.objects.count(),
        "order_lines": OrderLine.objects.count(),
    }
    return _harness.write_result(
        name=NAME,
        value=CUSTOMERS / seconds,
        unit="customers/s",
        reference=REFERENCE,
        conditions=_harness.conditions(rows=rows, seconds=round(seconds, 2), seed=SEED),
        summary=(
            f"{CUSTOMERS:,} customers, {rows['orders']:,} orders, "
            f"{rows['order_lines']:,} lines in {seconds:.1f} s"
        ),
    )
