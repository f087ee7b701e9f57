"""Demo catalogue and orders for ``seed_demo``; called by ``customers.demo.demo_seed``.

The customers app seeds the customers and hands over a :class:`DemoRun`; this module
owns what a realistic order looks like. It keeps the run's contract: every customer
with ``is_buyer`` gets at least one order, the first placed at ``first_order_ts``.

Spending is Pareto-distributed: most buyers order once or a few times, a long tail
orders often, and replenishment buyers (pet food, contact lenses, nappies, cosmetics)
come back every ``replenishment_days``. Order dates follow the run's seasonal
calendar, statuses follow the order's age, and totals are computed in grosze so
``line.total == quantity * unit_price`` and ``total == subtotal - discount + shipping``
hold exactly.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from dataclasses import dataclass

from customers.demo import DemoCustomer, DemoRun, as_datetime, copy_model, reserve_ids
from customers.interactions import answer_due
from customers.models import Interaction
from orders.models import Category, Order, OrderLine, Product

# (external id, name, parent external id, sensitive, replenishment days,
#  brands, product names, variants, price range in grosze, product count)
SKLEP_CATALOGUE = (
    ("DRO", "Drogeria", None, False, None, (), (), (), None, 0),
    ("DRO-TWA", "Pielęgnacja twarzy", "DRO", False, 45,
     ("Ziaja", "Nivea", "L'Oréal Paris", "Bielenda", "Eveline", "La Roche-Posay"),
     ("Krem nawilżający", "Krem na noc", "Serum z witaminą C", "Tonik",
      "Żel do mycia twarzy"),
     ("50 ml", "100 ml", "200 ml"), (1299, 8999), 30),
    ("DRO-CIA", "Pielęgnacja ciała", "DRO", False, None,
     ("Dove", "Palmer's", "Ziaja", "Nivea", "Isana"),
     ("Balsam do ciała", "Masło do ciała", "Peeling cukrowy", "Żel pod prysznic"),
     ("200 ml", "400 ml"), (999, 4999), 16),
    ("DRO-WLO", "Włosy", "DRO", False, None,
     ("Garnier", "Pantene", "Anwen", "Kallos", "Schwarzkopf"),
     ("Szampon", "Odżywka", "Maska do włosów", "Olejek do włosów"),
     ("250 ml", "500 ml", "1 l"), (1299, 5999), 14),
    ("OPT", "Optyka", None, False, None, (), (), (), None, 0),
    ("OPT-SOC", "Soczewki kontaktowe", "OPT", False, 30,
     ("Acuvue", "Air Optix", "Biofinity", "Dailies", "Biotrue"),
     ("Soczewki jednodniowe", "Soczewki miesięczne", "Soczewki toryczne"),
     ("6 szt.", "30 szt.", "90 szt."), (7999, 24999), 14),
    ("OPT-PLY", "Płyny do soczewek", "OPT", False, 60,
     ("Opti-Free", "ReNu", "Biotrue", "Solo-care"),
     ("Płyn uniwersalny", "Krople nawilżające"), ("100 ml", "360 ml"), (1999, 4999), 6),
    ("DZI", "Dziecko", None, False, None, (), (), (), None, 0),
    ("DZI-PIE", "Pieluszki", "DZI", False, 20,
     ("Pampers", "Huggies", "Dada", "Lupilu", "Bambo Nature"),
     ("Pieluszki Premium", "Pieluchomajtki", "Pieluszki Sensitive"),
     ("rozm. 3", "rozm. 4", "rozm. 5", "rozm. 6"), (4999, 12999), 20),
    ("DZI-CHU", "Chusteczki nawilżane", "DZI", False, 20,
     ("Pampers", "Huggies", "Dada", "WaterWipes"),
     ("Chusteczki nawilżane", "Chusteczki Sensitive"), ("3 x 56 szt.", "12 x 56 szt."),
     (1299, 6999), 8),
    ("DZI-ZAB", "Zabawki", "DZI", False, None,
     ("LEGO Duplo", "Fisher-Price", "Smoby", "Clementoni"),
     ("Klocki", "Sorter kształtów", "Układanka", "Edukacyjny stolik"), ("",),
     (3999, 29999), 12),
    ("ZDR", "Zdrowie", None, False, None, (), (), (), None, 0),
    ("ZDR-SUP", "Suplementy diety", "ZDR", False, 30,
     ("Olimp", "Solgar", "Naturell", "Swanson", "Doppelherz"),
     ("Witamina D3", "Omega-3", "Magnez z B6", "Kolagen", "Probiotyk"),
     ("30 kaps.", "60 kaps.", "120 kaps."), (1999, 11999), 22),
    ("ZDR-INT", "Zdrowie intymne", "ZDR", True, None, (), (), (), None, 0),
    ("ZDR-INT-ANT", "Antykoncepcja", "ZDR-INT", True, 30,
     ("Durex", "Skyn", "Unimil"), ("Prezerwatywy", "Prezerwatywy cienkie"),
     ("3 szt.", "12 szt.", "24 szt."), (1499, 7999), 8),
    ("ZDR-INT-HIG", "Higiena intymna", "ZDR-INT", True, None,
     ("Lactacyd", "Gynoxin", "Femi", "Lactovaginal"),
     ("Płyn do higieny intymnej", "Globulki dopochwowe", "Test ciążowy"),
     ("", "200 ml"), (1299, 5999), 10),
    ("DOM", "Dom i kuchnia", None, False, None, (), (), (), None, 0),
    ("DOM-KAW", "Kawa i herbata", "DOM", False, 30,
     ("Lavazza", "Tchibo", "Jacobs", "Segafredo", "Lipton", "Vitax"),
     ("Kawa ziarnista", "Kawa mielona", "Herbata czarna", "Herbata zielona"),
     ("250 g", "500 g", "1 kg"), (1499, 8999), 18),
    ("DOM-CZY", "Środki czystości", "DOM", False, 45,
     ("Ludwik", "Domestos", "Finish", "Persil", "Frosch"),
     ("Płyn do naczyń", "Tabletki do zmywarki", "Proszek do prania", "Żel do WC"),
     ("", "duże opak."), (899, 8999), 14),
)  # fmt: skip
ZOO_CATALOGUE = (
    ("PSY", "Psy", None, False, None, (), (), (), None, 0),
    ("PSY-SUC", "Karma sucha dla psów", "PSY", False, 30,
     ("Royal Canin", "Brit Care", "Purina Pro Plan", "Acana", "Josera", "Pedigree"),
     ("Karma sucha Adult", "Karma sucha Junior", "Karma sucha Senior",
      "Karma sucha Light"),
     ("2 kg", "7,5 kg", "12 kg"), (4999, 34999), 22),
    ("PSY-MOK", "Karma mokra dla psów", "PSY", False, 14,
     ("Rinti", "Animonda", "Pedigree", "Brit"),
     ("Karma mokra z wołowiną", "Karma mokra z kurczakiem"),
     ("6 x 400 g", "12 x 800 g"),
     (2999, 12999), 8),
    ("PSY-PRZ", "Przysmaki dla psów", "PSY", False, 20,
     ("Dingo", "Pedigree", "Maced"),
     ("Gryzaki", "Kostki dentystyczne", "Suszone mięso"),
     ("", "500 g"), (999, 4999), 8),
    ("PSY-AKC", "Smycze, obroże, legowiska", "PSY", False, None,
     ("Flexi", "Julius-K9", "Trixie", "Kong"),
     ("Smycz automatyczna", "Szelki", "Legowisko", "Zabawka Kong"), ("S", "M", "L"),
     (2999, 24999), 12),
    ("KOT", "Koty", None, False, None, (), (), (), None, 0),
    ("KOT-SUC", "Karma sucha dla kotów", "KOT", False, 30,
     ("Royal Canin", "Purina One", "Brit Care", "Sanabelle", "Whiskas"),
     ("Karma sucha Sterilised", "Karma sucha Kitten", "Karma sucha Indoor"),
     ("400 g", "2 kg", "10 kg"), (1999, 27999), 16),
    ("KOT-MOK", "Karma mokra dla kotów", "KOT", False, 14,
     ("Animonda Carny", "Miamor", "Felix", "Sheba"),
     ("Saszetki mix smaków", "Puszki z indykiem"), ("12 x 85 g", "6 x 400 g"),
     (2499, 8999), 8),
    ("KOT-ZWI", "Żwirek dla kotów", "KOT", False, 20,
     ("Cat's Best", "Benek", "Super Benek", "Catsan"),
     ("Żwirek bentonitowy", "Żwirek drewniany", "Żwirek silikonowy"), ("10 l", "25 l"),
     (1999, 7999), 8),
    ("KOT-AKC", "Drapaki i zabawki", "KOT", False, None,
     ("Trixie", "Kerbl", "Zolux"), ("Drapak", "Wędka dla kota", "Tunel"), ("",),
     (1499, 39999), 8),
    ("GRY", "Gryzonie i ptaki", None, False, None, (), (), (), None, 0),
    ("GRY-KAR", "Karma dla gryzoni i ptaków", "GRY", False, 30,
     ("Vitapol", "Versele-Laga", "Vitakraft"),
     ("Karma dla królika", "Karma dla świnki morskiej", "Karma dla papużek"),
     ("500 g", "1 kg"), (999, 3999), 8),
    ("AKW", "Akwarystyka", None, False, None, (), (), (), None, 0),
    ("AKW-POK", "Pokarm dla ryb", "AKW", False, 45,
     ("Tetra", "Sera", "JBL"), ("Pokarm płatkowany", "Granulat"), ("100 ml", "250 ml"),
     (999, 4499), 6),
    ("AKW-AKC", "Filtry i akcesoria", "AKW", False, None,
     ("Aquael", "Eheim", "JBL"), ("Filtr wewnętrzny", "Grzałka", "Oświetlenie LED"),
     ("",), (4999, 39999), 6),
    ("WET", "Zdrowie zwierząt", None, False, None, (), (), (), None, 0),
    ("WET-PCH", "Na pchły i kleszcze", "WET", False, 30,
     ("Frontline", "Advantix", "Bravecto", "Foresto"),
     ("Krople spot-on", "Obroża przeciw kleszczom", "Tabletki"), ("S", "M", "L"),
     (3999, 19999), 8),
)  # fmt: skip
CATALOGUES = {"sklep": ("SK", SKLEP_CATALOGUE), "zoo": ("ZOO", ZOO_CATALOGUE)}

PAYMENTS = (
    ("BLIK", 38),
    ("Przelewy24", 24),
    ("karta", 16),
    ("pobranie", 12),
    ("PayPal", 10),
)
SHIPPING = (  # method, price in grosze, weight
    ("InPost Paczkomat", 1399, 52),
    ("InPost Kurier", 1699, 9),
    ("DPD", 1799, 12),
    ("DHL", 1899, 8),
    ("Poczta Polska", 1499, 11),
    ("odbiór osobisty", 0, 8),
)
FREE_SHIPPING_FROM = {"sklep": 19900, "zoo": 14900}
COD_FEE = 500
EUR_RATE = 4.3
SOURCES = (("www", 72), ("app", 22), ("telefon", 6))
LINE_COUNTS = (1, 2, 3, 4, 5)
LINE_WEIGHTS = (46, 28, 14, 8, 4)
HOUR = 3600
DAY = 86400


@dataclass(slots=True)
class _Item:
    id: int
    sku: str
    name: str
    category_id: int | None
    price: int  # grosze
    replenishment_days: int | None


def demo_seed_app(run: DemoRun) -> None:
    """Seed the catalogue of each demo store and the orders of the run's buyers."""
    catalogue = {code: _catalogue(run, code) for code in run.stores}
    _orders(run, catalogue)


def _catalogue(run: DemoRun, code: str) -> tuple[list[_Item], list[float]]:
    """Create the store's categories and products once; return them with popularity."""
    store = run.stores[code]
    sku_prefix, nodes = CATALOGUES[code]
    rng = random.Random(f"catalogue-{code}")  # noqa: S311 - the same catalogue every run
    categories: dict[str, Category] = {}
    products = []
    for (
        ext_id,
        name,
        parent,
        sensitive,
        days,
        brands,
        bases,
        variants,
        prices,
        count,
    ) in nodes:
        category, _ = Category.objects.get_or_create(
            store=store,
            external_id=ext_id,
            defaults={
                "name": name,
                "parent": categories.get(parent),
                "is_sensitive": sensitive,
            },
        )
        categories[ext_id] = category
        combos = [(b, n, v) for b in brands for n in bases for v in variants]
        for number, (brand, base, variant) in enumerate(
            rng.sample(combos, min(count, len(combos))), start=1
        ):
            low, high = prices
            price = max(low, (rng.randint(low, high) // 100) * 100 + 99)
            sku = f"{sku_prefix}-{ext_id}-{number:03d}"
            products.append(
                Product(
                    store=store,
                    external_id=sku,
                    sku=sku,
                    name=" ".join(filter(None, (brand, base, variant))),
                    brand=brand,
                    category=category,
                    price=f"{price // 100}.{price % 100:02d}",
                    currency=store.currency,
                    replenishment_days=days,
                    is_sensitive=sensitive,
                )
            )
    Product.objects.bulk_create(products, ignore_conflicts=True)
    items, weights = [], []
    for product in Product.objects.filter(store=store, is_active=True).order_by("sku"):
        items.append(
            _Item(
                id=product.pk,
                sku=product.sku,
                name=product.name,
                category_id=product.category_id,
                price=int(product.price * 100),
                replenishment_days=product.replenishment_days,
            )
        )
        weights.append(rng.paretovariate(1.3))
    cum, total = [], 0.0
    for weight in weights:
        total += weight
        cum.append(total)
    run.counts[f"products_{code}"] = len(items)
    return items, cum


def _pick(rng: random.Random, values, cum):
    return values[min(bisect_left(cum, rng.random() * cum[-1]), len(values) - 1)]


def _order_times(
    run: DemoRun, customer: DemoCustomer, rng: random.Random
) -> list[float]:
    """When the customer orders: once, a few times, or often (Pareto tail)."""
    calendar = run.calendar
    first = customer.first_order_ts
    roll = rng.random()
    if roll < 0.5:
        count = 1
    elif roll < 0.86:
        count = rng.randint(2, 3)
    else:
        count = min(80, 5 + int(rng.paretovariate(0.9) * 3))
    first_day = calendar.day_of(first)
    lifetime = int(rng.expovariate(1 / 420)) + 60
    # Orders that would fall after today are the customer's future: drop them, so
    # recent buyers do not cram a lifetime of orders into their first weeks.
    reach = (len(calendar) - 1 - first_day) / lifetime
    times = [first]
    for _ in range(count - 1):
        if rng.random() > reach:
            continue
        day = calendar.day(rng, first_day, first_day + lifetime)
        times.append(max(first + HOUR, calendar.moment(rng, day)))
    return sorted(t for t in times if t < calendar.now_ts)


def _replenishment_times(
    run: DemoRun, customer: DemoCustomer, item: _Item, rng: random.Random
) -> list[float]:
    """A replenishment buyer reorders every ``replenishment_days``, give or take."""
    now = run.calendar.now_ts
    times, ts = [], customer.first_order_ts
    while ts < now and len(times) < 80:
        times.append(ts)
        if rng.random() < 0.04:  # switched shop or stopped needing it
            break
        ts += item.replenishment_days * DAY * rng.uniform(0.85, 1.25)
    return times


def _timeline(
    placed: float, payment: str, now: float, rng: random.Random
) -> tuple[str, list[float | None]]:
    """Status and paid/shipped/delivered/cancelled/returned times for an order's age."""
    if rng.random() < 0.05:
        cancelled = placed + rng.uniform(HOUR, 7 * DAY)
        if cancelled <= now:
            return "cancelled", [None, None, None, cancelled, None]
        return "new", [None, None, None, None, None]
    cod = payment == "pobranie"
    paid = None if cod else placed + rng.uniform(30, 1800)
    shipped = (paid or placed) + rng.uniform(3 * HOUR, 2.5 * DAY)
    delivered = shipped + rng.uniform(12 * HOUR, 3 * DAY)
    returned = (
        delivered + rng.uniform(2 * DAY, 14 * DAY) if rng.random() < 0.035 else None
    )
    if cod:
        paid = delivered
    if returned is not None and returned <= now:
        return "returned", [paid, shipped, delivered, None, returned]
    if delivered <= now:
        return "delivered", [paid, shipped, delivered, None, None]
    if shipped <= now:
        return "shipped", [None if cod else paid, shipped, None, None, None]
    if paid is not None and not cod and paid <= now:
        return "paid", [paid, None, None, None, None]
    return "new", [None, None, None, None, None]


def _coupon(run: DemoRun, placed: float, code: str, first: bool, rng: random.Random):
    """A coupon code and its percentage, or ``("", 0)``."""
    day = run.calendar.dates[run.calendar.day_of(placed)]
    in_black_week = any(
        0 <= (day - bf).days + 4 <= 7 for bf in run.calendar.black_fridays
    )
    if in_black_week and rng.random() < 0.4:
        return "BLACKFRIDAY25", 25
    if first and rng.random() < 0.2:
        return "WITAJ10", 10
    if rng.random() < 0.07:
        if day.month in (6, 7, 8):
            return "LATO15", 15
        if day.month == 12 and day.day <= 20:
            return "SWIETA15", 15
        return ("ZOO10", 10) if code == "zoo" else ("NEWSLETTER10", 10)
    return "", 0


ORDER_FIELDS = (
    "id", "store_id", "external_id", "number", "customer_id", "status", "placed_at",
    "paid_at", "shipped_at", "delivered_at", "cancelled_at", "returned_at", "currency",
    "subtotal", "discount_total", "shipping_total", "total", "payment_method",
    "shipping_method", "coupon_code", "source", "utm_source", "utm_medium",
    "utm_campaign", "billing_address", "shipping_address", "created_at", "updated_at",
)  # fmt: skip
LINE_FIELDS = (
    "order_id", "position", "product_id", "sku", "name", "category_id", "quantity",
    "unit_price", "total",
)  # fmt: skip


def _price(item: _Item) -> int:
    return item.price


def _dt(ts: float | None):
    return None if ts is None else as_datetime(ts)


def _money(grosze: int) -> str:
    return f"{grosze // 100}.{grosze % 100:02d}"


def _orders(
    run: DemoRun, catalogue: dict[str, tuple[list[_Item], list[float]]]
) -> None:
    rng, now = run.rng, run.calendar.now_ts
    payments = ([p for p, _ in PAYMENTS], _cum(w for _, w in PAYMENTS))
    shipping = ([s[:2] for s in SHIPPING], _cum(s[2] for s in SHIPPING))
    sources = ([s for s, _ in SOURCES], _cum(w for _, w in SOURCES))
    replenishable = {
        code: [item for item in items if item.replenishment_days]
        for code, (items, _) in catalogue.items()
    }
    orders: list[list] = []  # rows without ids yet
    lines: list[tuple] = []  # (order index, position, item, quantity, unit price)
    buyers = 0
    for customer in run.customers:
        if not customer.is_buyer:
            continue
        buyers += 1
        plans: list[tuple[float, str, _Item | None]] = []
        if rng.random() < 0.12:
            code = rng.choice(customer.store_codes)
            item = rng.choice(replenishable[code])
            plans = [
                (ts, code, item)
                for ts in _replenishment_times(run, customer, item, rng)
            ]
        else:
            for ts in _order_times(run, customer, rng):
                code = customer.store_codes[0]
                if len(customer.store_codes) > 1 and rng.random() < 0.35:
                    code = customer.store_codes[1]
                plans.append((ts, code, None))
        # Frequent buyers also buy bigger baskets of dearer things: with the order
        # counts this gives the 80/20 revenue split.
        appetite = rng.lognormvariate(0, 1.0) * (1.5 if len(plans) > 4 else 1.0)
        first_source, first_medium, first_campaign = customer.acquisition
        for number, (placed, code, staple) in enumerate(plans):
            items, cum = catalogue[code]
            eur = customer.abroad
            chosen = []
            if staple is not None:
                chosen.append((staple, rng.choice((1, 1, 1, 2))))
            count = rng.choices(LINE_COUNTS, LINE_WEIGHTS)[0]
            if staple is not None:
                count = rng.choice((0, 0, 1, 1, 2))
            count = min(5 - len(chosen), max(0, round(count * min(appetite, 2.5))))
            if not chosen and count == 0:
                count = 1
            seen = {item.id for item, _ in chosen}
            for _ in range(count):
                item = _pick(rng, items, cum)
                if appetite > 1.5:
                    item = max(item, _pick(rng, items, cum), key=_price)
                if item.id in seen:
                    continue
                seen.add(item.id)
                quantity = (
                    1 if rng.random() < 0.8 else rng.randint(2, 2 + int(appetite * 2))
                )
                chosen.append((item, quantity))
            index = len(orders)
            subtotal = 0
            for position, (item, quantity) in enumerate(chosen, start=1):
                unit = round(item.price / EUR_RATE) if eur else item.price
                subtotal += unit * quantity
                lines.append((index, position, item, quantity, unit))
            payment = _pick(rng, *payments)
            method, ship_price = ("DHL", 1499) if eur else _pick(rng, *shipping)
            free_from = 10000 if eur else FREE_SHIPPING_FROM[code]
            ship = 0 if subtotal >= free_from else ship_price
            if payment == "pobranie" and not eur and method != "odbiór osobisty":
                ship += COD_FEE
            coupon, percent = _coupon(run, placed, code, number == 0, rng)
            discount = subtotal * percent // 100
            status, (paid, shipped, delivered, cancelled, returned) = _timeline(
                placed, payment, now, rng
            )
            if number == 0 and first_medium:
                utm = (first_source, first_medium, first_campaign)
            elif rng.random() < 0.35:
                utm = rng.choice(
                    (
                        (
                            "newsletter",
                            "email",
                            f"newsletter_{as_datetime(placed):%Y_%m}",
                        ),
                        ("google", "cpc", "pla_shopping"),
                        ("facebook", "paid_social", "retargeting_koszyk"),
                        ("sms", "sms", "sms_promocja"),
                    )
                )
            else:
                utm = ("", "", "")
            last_change = max(
                t for t in (placed, paid, shipped, delivered, cancelled, returned) if t
            )
            orders.append(
                [
                    None, run.stores[code].pk, code, customer.id, status,
                    as_datetime(placed), _dt(paid), _dt(shipped), _dt(delivered),
                    _dt(cancelled), _dt(returned),
                    "EUR" if eur else run.stores[code].currency, _money(subtotal),
                    _money(discount), _money(ship), _money(subtotal - discount + ship),
                    payment, method, coupon, _pick(rng, *sources), *utm,
                    customer.billing_json, customer.shipping_json, as_datetime(placed),
                    as_datetime(last_change),
                ]
            )  # fmt: skip
    run.log(f"Generated {len(orders)} orders for {buyers} buyers; copying")
    ids = reserve_ids(Order, len(orders))
    prefixes = {"sklep": "ZAM", "zoo": "ZOO"}

    def order_rows():
        for order_id, row in zip(ids, orders, strict=True):
            code = row[2]
            yield (
                order_id, row[1], str(order_id),
                f"{prefixes[code]}/{row[5].year}/{order_id:06d}", *row[3:],
            )  # fmt: skip

    def line_rows():
        for index, position, item, quantity, unit in lines:
            yield (
                ids[index], position, item.id, item.sku, item.name, item.category_id,
                quantity, _money(unit), _money(unit * quantity),
            )  # fmt: skip

    run.tables += [Order._meta.db_table, OrderLine._meta.db_table]
    run.counts["orders"] = copy_model(Order, ORDER_FIELDS, order_rows())
    run.counts["order_lines"] = copy_model(OrderLine, LINE_FIELDS, line_rows())
    run.log(f"Orders: {run.counts['orders']}, lines: {run.counts['order_lines']}")
    _interactions(run, ids, orders)


# The support log (customers.Interaction) about the orders: returns, complaints,
# reviews, and questions before buying.
COMPLAINTS = (
    ("Uszkodzona paczka", "Karton był zgnieciony, jeden produkt pęknięty."),
    ("Niezgodny towar", "Przyszedł inny rozmiar niż zamówiony."),
    ("Brak produktu w paczce", "W paczce zabrakło jednej pozycji z zamówienia."),
    ("Wada produktu", "Po tygodniu używania produkt przestał działać."),
)
RETURNS = (
    ("Zwrot w terminie 14 dni", "Odstępuję od umowy, produkt nie spełnił oczekiwań."),
    ("Zwrot: zły rozmiar", "Proszę o zwrot pieniędzy, rozmiar nie pasuje."),
)
REVIEWS = (
    (5, "Szybka dostawa, wszystko w porządku. Polecam!"),
    (5, "Świetny kontakt ze sklepem."),
    (4, "Dobry produkt, dostawa dzień później niż obiecano."),
    (3, "Produkt w porządku, opakowanie mogłoby być lepsze."),
    (2, "Kurier się spóźnił, a produkt był porysowany."),
)
INQUIRIES = (
    ("Termin dostawy", "Klientka pyta, kiedy wyślemy zamówienie."),
    ("Faktura na firmę", "Klient prosi o fakturę z NIP do zamówienia."),
    ("Dostępność produktu", "Pytanie, czy produkt wróci na stan w tym miesiącu."),
)
INTERACTION_FIELDS = (
    "customer_id", "store_id", "kind", "channel", "direction", "subject", "body",
    "order_id", "occurred_at", "status", "due_at", "resolved_at", "rating",
    "rating_scale", "external_id", "created_at", "updated_at",
)  # fmt: skip


def _interactions(run: DemoRun, ids: list[int], orders: list[list]) -> None:
    rng, now = run.rng, run.calendar.now_ts
    rows = []

    def add(customer_id, store_id, kind, channel, text, order_id, at, **extra):
        subject, body = text
        status = extra.get("status", "")
        resolved = extra.get("resolved")
        rows.append(
            (
                customer_id, store_id, kind, channel, "inbound", subject, body,
                order_id, as_datetime(at), status,
                answer_due(as_datetime(at)) if status else None, _dt(resolved),
                extra.get("rating"), "stars" if extra.get("rating") else "", "",
                as_datetime(at), as_datetime(resolved or at),
            )
        )  # fmt: skip

    def follow_up(at: float) -> tuple[str, float | None]:
        """Old ones are settled (mostly accepted); recent ones still pending."""
        answered = at + rng.uniform(1, 16) * DAY
        if answered > now:
            return rng.choice(("open", "open", "waiting")), None
        return ("resolved" if rng.random() < 0.8 else "rejected"), answered

    for order_id, row in zip(ids, orders, strict=True):
        store_id, customer_id, status = row[1], row[3], row[4]
        delivered, returned = row[8], row[10]
        if status == "returned" and returned is not None:
            at = returned.timestamp()
            state, resolved = follow_up(at)
            add(customer_id, store_id, "return", "email", rng.choice(RETURNS),
                order_id, at, status=state, resolved=resolved)  # fmt: skip
        if delivered is None:
            continue
        if rng.random() < 0.012:
            at = delivered.timestamp() + rng.uniform(1, 20) * DAY
            if at < now:
                state, resolved = follow_up(at)
                channel = rng.choice(("email", "phone", "chat"))
                add(customer_id, store_id, "complaint", channel,
                    rng.choice(COMPLAINTS), order_id, at, status=state,
                    resolved=resolved)  # fmt: skip
        if rng.random() < 0.04:
            at = delivered.timestamp() + rng.uniform(1, 10) * DAY
            if at < now:
                stars, text = rng.choice(REVIEWS)
                add(customer_id, store_id, "review", "website",
                    ("Opinia", text), order_id, at, rating=stars)  # fmt: skip
        if rng.random() < 0.02:
            at = delivered.timestamp() - rng.uniform(1, 3) * DAY
            add(customer_id, store_id, "inquiry", rng.choice(("phone", "email")),
                rng.choice(INQUIRIES), order_id, at)  # fmt: skip
    run.tables.append(Interaction._meta.db_table)
    run.counts["interactions"] = copy_model(Interaction, INTERACTION_FIELDS, rows)
    run.log(f"Interactions: {run.counts['interactions']}")


def _cum(weights) -> list[float]:
    cum, total = [], 0.0
    for weight in weights:
        total += weight
        cum.append(total)
    return cum
