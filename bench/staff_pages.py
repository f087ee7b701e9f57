"""staff_pages: staff pages under concurrent signed-in users, over real HTTP.

The data is support_search's (``bench/support_search.py``: Polish names with their
diacritics, emails, phones, a default address, an identity, orders for about a
quarter of the customers), ``BENCH_STAFF_PAGES_CUSTOMERS`` customers (default
1,000,000), with a history added in SQL so the customer page shows something: one
or two lines per order, support interactions for one customer in five (a few
complaints among them) and consent events (the newsletter granted by six in ten,
one in ten of them withdrawn later, tracking granted by three in ten).

The server is gunicorn with production settings (DEBUG off) on 127.0.0.1
(``bench/_server.py``): ``BENCH_STAFF_PAGES_WORKERS`` gthread workers (default 3)
of ``BENCH_GUNICORN_THREADS`` threads (default 4). The machine has two cores,
shared with PostgreSQL and the load client: rendering holds the GIL, so threads
only overlap database waits and three processes keep both cores busy while one
waits; more would add memory and context switches, not throughput.

Each client connection is one Support user with a session of their own, made in
the database as sign-in and django-otp's verification make it (the second factor
is required on every staff page). The mix, for customers drawn at random (seven in
ten of the page views among customers who ordered):

- ``customer_page``: ``GET /customers/<id>/``, the whole page (orders, consents,
  timeline, quick log) and its access-log row;
- ``live_search``: the header search box's htmx request (``customers:search``) for
  a whole email, a phone as people type it, a first and last name, the start of a
  surname, an order number with and without "#", and queries that match nobody
  (an unknown email, order number or name);
- ``list_search``: Enter in the search box, ``GET /customers/?q=``: an email or an
  order number goes straight to the customer or the order (the redirect is
  followed, as a browser does, and timed as one request), a name lists customers,
  an unknown email lists none.

Every answer is checked: status 200 at the end, and the page is the one asked for
(the customer's email on their page, the customer's link among the live results,
the order's number on its page, "no customer" for a query that matches nobody).
Anything else is an error; more than ``BENCH_STAFF_PAGES_MAX_ERROR_SHARE`` (default
0.5 %) of errors fails the benchmark. A warm-up (``BENCH_STAFF_PAGES_WARMUP``
requests, default 300) comes first, then, for each concurrency in
``BENCH_STAFF_PAGES_CONCURRENCY`` (default "1,8,32": one user alone
shows the pages' own time, the others the queueing), ``BENCH_STAFF_PAGES_REQUESTS``
requests (default 2,000; at most ``BENCH_STAFF_PAGES_SECONDS``, default 180 s).
The figure is the customer page's p95 at the highest concurrency, in ms.
"""

from __future__ import annotations

import html
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench import _harness, _server, _sql, support_search

NAME = "staff_pages"
CUSTOMERS = int(os.environ.get("BENCH_STAFF_PAGES_CUSTOMERS", "1000000"))
CONCURRENCY = [
    int(level)
    for level in os.environ.get("BENCH_STAFF_PAGES_CONCURRENCY", "1,8,32").split(",")
]
REQUESTS = int(os.environ.get("BENCH_STAFF_PAGES_REQUESTS", "2000"))
WARMUP = int(os.environ.get("BENCH_STAFF_PAGES_WARMUP", "300"))
TIME_CAP_S = float(os.environ.get("BENCH_STAFF_PAGES_SECONDS", "180"))
WORKERS = int(os.environ.get("BENCH_STAFF_PAGES_WORKERS", "3"))
MAX_ERROR_SHARE = float(os.environ.get("BENCH_STAFF_PAGES_MAX_ERROR_SHARE", "0.005"))
SEED = 20240107
# Out of 100 requests: what support staff do most is open customers and type.
MIX = {"customer_page": 45, "live_search": 40, "list_search": 15}
KINDS = tuple(MIX)
BUYER_PAGE_SHARE = 0.7
POOL = 4000  # customers drawn for each role (pages, searches)


@dataclass
class Person:
    pk: int
    first_name: str
    last_name: str
    email: str
    phone: str


@dataclass
class Planned:
    """One request of the mix and how to tell its answer is the right page."""

    kind: str
    query_type: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    must: tuple[str, ...] = ()  # each must be in the body
    any_of: tuple[str, ...] = ()  # one of them must be in the body
    must_not: tuple[str, ...] = ()

    def accepts(self, body: bytes) -> bool:
        text = body.decode("utf-8", errors="replace")
        return (
            all(part in text for part in self.must)
            and (not self.any_of or any(part in text for part in self.any_of))
            and not any(part in text for part in self.must_not)
        )


def _history(store_id: int) -> dict[str, int]:
    """Order lines, interactions and consent events for the customer page."""
    from django.db import connection, transaction

    from consents.models import ConsentEvent, ConsentPurpose
    from consents.services import consent_text_current
    from customers.models import Customer, Interaction
    from orders.models import Order, OrderLine

    rows = {}
    customers = f"{Customer._meta.db_table} c"
    with transaction.atomic(), connection.cursor() as cursor:
        rows["order_lines"] = _sql.insert(
            cursor,
            OrderLine,
            {
                "order_id": "o.id",
                "position": "pos",
                "sku": "'SKU-' || (1 + mod(o.id * 7 + pos, 1500))",
                "name": "'Produkt ' || (1 + mod(o.id * 7 + pos, 1500))",
                "quantity": "(1 + mod(o.id + pos, 3))::numeric",
                "unit_price": "round(o.total / (1 + mod(o.id, 2)), 2)",
                "total": "round(o.total / (1 + mod(o.id, 2)), 2)"
                " * (1 + mod(o.id + pos, 3))",
            },
            f"{Order._meta.db_table} o"
            " CROSS JOIN LATERAL generate_series(1, 1 + mod(o.id, 2)) AS pos",
        )
        # One customer in five has contacted support, one to three times; one
        # contact in six is a complaint (with a status and a due date).
        complaint = f"({_sql.uniform('c.id * 3 + i', 21)} < 0.17)"
        kind = (
            f"CASE WHEN {complaint} THEN 'complaint' ELSE"
            f" {_sql.pick(['inquiry', 'conversation', 'note'], 'c.id * 3 + i', 22)}"
            " END"
        )
        rows["interactions"] = _sql.insert(
            cursor,
            Interaction,
            {
                "customer_id": "c.id",
                "store_id": str(store_id),
                "kind": kind,
                "channel": _sql.pick(["email", "phone", "chat"], "c.id + i", 23),
                "direction": "'inbound'",
                "subject": "'Pytanie o zamówienie ' || i",
                "body": "'Klient pyta o termin dostawy i możliwość zwrotu.'",
                "occurred_at": "now()"
                " - make_interval(hours => mod(c.id * 7 + i, 9000)::int)",
                "status": f"CASE WHEN {complaint} THEN"
                " (ARRAY['open', 'resolved'])[1 + mod(c.id, 2)] ELSE '' END",
                "due_at": f"CASE WHEN {complaint} THEN now() + interval '7 days' END",
                "rating_scale": "''",
                "external_id": "''",
            },
            f"{customers} CROSS JOIN LATERAL generate_series(1, 1 + mod(c.id, 3))"
            f" AS i WHERE {_sql.uniform('c.id', 20)} < 0.2",
        )
        rows["consent_events"] = 0
        for code, share, withdrawn in (
            ("email_marketing", 0.6, 0.1),
            ("tracking", 0.3, 0.0),
        ):
            purpose = ConsentPurpose.objects.get(code=code)
            text = consent_text_current(purpose=purpose, language="pl")
            granted = f"{_sql.uniform('c.id', 24)} < {share}"
            for action, when, where in (
                ("grant", "400", granted),
                ("withdraw", "30", f"{granted} AND mod(c.id, 10) < {withdrawn * 10}"),
            ):
                if action == "withdraw" and not withdrawn:
                    continue
                rows["consent_events"] += _sql.insert(
                    cursor,
                    ConsentEvent,
                    {
                        "customer_id": "c.id",
                        "purpose_id": str(purpose.pk),
                        "action": f"'{action}'",
                        "text_id": str(text.pk),
                        "occurred_at": f"now() - make_interval(days => {when})"
                        " + make_interval(secs => mod(c.id, 86400)::int)",
                        "source": "'checkout_form'"
                        if action == "grant"
                        else "'unsubscribe_link'",
                    },
                    f"{customers} WHERE {where}",
                )
    return rows


def _staff_sessions(count: int) -> list[str]:
    """``count`` Support users, each signed in (with the second factor): cookies.

    The session holds what Django's login and django-otp's login write; the
    sign-in pages are not driven from a script.
    """
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from customers.roles import SUPPORT

    support = Group.objects.get(name=SUPPORT)
    cookies = []
    for number in range(count):
        user = get_user_model().objects.create_user(
            username=f"bench-support-{number}", password=None, is_staff=True
        )
        user.groups.add(support)
        device, _created = TOTPDevice.objects.get_or_create(
            user=user, name="bench", defaults={"confirmed": True}
        )
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.create()
        cookies.append(f"sessionid={session.session_key}")
    return cookies


def _people(pks: list[int]) -> list[Person]:
    from customers.models import Customer

    found = Customer.objects.filter(pk__in=pks).values_list(
        "pk", "first_name", "last_name", "email", "phone"
    )
    by_pk = {row[0]: Person(*row) for row in found}
    return [by_pk[pk] for pk in pks if pk in by_pk]


def _draws(rng: random.Random) -> dict[str, list]:
    """Customers for the pages and searches, and orders for the order searches."""
    from django.db.models import Max, Min

    from customers.models import Customer
    from orders.models import Order

    low, high = Customer.objects.aggregate(low=Min("pk"), high=Max("pk")).values()
    first, last = Order.objects.aggregate(low=Min("pk"), high=Max("pk")).values()
    order_ids = [rng.randint(first, last) for _ in range(POOL * 2)]
    orders = list(
        Order.objects.filter(pk__in=order_ids, customer__isnull=False).values_list(
            "pk", "number", "customer_id"
        )
    )
    rng.shuffle(orders)
    buyers = [customer_id for _pk, _number, customer_id in orders]
    pages = [
        rng.choice(buyers)
        if rng.random() < BUYER_PAGE_SHARE
        else rng.randint(low, high)
        for _ in range(POOL)
    ]
    searched = [rng.randint(low, high) for _ in range(POOL)]
    return {
        "pages": _people(pages),
        "searched": _people(searched),
        "orders": orders,
    }


def _national(phone: str) -> str:
    """+48601234567 as people type it: 601 234 567."""
    digits = phone.removeprefix("+48")
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def _fold(text: str) -> str:
    """Polish letters without their marks, as people often type names."""
    return text.lower().translate(str.maketrans("ąćęłńóśźż", "acelnoszz"))


def _customer_page(person: Person, query_type: str = "page") -> Planned:
    return Planned(
        kind="customer_page",
        query_type=query_type,
        path=f"/customers/{person.pk}/",
        must=(html.escape(person.email), html.escape(person.last_name)),
    )


def _plan(rng: random.Random, draws: dict[str, list], count: int) -> list[Planned]:
    """``count`` requests of the mix, shuffled."""
    from urllib.parse import urlencode

    pages, searched, orders = draws["pages"], draws["searched"], draws["orders"]
    htmx = {"HX-Request": "true", "HX-Trigger": "global-search"}
    slow_or_results = ("searchresult__name", "searchresults__note")
    nothing = ("searchresults__empty", "searchresults__note")

    def live(query_type: str, query: str, **checks) -> Planned:
        return Planned(
            kind="live_search",
            query_type=query_type,
            path="/customers/search/?" + urlencode({"q": query}),
            headers=htmx,
            **checks,
        )

    def listed(query_type: str, query: str, **checks) -> Planned:
        return Planned(
            kind="list_search",
            query_type=query_type,
            path="/customers/?" + urlencode({"q": query}),
            **checks,
        )

    def one_live() -> Planned:
        person = rng.choice(searched)
        link = f'href="/customers/{person.pk}/"'
        _pk, number, customer_id = rng.choice(orders)
        order_link = f'href="/customers/{customer_id}/"'
        unknown = rng.randint(10**6, 10**7)
        choice = rng.choices(
            [
                "email",
                "phone",
                "first_and_last_name",
                "surname_being_typed",
                "order_number_with_hash",
                "order_number_without_hash",
                "no_hit_email",
                "no_hit_order_number",
                "no_hit_name",
            ],
            weights=[20, 15, 15, 10, 10, 5, 10, 5, 10],
        )[0]
        if choice == "phone" and not person.phone:
            choice = "email"
        if choice == "email":
            return live(choice, person.email, must=(link,))
        if choice == "phone":
            return live(choice, _national(person.phone), must=(link,))
        if choice == "first_and_last_name":
            name = f"{person.first_name} {person.last_name}"
            if rng.random() < 0.5:
                name = _fold(name)
            return live(choice, name, any_of=slow_or_results)
        if choice == "surname_being_typed":
            return live(
                choice,
                _fold(person.last_name)[: rng.randint(4, 6)],
                any_of=slow_or_results,
            )
        if choice == "order_number_with_hash":
            return live(choice, number, must=(order_link,))
        if choice == "order_number_without_hash":
            return live(choice, number.removeprefix("#"), must=(order_link,))
        if choice == "no_hit_email":
            return live(choice, f"brak{unknown}@example.invalid", any_of=nothing)
        if choice == "no_hit_order_number":
            return live(choice, f"#{unknown * 1000}", any_of=nothing)
        return live(
            choice,
            rng.choice(["Grzegżółka", "Qwertyński", "Xawery Zzyzx"]),
            any_of=nothing,
        )

    def one_listed() -> Planned:
        person = rng.choice(searched)
        _pk, number, _customer_id = rng.choice(orders)
        choice = rng.choices(
            ["email", "order_number", "first_and_last_name", "no_hit_email"],
            weights=[35, 25, 30, 10],
        )[0]
        if choice == "email":
            # One match: straight to the customer's page (access-logged).
            return listed(
                choice, person.email, must=(f"mailto:{html.escape(person.email)}",)
            )
        if choice == "order_number":
            # One match: straight to the order's page.
            return listed(
                choice, number, must=('aria-current="page"', html.escape(number))
            )
        if choice == "first_and_last_name":
            # Many matches (or, in a small base, one: the customer's page).
            name = f"{person.first_name} {person.last_name}"
            return listed(choice, name, any_of=('class="rowlink"', "mailto:"))
        return listed(
            choice,
            f"brak{rng.randint(10**6, 10**7)}@example.invalid",
            must=('class="empty__title"',),
            must_not=('class="rowlink"',),
        )

    planned = []
    kinds = rng.choices(KINDS, weights=[MIX[kind] for kind in KINDS], k=count)
    for kind in kinds:
        if kind == "customer_page":
            planned.append(_customer_page(rng.choice(pages)))
        elif kind == "live_search":
            planned.append(one_live())
        else:
            planned.append(one_listed())
    return planned


def _measure(server, planned: list[Planned], cookies: list[str], concurrency: int):
    """Send ``planned`` from ``concurrency`` connections.

    Returns the load, the CPU use per request and the indexes of the live searches
    whose name matches ran out of their time budget (the box then says so).
    """
    over_budget: set[int] = set()

    def check(index: int, body: bytes) -> bool:
        if b"searchresults__note" in body:
            over_budget.add(index)
        return planned[index].accepts(body)

    before = _server.cpu_snapshot(server)
    load = _server.run_load(
        server,
        [("GET", p.path, b"", p.headers) for p in planned],
        headers={"Accept-Language": "pl", "Accept": "text/html"},
        concurrency=concurrency,
        expect=200,
        time_cap=TIME_CAP_S,
        connection_headers=[{"Cookie": cookie} for cookie in cookies[:concurrency]],
        follow_redirects=2,
        check=check,
    )
    after = _server.cpu_snapshot(server)
    return load, _server.cpu_per_request(before, after, load.requests), over_budget


def _figures(samples: list[_server.Sample], seconds: float) -> dict:
    """Requests, throughput, percentiles and errors of some samples."""
    part = _server.Load(seconds=seconds, latencies=[s.seconds for s in samples])
    return {
        "requests": len(samples),
        "per_second": round(len(samples) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(part.percentile(0.5), 1),
        "p95_ms": round(part.percentile(0.95), 1),
        "p99_ms": round(part.percentile(0.99), 1),
        "max_ms": round(max(part.latencies, default=0) * 1000, 1),
        "errors": sum(1 for s in samples if not s.ok),
    }


def _analyse(load: _server.Load, planned: list[Planned], over_budget: set) -> dict:
    """Figures overall, per page kind and per query type; errors by kind."""
    by_kind: dict[str, list] = defaultdict(list)
    by_type: dict[str, list] = defaultdict(list)
    errors: Counter = Counter()
    for sample in load.samples:
        request = planned[sample.index]
        by_kind[request.kind].append(sample)
        by_type[f"{request.kind}/{request.query_type}"].append(sample)
        if not sample.ok:
            errors[f"{request.kind}/{request.query_type} HTTP {sample.status}"] += 1
    return {
        "all": _figures(load.samples, load.seconds),
        "kinds": {
            kind: _figures(by_kind[kind], load.seconds)
            for kind in KINDS
            if by_kind[kind]
        },
        "query_types": {
            name: _figures(samples, load.seconds)
            for name, samples in sorted(by_type.items())
        },
        "errors": dict(errors),
        "live_search_over_budget": len(over_budget),
        "redirects_followed": sum(s.redirects for s in load.samples),
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
    }


def _table(results: dict[int, dict]) -> str:
    lines = [
        f"  {'concurrency':>11} {'page kind':<14} {'requests':>8} {'req/s':>7}"
        f" {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>6}"
    ]
    for level, result in results.items():
        rows = [*result["kinds"].items(), ("all", result["all"])]
        for kind, f in rows:
            lines.append(
                f"  {level:>11} {kind:<14} {f['requests']:>8} {f['per_second']:>7}"
                f" {f['p50_ms']:>8} {f['p95_ms']:>8} {f['p99_ms']:>8}"
                f" {f['max_ms']:>8} {f['errors']:>6}"
            )
    return "\n".join(lines)


STATIC_SETTINGS = """\
from config.settings.base import *  # noqa: F403

STATIC_ROOT = {root!r}
"""


@contextmanager
def _collected_static() -> Iterator[dict[str, str]]:
    """The server's environment for static files collected as on deploy.

    Production settings serve static files through WhiteNoise's manifest, which
    ``collectstatic`` writes. The checkout's STATIC_ROOT (``.data/staticfiles``) is
    the developer's and shared, so the files go to a temporary directory instead,
    through a settings module that is the production one with only STATIC_ROOT
    changed.
    """
    directory = Path(tempfile.mkdtemp(prefix="kartoteka-bench-static-"))
    try:
        module = "kartoteka_bench_static_settings"
        (directory / f"{module}.py").write_text(
            STATIC_SETTINGS.format(root=str(directory / "static"))
        )
        env = {
            "DJANGO_SETTINGS_MODULE": module,
            "PYTHONPATH": os.pathsep.join([str(directory), str(_harness.ROOT)]),
        }
        started = time.perf_counter()
        subprocess.run(  # noqa: S603 - fixed arguments
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=_harness.ROOT,
            env={
                **os.environ,
                **_server._database_env(),
                "DEBUG": "false",
                "SECRET_KEY": "kartoteka-bench-only-not-a-secret",
                **env,
            },
            check=True,
        )
        print(f"  collectstatic: {time.perf_counter() - started:.0f} s", flush=True)
        yield env
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _access_log_views() -> int:
    from consents.models import AccessLog

    return AccessLog.objects.filter(action="view").count()


def run() -> dict:
    from django.db import connection

    from customers.models import Store

    support_search.ROWS = CUSTOMERS
    store = Store.objects.create(code="bench", name="Sklep testowy")
    started = time.perf_counter()
    rows = support_search._generate(store.pk)
    support_search._add_known(store)
    rows.update(_history(store.pk))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    generate_s = time.perf_counter() - started
    print(f"  generated {rows} in {generate_s:.0f} s", flush=True)

    rng = random.Random(SEED)
    cookies = _staff_sessions(max(CONCURRENCY))
    draws = _draws(rng)
    warmup = _plan(rng, draws, WARMUP)
    plans = {level: _plan(rng, draws, REQUESTS) for level in CONCURRENCY}
    results: dict[int, dict] = {}
    cpu: dict[int, dict] = {}
    with (
        _collected_static() as static_env,
        _server.api_server(workers=WORKERS, extra_env=static_env) as server,
    ):
        load, _cpu, over = _measure(server, warmup, cookies, max(CONCURRENCY))
        warm = _analyse(load, warmup, over)
        print(
            f"  warm-up: {warm['all']['requests']} requests,"
            f" {warm['all']['errors']} errors {warm['errors'] or ''}",
            flush=True,
        )
        _raise_on_login_page(load)
        for level in CONCURRENCY:
            logged_before = _access_log_views()
            load, cpu[level], over = _measure(server, plans[level], cookies, level)
            results[level] = _analyse(load, plans[level], over)
            results[level]["cpu_ms_per_request"] = cpu[level]
            # Every customer page shown (directly or after a search) logs a view.
            expected_views = sum(
                1
                for sample in load.samples
                if sample.ok
                and sample.location.startswith("/customers/")
                or sample.ok
                and plans[level][sample.index].kind == "customer_page"
            )
            results[level]["access_log_views"] = _access_log_views() - logged_before
            results[level]["access_log_views_expected"] = expected_views
            print(
                f"  {level} connections: {load.requests} requests in"
                f" {load.seconds:.1f} s, statuses {results[level]['statuses']},"
                f" CPU ms per request {cpu[level]}",
                flush=True,
            )
            for body in load.bodies[:2]:
                print("    unexpected answer: " + _snippet(body), flush=True)
        server_description = server.describe()

    print(_table(results), flush=True)
    for level, result in results.items():
        for name, figures in result["query_types"].items():
            print(
                f"  {level:>3} {name:<45} {figures['requests']:>5}"
                f" p50 {figures['p50_ms']:>7} p95 {figures['p95_ms']:>7}"
                f" errors {figures['errors']}"
            )
    total = sum(r["all"]["requests"] for r in results.values())
    failed = sum(r["all"]["errors"] for r in results.values())
    share = failed / max(total, 1)
    if share > MAX_ERROR_SHARE:
        raise RuntimeError(
            f"{failed} of {total} answers were errors ({share:.1%}, more than"
            f" {MAX_ERROR_SHARE:.1%}): {[r['errors'] for r in results.values()]}"
        )
    top = max(CONCURRENCY)
    value = results[top]["kinds"]["customer_page"]["p95_ms"]
    search = results[top]["kinds"]["live_search"]
    return _harness.write_result(
        name=NAME,
        value=value,
        unit="ms (p95, customer page)",
        reference=None,
        conditions=_harness.conditions(
            customers=CUSTOMERS,
            rows=rows,
            generate_s=round(generate_s, 1),
            server=server_description,
            client=(
                "threads on keep-alive connections over loopback, one signed-in"
                " Support user (session with the second factor) per connection;"
                " redirects followed and timed as one request"
            ),
            mix_percent=MIX,
            requests_per_level=REQUESTS,
            warmup=WARMUP,
            time_cap_s=TIME_CAP_S,
            max_error_share=MAX_ERROR_SHARE,
            errors=failed,
            error_share=round(share, 5),
            seed=SEED,
            concurrency={str(level): result for level, result in results.items()},
        ),
        summary=(
            f"{total:,} requests on {rows['customers']:,} customers; at {top}"
            f" connections the customer page's p95 is {value:.0f} ms, the live"
            f" search's {search['p95_ms']:.0f} ms, overall"
            f" {results[top]['all']['per_second']} requests/s; {failed} errors"
        ),
    )


def _snippet(body: bytes) -> str:
    text = re.sub(r"\s+", " ", body.decode("utf-8", errors="replace"))
    return text[:300]


def _raise_on_login_page(load: _server.Load) -> None:
    """A bench that measures the sign-in page is worthless: stop at once."""
    if load.requests and load.failures > load.requests // 2:
        print("\n".join("    " + _snippet(body) for body in load.bodies))
        raise RuntimeError(
            f"{load.failures} of {load.requests} warm-up answers were not the pages"
            f" asked for (statuses {dict(load.statuses)}): not signed in?"
        )
