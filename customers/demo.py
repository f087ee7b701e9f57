"""Demo data: a Polish business with two stores, seeded set-based (``seed_demo``).

``demo_seed`` writes stores, tags, the demo staff users, customers, their store
identities and addresses with ``COPY`` in one transaction, then hands a
:class:`DemoRun` (the in-memory picture of the new customers) to every later installed
app that has a ``demo`` module with a ``demo_seed_app(run)`` function, in
``INSTALLED_APPS`` order. ``orders.demo`` builds the catalogue and the orders.

Why the hand-over instead of ``apps.get_model("orders", ...)`` here: customers sits
left of orders in the layering, and what a realistic order looks like (catalogue,
statuses, totals, shipping) is the orders app's knowledge. Each app seeds its own
tables from the shared run, and later apps (consents, campaigns) join the same way
without this module learning about them. The contract with the apps to the right:
every customer with ``is_buyer`` gets at least one order placed at ``first_order_ts``
(status ``buyer`` is written up front so the customer rows are copied only once).

Everything is pure Python: Faker fills name, street and company pools once, and the
rows combine them with one seeded ``random.Random``. Ids are reserved from the
sequences, so rows reference each other without ``RETURNING`` round trips. Emails are
checked against the existing ones and identities/orders use sequence ids, so seeding
into a non-empty database never violates a unique constraint.
"""

from __future__ import annotations

import bisect
import gc
import json
import random
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import import_module
from zoneinfo import ZoneInfo

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import connection, models, transaction
from django.utils.module_loading import module_has_submodule
from psycopg import sql

from customers.models import (
    Address,
    AttributeDefinition,
    Customer,
    CustomerIdentity,
    Store,
    Tag,
)
from customers.roles import DATA_PROTECTION_OFFICER, MANAGER, MARKETING, SUPPORT
from customers.validators import NIP_WEIGHTS

# Demo staff accounts: the run script and the docs import these names.
DEMO_PASSWORD = "kartoteka-demo"  # noqa: S105 - published demo credentials
DEMO_USERNAME = "manager"
DEMO_ADMIN_USERNAME = "admin"
DEMO_USERS = {
    "support": SUPPORT,
    "marketing": MARKETING,
    "manager": MANAGER,
    "dpo": DATA_PROTECTION_OFFICER,
}

DEMO_STORES = (
    {
        "code": "sklep",
        "name": "Kartoteka Sklep",
        "domain": "sklep.kartoteka.pl",
        "currency": "PLN",
        "language": "pl",
    },
    {
        "code": "zoo",
        "name": "Kartoteka Zoo",
        "domain": "zoo.kartoteka.pl",
        "currency": "PLN",
        "language": "pl",
    },
)
HISTORY_DAYS = 3 * 365 + 1
LEAD_SHARE = 0.28
ABROAD_SHARE = 0.015

LogFn = Callable[[str], None]


# --------------------------------------------------------------------------- calendar


class DemoCalendar:
    """Three years of seasonal day weights: December peak, Black Friday, summer dip.

    Days are indexed from the oldest (0) to today (``len - 1``); timestamps are epoch
    seconds, days start at local midnight in the project time zone.
    """

    MONTH = {1: 0.85, 2: 0.8, 3: 0.9, 4: 0.95, 5: 0.95, 6: 0.85}
    MONTH |= {7: 0.62, 8: 0.66, 9: 0.95, 10: 1.05, 11: 1.25, 12: 1.55}
    WEEKDAY = (1.1, 1.0, 1.0, 1.0, 0.95, 0.85, 1.05)
    HOURS = (2, 1, 1, 1, 1, 2, 4, 6, 9, 11, 12, 12, 13, 12, 12, 12, 13, 14, 15, 17)
    HOURS += (19, 20, 16, 8)

    def __init__(self, *, now: datetime, days: int = HISTORY_DAYS) -> None:
        zone = ZoneInfo(settings.TIME_ZONE)
        local_now = now.astimezone(zone)
        today = local_now.date()
        self.now_ts = now.timestamp()
        self.dates = [today - timedelta(days=days - 1 - i) for i in range(days)]
        self.day_start = [
            datetime(d.year, d.month, d.day, tzinfo=zone).timestamp()
            for d in self.dates
        ]
        black_fridays = {_black_friday(year) for year in {d.year for d in self.dates}}
        weights = []
        for i, day in enumerate(self.dates):
            weight = (0.45 + 0.55 * i / days) * self.MONTH[day.month]
            weight *= self.WEEKDAY[day.weekday()]
            if day.month == 12 and 24 <= day.day <= 26:
                weight *= 0.3
            elif day.month == 12 and day.day <= 20:
                weight *= 1.2
            for friday in black_fridays:
                offset = (day - friday).days
                weight *= {
                    -4: 1.3,
                    -3: 1.3,
                    -2: 1.4,
                    -1: 1.6,
                    0: 3.5,
                    1: 1.9,
                    2: 1.6,
                }.get(offset, 1.0)
                if offset == 3:  # Cyber Monday
                    weight *= 2.4
            weights.append(weight)
        self.cum = []
        total = 0.0
        for weight in weights:
            total += weight
            self.cum.append(total)
        hour_total = 0
        self.hour_cum = []
        for weight in self.HOURS:
            hour_total += weight
            self.hour_cum.append(hour_total)
        self.black_fridays = black_fridays

    def __len__(self) -> int:
        return len(self.dates)

    def day(self, rng: random.Random, lo: int = 0, hi: int | None = None) -> int:
        """A day index in [lo, hi] drawn with the seasonal weights."""
        hi = len(self.cum) - 1 if hi is None else min(hi, len(self.cum) - 1)
        lo = max(0, min(lo, hi))
        base = self.cum[lo - 1] if lo else 0.0
        point = base + rng.random() * (self.cum[hi] - base)
        return min(bisect.bisect_left(self.cum, point, lo, hi + 1), hi)

    def moment(self, rng: random.Random, day: int) -> float:
        """A timestamp on ``day`` at a shopping hour, never in the future."""
        hour = bisect.bisect_left(self.hour_cum, rng.random() * self.hour_cum[-1])
        ts = self.day_start[day] + hour * 3600 + rng.random() * 3600
        if ts > self.now_ts:  # later today: any time between midnight and now
            ts = self.day_start[day] + rng.random() * (
                self.now_ts - self.day_start[day]
            )
        return ts

    def day_of(self, ts: float) -> int:
        return max(0, bisect.bisect_right(self.day_start, ts) - 1)


def _black_friday(year: int) -> date:
    november = date(year, 11, 1)
    first_friday = november + timedelta(days=(4 - november.weekday()) % 7)
    return first_friday + timedelta(weeks=3)


def as_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# ------------------------------------------------------------------------ run state


@dataclass(slots=True)
class DemoCustomer:
    """What later apps need about one seeded customer."""

    id: int
    is_buyer: bool
    first_order_ts: float | None
    created_ts: float
    store_codes: tuple[str, ...]
    abroad: bool
    shipping_json: str
    billing_json: str
    acquisition: tuple[str, str, str]


@dataclass
class DemoRun:
    """A seeding run shared by every app's ``demo_seed_app``."""

    rng: random.Random
    calendar: DemoCalendar
    stores: dict[str, Store]
    customers: list[DemoCustomer]
    log: LogFn
    counts: dict[str, int] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)  # filled: ANALYZE at the end


@dataclass
class DemoSummary:
    customers: int = 0
    orders: int = 0
    lines: int = 0
    seconds: float = 0.0
    skipped: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.skipped:
            return "Customers exist already; nothing seeded (--if-empty)."
        rate = self.customers / self.seconds if self.seconds else 0.0
        return (
            f"Seeded {self.customers} customers, {self.orders} orders, {self.lines} "
            f"order lines in {self.seconds:.1f} s ({rate:.0f} customers/s)."
        )


# ------------------------------------------------------------------------ COPY helpers


def reserve_ids(model: type[models.Model], count: int) -> list[int]:
    """Take ``count`` ids from the model's primary-key sequence."""
    if count <= 0:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s))"
            " FROM generate_series(1, %s)",
            [model._meta.db_table, model._meta.pk.column, count],
        )
        return [row[0] for row in cursor.fetchall()]


def copy_rows(
    table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]
) -> int:
    """COPY ``rows`` into ``table`` through Django's connection; returns the count."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    count = 0
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def copy_model(
    model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[object]]
) -> int:
    """COPY rows given in model field names (foreign keys as ``<name>_id``)."""
    meta = model._meta
    column = {field.attname: field.column for field in meta.concrete_fields}
    columns = [column[name] for name in fields]
    return copy_rows(meta.db_table, columns, rows)


# ---------------------------------------------------------------------- data pools

PHONE_PREFIXES = (
    ("50", 12), ("51", 14), ("53", 10), ("57", 6), ("60", 14), ("66", 8),
    ("69", 9), ("72", 8), ("73", 5), ("78", 6), ("79", 10), ("88", 6),
)  # fmt: skip
# city, postcode prefixes (first two digits), voivodeship, weight
CITIES = (
    ("Warszawa", (0, 1, 2, 3, 4), "Mazowieckie", 180),
    ("Kraków", (30, 31), "Małopolskie", 80),
    ("Łódź", (90, 91, 92, 93, 94), "Łódzkie", 65),
    ("Wrocław", (50, 51, 52, 53, 54), "Dolnośląskie", 65),
    ("Poznań", (60, 61), "Wielkopolskie", 55),
    ("Gdańsk", (80,), "Pomorskie", 48),
    ("Szczecin", (70, 71), "Zachodniopomorskie", 40),
    ("Bydgoszcz", (85,), "Kujawsko-pomorskie", 34),
    ("Lublin", (20,), "Lubelskie", 34),
    ("Białystok", (15,), "Podlaskie", 30),
    ("Katowice", (40,), "Śląskie", 29),
    ("Gdynia", (81,), "Pomorskie", 25),
    ("Częstochowa", (42,), "Śląskie", 22),
    ("Radom", (26,), "Mazowieckie", 20),
    ("Toruń", (87,), "Kujawsko-pomorskie", 20),
    ("Rzeszów", (35,), "Podkarpackie", 20),
    ("Kielce", (25,), "Świętokrzyskie", 19),
    ("Gliwice", (44,), "Śląskie", 18),
    ("Olsztyn", (10,), "Warmińsko-mazurskie", 17),
    ("Zabrze", (41,), "Śląskie", 16),
    ("Bielsko-Biała", (43,), "Śląskie", 17),
    ("Opole", (45,), "Opolskie", 13),
    ("Zielona Góra", (65,), "Lubuskie", 14),
    ("Gorzów Wielkopolski", (66,), "Lubuskie", 12),
    ("Koszalin", (75,), "Zachodniopomorskie", 10),
    ("Piaseczno", (5,), "Mazowieckie", 9),
    ("Pruszków", (5,), "Mazowieckie", 8),
    ("Sopot", (81,), "Pomorskie", 5),
)
ABROAD_CITIES = (
    ("Berlin", (10, 12, 13), "DE"),
    ("Hamburg", (20, 22), "DE"),
    ("München", (80, 81), "DE"),
    ("Köln", (50, 51), "DE"),
    ("Frankfurt am Main", (60,), "DE"),
)
ABROAD_STREETS = (
    "Hauptstraße",
    "Bahnhofstraße",
    "Gartenweg",
    "Schulstraße",
    "Lindenallee",
)
EMAIL_DOMAINS = (
    ("gmail.com", 34), ("wp.pl", 15), ("o2.pl", 10), ("onet.pl", 10), ("interia.pl", 8),
    ("op.pl", 4), ("outlook.com", 5), ("icloud.com", 3), ("yahoo.com", 2),
    ("gazeta.pl", 2), ("tlen.pl", 1), ("poczta.fm", 1),
)  # fmt: skip
ACQUISITION = (
    # source, medium, campaign, keyword, weight
    ("google", "cpc", "brand_search", "kartoteka sklep", 8),
    ("google", "cpc", "pla_shopping", "", 9),
    ("google", "cpc", "generic_search", "karma dla psa", 4),
    ("google", "cpc", "generic_search", "soczewki kontaktowe", 3),
    ("google", "organic", "", "", 17),
    ("bing", "organic", "", "", 2),
    ("facebook", "paid_social", "wiosenna_promocja", "", 6),
    ("facebook", "paid_social", "retargeting_koszyk", "", 5),
    ("instagram", "paid_social", "influencer_zwierzaki", "", 4),
    ("tiktok", "paid_social", "ugc_kosmetyki", "", 2),
    ("newsletter", "email", "newsletter_tygodniowy", "", 8),
    ("ceneo", "referral", "porownywarka", "", 6),
    ("direct", "", "", "", 20),
    ("polecenie", "referral", "polec_znajomego", "", 3),
)
DEVICES = (
    # device, os, browser, weight
    ("mobile", "Android", "Chrome", 28), ("mobile", "Android", "Samsung Internet", 7),
    ("mobile", "iOS", "Safari", 22), ("mobile", "iOS", "Chrome", 4),
    ("desktop", "Windows", "Chrome", 16), ("desktop", "Windows", "Edge", 6),
    ("desktop", "Windows", "Firefox", 3), ("desktop", "macOS", "Safari", 5),
    ("desktop", "macOS", "Chrome", 2), ("desktop", "Linux", "Firefox", 1),
    ("desktop", "Windows", "Opera", 1), ("tablet", "iPadOS", "Safari", 3),
    ("tablet", "Android", "Chrome", 2),
)  # fmt: skip
PROFESSIONS = (
    "nauczyciel", "nauczycielka", "programista", "programistka", "księgowa",
    "lekarz", "pielęgniarka", "inżynier", "sprzedawca", "kierowca", "student",
    "studentka", "emeryt", "emerytka", "przedsiębiorca", "grafik", "prawnik",
    "fryzjerka", "specjalista ds. marketingu", "architekt", "farmaceutka",
    "mechanik", "kucharz", "urzędnik", "kosmetyczka", "weterynarz", "fizjoterapeutka",
)  # fmt: skip
DEMO_TAGS = (
    ("VIP", "#b45309"),
    ("B2B", "#1d4ed8"),
    ("Influencer", "#be185d"),
    ("Reklamacja", "#b91c1c"),
    ("Pracownik", "#047857"),
    ("Ambasador marki", "#7c3aed"),
    ("Do weryfikacji", "#64748b"),
)
_FOLD = str.maketrans("łŁ", "lL")


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(ch for ch in folded if ch.isascii() and ch.isalnum()).lower()


def _weighted(items: Sequence[tuple]) -> tuple[list, list[float]]:
    """Split ``(value..., weight)`` rows into values and cumulative weights."""
    values, cum, total = [], [], 0.0
    for *value, weight in items:
        total += weight
        values.append(value[0] if len(value) == 1 else tuple(value))
        cum.append(total)
    return values, cum


class _Pools:
    """Name, street and company pools drawn from Faker once per run."""

    def __init__(self, seed: int) -> None:
        from faker import Faker

        fake = Faker("pl_PL")
        fake.seed_instance(seed)
        self.first_female = sorted({fake.first_name_female() for _ in range(1500)})
        self.first_male = sorted({fake.first_name_male() for _ in range(1500)})
        self.last_female = sorted({fake.last_name_female() for _ in range(4000)})
        self.last_male = sorted({fake.last_name_male() for _ in range(4000)})
        self.streets = sorted({fake.street_name() for _ in range(3000)})
        # Smaller towns; Faker pairs them with random regions, so leave region blank.
        big = {city[0] for city in CITIES}
        self.towns = sorted({fake.city() for _ in range(1500)} - big)
        self.companies = sorted({fake.company() for _ in range(1500)})
        self.phone_prefixes, self.phone_cum = _weighted(PHONE_PREFIXES)
        self.domains, self.domain_cum = _weighted(EMAIL_DOMAINS)
        self.acquisition, self.acquisition_cum = _weighted(ACQUISITION)
        self.devices, self.device_cum = _weighted(DEVICES)
        self.cities, self.city_cum = _weighted(
            [(c[:3], c[3]) for c in CITIES] + [(None, 280)]
        )


def _nip(rng: random.Random) -> str:
    while True:
        digits = [rng.randint(1, 9)] + [rng.randint(0, 9) for _ in range(8)]
        check = sum(d * w for d, w in zip(digits, NIP_WEIGHTS, strict=True)) % 11
        if check != 10:
            return "".join(map(str, digits)) + str(check)


def _street(rng: random.Random, pools: _Pools) -> str:
    roll = rng.random()
    prefix = (
        "ul."
        if roll < 0.88
        else "al."
        if roll < 0.95
        else "os."
        if roll < 0.98
        else "pl."
    )
    number = str(
        int(rng.paretovariate(1.1) * 3) if rng.random() < 0.9 else rng.randint(1, 250)
    )
    if rng.random() < 0.45:
        number += f"/{rng.randint(1, 80)}"
    return f"{prefix} {rng.choice(pools.streets)} {number}"


def _pl_place(rng: random.Random, pools: _Pools) -> tuple[str, str, str]:
    """City, postcode (NN-NNN), voivodeship."""
    city = pools.cities[
        bisect.bisect_left(pools.city_cum, rng.random() * pools.city_cum[-1])
    ]
    if city is None:
        town = rng.choice(pools.towns)
        return town, f"{rng.randint(0, 99):02d}-{rng.randint(0, 999):03d}", ""
    name, prefixes, region = city
    return name, f"{rng.choice(prefixes):02d}-{rng.randint(0, 999):03d}", region


def _pick(rng: random.Random, values: list, cum: list[float]):
    return values[bisect.bisect_left(cum, rng.random() * cum[-1])]


# ------------------------------------------------------------------------- service


def demo_seed(
    *,
    customers: int,
    seed: int | None = None,
    if_empty: bool = False,
    log: LogFn | None = None,
) -> DemoSummary:
    """Seed realistic demo data for ``customers`` new customers in one transaction."""
    if if_empty and Customer.objects.exists():
        return DemoSummary(skipped=True)
    started = time.monotonic()
    output = log or (lambda message: None)

    def log(message: str) -> None:
        output(f"[{time.monotonic() - started:6.1f} s] {message}")

    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    rng = random.Random(seed)  # noqa: S311 - demo data, reproducible by design
    # Millions of live rows make the cyclic GC rescan the heap over and over.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with transaction.atomic():
            run = _seed(rng=rng, seed=seed, customers=customers, log=log)
    finally:
        if gc_was_enabled:
            gc.enable()
    return DemoSummary(
        customers=run.counts.get("customers", 0),
        orders=run.counts.get("orders", 0),
        lines=run.counts.get("order_lines", 0),
        seconds=time.monotonic() - started,
        counts=dict(run.counts),
    )


def _seed(*, rng: random.Random, seed: int, customers: int, log: LogFn) -> DemoRun:
    """Stores, users and customers here, then every later app's ``demo_seed_app``."""
    stores = _stores()
    _demo_users(log)
    calendar = DemoCalendar(now=datetime.now(UTC))
    run = DemoRun(rng=rng, calendar=calendar, stores=stores, customers=[], log=log)
    _seed_customers(run, customers, seed)
    for app_config in apps.get_app_configs():
        if app_config.name == "customers" or not module_has_submodule(
            app_config.module, "demo"
        ):
            continue
        hook = getattr(import_module(f"{app_config.name}.demo"), "demo_seed_app", None)
        if hook is not None:
            hook(run)
    _seed_duplicates(run)
    # Then what is computed from everything seeded (the dashboard's figures).
    for app_config in apps.get_app_configs():
        if module_has_submodule(app_config.module, "demo"):
            module = import_module(f"{app_config.name}.demo")
            finish = getattr(module, "demo_seed_finish", None)
            if finish is not None:
                finish(run)
    with connection.cursor() as cursor:
        # Django's foreign keys are deferred: check them now, for the progress log.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        log("Foreign keys checked")
        for table in run.tables:
            cursor.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
        log("Tables analysed")
    return run


# Duplicates a shop really has, for the data quality page and the merge: the same
# person signed up again with a "+tag" address, gave only a phone at a
# marketplace, or mistyped their name at the same address.
DEMO_DUPLICATES_PER_KIND = 4


def _seed_duplicates(run: DemoRun) -> None:
    """Second records of a few demo customers, then the duplicate scan."""
    from customers.quality import quality_scan

    people = list(
        Customer.objects.filter(pk__in=[c.id for c in run.customers])
        .exclude(email=None)
        .exclude(phone="")
        .exclude(first_name="")
        .filter(addresses__is_default=True, addresses__country="PL")
        .order_by("pk")
        .distinct()[: DEMO_DUPLICATES_PER_KIND * 3]
    )
    made = 0
    for number, person in enumerate(people):
        kind = number % 3
        local, domain = person.email.split("@", 1)
        twin = Customer(
            first_name=person.first_name,
            last_name=person.last_name,
            language=person.language,
            acquisition_source="marketplace",
        )
        if kind == 0:  # the same mailbox with a "+tag"
            twin.email = f"{local}+sklep@{domain}"
        elif kind == 1:  # only the phone
            twin.phone = person.phone
        else:  # a typo in the name, at the same address
            twin.last_name = _typo(person.last_name, run.rng)
            twin.email = f"{local}.{number}@{domain}"
        if twin.email and Customer.objects.by_email(twin.email).exists():
            continue
        twin.save()
        if kind == 2:
            address = person.addresses.filter(is_default=True).first()
            address.pk = None
            address.customer = twin
            address.last_name = twin.last_name
            address.save()
        made += 1
    # Not in the "customers" count: the summary says how many people were seeded.
    run.counts["duplicates"] = made
    scan = quality_scan()
    found = sum(scan.duplicates.values())
    run.log(f"{made} duplicate records planted; the quality scan found {found} pairs")


def _typo(name: str, rng: random.Random) -> str:
    """``name`` with two neighbouring letters swapped (never the first)."""
    if len(name) < 4:
        return name + name[-1]
    at = rng.randrange(1, len(name) - 2)
    return name[:at] + name[at + 1] + name[at] + name[at + 2 :]


def _stores() -> dict[str, Store]:
    stores = {}
    for data in DEMO_STORES:
        store, _ = Store.objects.get_or_create(
            code=data["code"], defaults={k: v for k, v in data.items() if k != "code"}
        )
        stores[store.code] = store
    return stores


def _demo_users(log: LogFn) -> None:
    """Create one staff user per role and a superuser, unless they exist."""
    user_model = get_user_model()
    existing = set(
        user_model.objects.filter(
            username__in=[*DEMO_USERS, DEMO_ADMIN_USERNAME]
        ).values_list("username", flat=True)
    )
    missing = [
        name for name in [*DEMO_USERS, DEMO_ADMIN_USERNAME] if name not in existing
    ]
    if not missing:
        return
    # One hash for all: the demo accounts share a published password anyway.
    password = make_password(DEMO_PASSWORD)
    for username in missing:
        is_admin = username == DEMO_ADMIN_USERNAME
        user = user_model(
            username=username,
            email=f"{username}@kartoteka.example",
            is_staff=True,
            is_superuser=is_admin,
            password=password,
        )
        user.save()
        if not is_admin:
            group, _ = Group.objects.get_or_create(name=DEMO_USERS[username])
            user.groups.add(group)
    log(f"Demo users {', '.join(missing)} created, password: {DEMO_PASSWORD}")


def _tags() -> list[Tag]:
    tags = []
    for name, color in DEMO_TAGS:
        tag = Tag.objects.filter(name__iexact=name).first() or Tag.objects.create(
            name=name, color=color
        )
        tags.append(tag)
    return tags


def _attribute_values(
    rng: random.Random, definitions: list[AttributeDefinition]
) -> dict:
    values = {}
    for definition in definitions:
        if rng.random() > 0.6:
            continue
        kind = definition.kind
        if kind == AttributeDefinition.Kind.CHOICE and definition.choices:
            if definition.multiple:
                count = min(len(definition.choices), rng.choice((1, 1, 2, 2, 3)))
                values[definition.code] = rng.sample(definition.choices, count)
            else:
                values[definition.code] = rng.choice(definition.choices)
        elif kind == AttributeDefinition.Kind.TEXT and definition.code == "profession":
            values[definition.code] = rng.choice(PROFESSIONS)
        elif kind == AttributeDefinition.Kind.NUMBER:
            values[definition.code] = rng.randint(0, 10)
        elif kind == AttributeDefinition.Kind.BOOLEAN:
            values[definition.code] = rng.random() < 0.5
    return values


CUSTOMER_FIELDS = (
    "id", "first_name", "last_name", "email", "phone", "birth_date", "gender",
    "language", "company", "nip", "preferred_channels", "acquisition_source",
    "acquisition_medium", "acquisition_campaign", "acquisition_keyword", "last_device",
    "last_os", "last_browser", "status", "attributes", "created_at", "updated_at",
    "last_seen_at",
)  # fmt: skip
ADDRESS_FIELDS = (
    "customer_id", "kind", "is_default", "first_name", "last_name", "company", "street",
    "street2", "postcode", "city", "region", "country", "phone", "created_at",
    "updated_at",
)  # fmt: skip


def _seed_customers(run: DemoRun, count: int, seed: int) -> None:
    rng, calendar, log = run.rng, run.calendar, run.log
    pools = _Pools(seed)
    definitions = list(AttributeDefinition.objects.filter(is_active=True))
    tags = _tags()
    taken_emails = {
        email.upper()
        for email in Customer.objects.exclude(email=None).values_list(
            "email", flat=True
        )
    }
    taken_phones: set[str] = set()
    ids = reserve_ids(Customer, count)
    today = calendar.dates[-1]
    store_choices = (("sklep",), ("zoo",), ("sklep", "zoo"))
    customer_rows, address_rows, identity_rows, tag_rows = [], [], [], []
    for customer_id in ids:
        female = rng.random() < 0.58
        if female:
            first, last = rng.choice(pools.first_female), rng.choice(pools.last_female)
        else:
            first, last = rng.choice(pools.first_male), rng.choice(pools.last_male)
        roll = rng.random()
        gender = (
            ""
            if roll < 0.08
            else "other"
            if roll < 0.085
            else "female"
            if female
            else "male"
        )
        abroad = rng.random() < ABROAD_SHARE
        is_buyer = rng.random() >= LEAD_SHARE
        # Timeline: buyers' first order drives their sign-up; leads sign up any time.
        if is_buyer:
            first_day = calendar.day(rng)
            first_order_ts = calendar.moment(rng, first_day)
            if rng.random() < 0.7:
                created_ts = first_order_ts - rng.uniform(60, 1800)
            else:
                created_ts = calendar.moment(
                    rng, max(0, first_day - rng.randint(1, 120))
                )
                created_ts = min(created_ts, first_order_ts - 60)
        else:
            first_order_ts = None
            created_ts = calendar.moment(rng, calendar.day(rng))
        last_seen_ts = created_ts + (calendar.now_ts - created_ts) * rng.random() ** 0.3
        acquisition = _pick(rng, pools.acquisition, pools.acquisition_cum)
        device = _pick(rng, pools.devices, pools.device_cum)

        phone = ""
        if not abroad and rng.random() < 0.86:
            while True:
                prefix = _pick(rng, pools.phone_prefixes, pools.phone_cum)
                phone = f"+48{prefix}{rng.randrange(10_000_000):07d}"
                if phone not in taken_phones:
                    taken_phones.add(phone)
                    break
        email = None
        if not phone or rng.random() < 0.97:  # everyone is reachable somehow
            email = _email(rng, pools, first, last, taken_emails)
        company = nip = ""
        if not abroad and rng.random() < 0.08:
            company, nip = rng.choice(pools.companies), _nip(rng)
        birth_date = None
        if rng.random() < 0.55:
            age = int(rng.triangular(18, 80, 34))
            birth_date = today - timedelta(days=age * 365 + rng.randrange(365))
        channels = []
        if rng.random() < 0.6:
            for channel, share in (
                ("email", 0.7),
                ("sms", 0.3),
                ("phone", 0.08),
                ("post", 0.03),
            ):
                if rng.random() < share:
                    channels.append(channel)
        attributes = _attribute_values(rng, definitions) if rng.random() < 0.35 else {}
        created = as_datetime(created_ts)
        customer_rows.append(
            (
                customer_id, first, last, email, phone, birth_date, gender,
                "en" if abroad or rng.random() < 0.03 else "pl", company, nip,
                "{" + ",".join(channels) + "}", acquisition[0], acquisition[1],
                acquisition[2], acquisition[3], device[0], device[1], device[2],
                "buyer" if is_buyer else "lead",
                json.dumps(attributes, ensure_ascii=False), created,
                as_datetime(max(created_ts, last_seen_ts - 86400 * rng.random() * 30)),
                as_datetime(last_seen_ts),
            )
        )  # fmt: skip

        store_codes = (
            ("sklep",) if abroad else rng.choices(store_choices, (62, 20, 18))[0]
        )
        for code in store_codes:
            external_id = str(customer_id) if code == "sklep" else f"Z{customer_id:07d}"
            identity_rows.append(
                (run.stores[code].pk, external_id, customer_id, created)
            )
        if rng.random() < 0.15:
            for tag in rng.sample(tags, rng.choice((1, 1, 2))):
                tag_rows.append((customer_id, tag.pk))
        if company and rng.random() < 0.7:
            tag_rows.append((customer_id, tags[1].pk))  # B2B

        shipping_json = billing_json = ""
        if is_buyer or rng.random() < 0.3:
            if abroad:
                city, prefixes, country = rng.choice(ABROAD_CITIES)
                place = (
                    city,
                    f"{rng.choice(prefixes):02d}{rng.randrange(1000):03d}",
                    "",
                )
                street = f"{rng.choice(ABROAD_STREETS)} {rng.randint(1, 120)}"
            else:
                place, country, street = (
                    _pl_place(rng, pools),
                    "PL",
                    _street(rng, pools),
                )
            shipping = {
                "first_name": first, "last_name": last, "company": "", "street": street,
                "street2": "", "postcode": place[1], "city": place[0],
                "region": place[2], "country": country, "phone": phone,
            }  # fmt: skip
            billing = dict(shipping, company=company, nip=nip)
            if company and rng.random() < 0.5:
                city, postcode, region = _pl_place(rng, pools)
                billing.update(
                    street=_street(rng, pools),
                    city=city,
                    postcode=postcode,
                    region=region,
                )
            rows = [("shipping", True, shipping)]
            if is_buyer:
                rows.append(("billing", True, billing))
                if rng.random() < 0.15:
                    city, postcode, region = _pl_place(rng, pools)
                    other = dict(
                        shipping,
                        street=_street(rng, pools),
                        city=city,
                        postcode=postcode,
                        region=region,
                        country="PL",
                    )
                    rows.append(("shipping", False, other))
            for kind, is_default, address in rows:
                address_rows.append(
                    (
                        customer_id, kind, is_default, address["first_name"],
                        address["last_name"], address["company"], address["street"],
                        "", address["postcode"], address["city"], address["region"],
                        address["country"], address["phone"], created, created,
                    )
                )  # fmt: skip
            shipping_json = json.dumps(shipping, ensure_ascii=False)
            billing_json = json.dumps(billing, ensure_ascii=False)
        run.customers.append(
            DemoCustomer(
                id=customer_id,
                is_buyer=is_buyer,
                first_order_ts=first_order_ts,
                created_ts=created_ts,
                store_codes=store_codes,
                abroad=abroad,
                shipping_json=shipping_json,
                billing_json=billing_json,
                acquisition=acquisition[:3],
            )
        )
    log(f"Generated {count} customers; copying")
    run.tables += [m._meta.db_table for m in (Customer, Address, CustomerIdentity)]
    run.counts["customers"] = copy_model(Customer, CUSTOMER_FIELDS, customer_rows)
    run.counts["addresses"] = copy_model(Address, ADDRESS_FIELDS, address_rows)
    run.counts["identities"] = copy_model(
        CustomerIdentity,
        ("store_id", "external_id", "customer_id", "created_at"),
        identity_rows,
    )
    through = Customer.tags.through
    run.counts["customer_tags"] = copy_rows(
        through._meta.db_table,
        [
            through._meta.get_field("customer").column,
            through._meta.get_field("tag").column,
        ],
        dict.fromkeys(tag_rows),
    )
    log(
        f"Customers: {run.counts['customers']}, addresses: {run.counts['addresses']}, "
        f"identities: {run.counts['identities']}"
    )


def _email(
    rng: random.Random, pools: _Pools, first: str, last: str, taken: set[str]
) -> str:
    first_a, last_a = _ascii(first), _ascii(last)
    roll = rng.random()
    if roll < 0.35:
        local = f"{first_a}.{last_a}"
    elif roll < 0.5:
        local = f"{first_a}{last_a}"
    elif roll < 0.65:
        local = f"{first_a[0]}{last_a}"
    elif roll < 0.75:
        local = f"{last_a}.{first_a}"
    elif roll < 0.9:
        local = f"{first_a}.{last_a}{rng.randint(60, 105) % 100:02d}"
    else:
        local = f"{first_a}{rng.randint(1, 999)}"
    domain = _pick(rng, pools.domains, pools.domain_cum)
    email = f"{local}@{domain}"
    suffix = 1
    while email.upper() in taken:
        suffix += 1 if suffix < 9 else rng.randint(1, 97)
        email = f"{local}{suffix}@{domain}"
    taken.add(email.upper())
    return email


__all__ = [
    "DEMO_ADMIN_USERNAME",
    "DEMO_PASSWORD",
    "DEMO_USERNAME",
    "DEMO_USERS",
    "DemoCalendar",
    "DemoCustomer",
    "DemoRun",
    "DemoSummary",
    "as_datetime",
    "copy_model",
    "copy_rows",
    "demo_seed",
    "reserve_ids",
]
