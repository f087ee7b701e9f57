"""Products for a message's ``{{ recommendations }}`` block.

A customer who may be profiled gets the best sellers of their favourite categories
that they have not ordered yet, filled up with the shop's best sellers they have
not ordered either. Everyone else gets the shop's best sellers, the same list for
all. Never a sensitive product, nor one in a sensitive category.

Definitions:

- best sellers: active products, neither sensitive nor in a sensitive category,
  by quantity sold in revenue orders (``Order.REVENUE_STATUSES``) over the last
  ``days``, ties by product id. A product not sold in that time is not one;
- may be profiled: not erased, not restricted, no objection to profiling and,
  while the "profiling" purpose's legal basis is consent (as seeded), a granted
  profiling consent;
- favourite categories: the customer's three categories on the most order lines
  of revenue orders (ties: the lowest id), ignoring sensitive products and
  categories. The block takes one product from each in turn, most favourite first;
- ordered already: a product on any order of the customer, whatever its status.

A Recommender reads the best sellers once (one query) and then one query per
customer; build one per sending batch. Prices are formatted in the product's
currency for the customer's language.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from decimal import Decimal

from django.db import connection
from django.utils import formats, timezone, translation

from campaigns.rendering import Recommendation
from consents.models import ConsentPurpose, ConsentState
from customers.models import Customer
from orders.models import Order

FAVOURITE_CATEGORIES = 3
# Candidates kept per category and overall: enough to skip what a customer has
# ordered already.
DEPTH_PER_ITEM = 5

# Short symbols; any other currency shows its ISO code after the amount.
CURRENCY_SYMBOLS = {"PLN": "zł", "EUR": "€", "USD": "$", "GBP": "£"}
# Written before the amount ("€12.50"), except in languages that put every
# symbol after it ("12,50 €"). "zł" always follows the amount.
SYMBOL_FIRST = frozenset({"EUR", "USD", "GBP"})
SYMBOL_AFTER_LANGUAGES = frozenset({"pl"})

_BEST_SELLERS = """
WITH sold AS (
    SELECT l.product_id, sum(l.quantity) AS quantity
    FROM orders_order o
    JOIN orders_orderline l ON l.order_id = o.id
    WHERE o.status = ANY(%(statuses)s)
        AND o.placed_at > %(since)s AND o.placed_at <= %(until)s
        AND l.product_id IS NOT NULL
    GROUP BY l.product_id
),
ranked AS (
    SELECT p.id, p.category_id, p.name, p.price, p.currency, p.url, p.image_url,
        row_number() OVER (
            PARTITION BY p.category_id ORDER BY s.quantity DESC, p.id
        ) AS in_category,
        row_number() OVER (ORDER BY s.quantity DESC, p.id) AS overall
    FROM sold s
    JOIN orders_product p ON p.id = s.product_id
    LEFT JOIN orders_category c ON c.id = p.category_id
    WHERE p.is_active AND NOT p.is_sensitive AND NOT coalesce(c.is_sensitive, false)
)
SELECT id, category_id, name, price, currency, url, image_url, in_category, overall
FROM ranked
WHERE in_category <= %(depth)s OR overall <= %(depth)s
ORDER BY overall
"""

# Whether the customer may be profiled, as the database has it now, and only then
# their history: a customer who may not be profiled has none of it read.
_CUSTOMER = """
WITH allowed AS (
    SELECT cu.erased_at IS NULL AND cu.restricted_at IS NULL
        AND cu.profiling_objection_at IS NULL
        AND (NOT %(needs_consent)s OR EXISTS (
            SELECT 1 FROM consents_consentstate s
            WHERE s.customer_id = cu.id AND s.purpose_id = %(purpose)s
                AND s.granted
        )) AS ok
    FROM customers_customer cu
    WHERE cu.id = %(customer)s
),
lines AS (
    SELECT l.product_id, l.category_id,
        o.status = ANY(%(statuses)s) AS counts,
        coalesce(p.is_sensitive, false) OR coalesce(lc.is_sensitive, false)
            OR coalesce(pc.is_sensitive, false) AS sensitive
    FROM orders_order o
    JOIN orders_orderline l ON l.order_id = o.id
    LEFT JOIN orders_product p ON p.id = l.product_id
    LEFT JOIN orders_category lc ON lc.id = l.category_id
    LEFT JOIN orders_category pc ON pc.id = p.category_id
    WHERE o.customer_id = %(customer)s AND (SELECT ok FROM allowed)
)
SELECT coalesce((SELECT ok FROM allowed), false),
    ARRAY(
        SELECT category_id FROM lines
        WHERE counts AND NOT sensitive AND category_id IS NOT NULL
        GROUP BY category_id
        ORDER BY count(*) DESC, category_id
        LIMIT %(favourites)s
    ),
    ARRAY(SELECT DISTINCT product_id FROM lines WHERE product_id IS NOT NULL)
"""


def price_format(amount: Decimal, currency: str, *, language: str) -> str:
    """An amount in ``language``'s notation with the currency's short symbol."""
    with translation.override(language):
        number = formats.number_format(amount, 2, use_l10n=True, force_grouping=True)
    # Plain spaces: a non-breaking one (Polish groups digits with it) would turn
    # an SMS into UCS-2 on its own.
    number = number.replace("\u00a0", " ")
    symbol = CURRENCY_SYMBOLS.get(currency, currency)
    if currency in SYMBOL_FIRST and language not in SYMBOL_AFTER_LANGUAGES:
        return f"{symbol}{number}"
    return f"{number} {symbol}"


def profiling_rule() -> tuple[int | None, bool]:
    """The profiling purpose's id, and whether personalising needs it granted.

    Personalising a message is profiling. On the consent basis it needs the
    consent granted; on another basis (legitimate interest) only no objection.
    Without the purpose (an unseeded database) nobody can have consented.
    """
    purpose = (
        ConsentPurpose.objects.filter(code=ConsentPurpose.Code.PROFILING)
        .values("pk", "legal_basis")
        .first()
    )
    if purpose is None:
        return None, True
    return purpose["pk"], purpose["legal_basis"] == ConsentPurpose.LegalBasis.CONSENT


def may_personalise(customer: Customer) -> bool:
    """Whether one customer's messages may use their history (previews, tests)."""
    if not _may_be_profiled(customer):
        return False
    purpose_id, needs_consent = profiling_rule()
    if not needs_consent:
        return True
    return (
        purpose_id is not None
        and ConsentState.objects.filter(
            customer=customer, purpose_id=purpose_id, granted=True
        ).exists()
    )


def _may_be_profiled(customer: Customer) -> bool:
    # What the customer row says; the consent is checked in the customer query.
    return (
        customer.erased_at is None
        and customer.restricted_at is None
        and customer.profiling_objection_at is None
    )


def _round_robin(queues: Iterable[Iterable[int]]) -> Iterator[int]:
    """The first of each queue in turn, then the second of each, and so on."""
    iterators = [iter(queue) for queue in queues]
    while iterators:
        for iterator in list(iterators):
            item = next(iterator, None)
            if item is None:
                iterators.remove(iterator)
            else:
                yield item


class Recommender:
    """Built once per sending batch; .for_customer() is one query per customer."""

    def __init__(
        self, *, limit: int = 3, days: int = 90, now: dt.datetime | None = None
    ) -> None:
        self.limit = limit
        until = now or timezone.now()
        self._purpose_id, self._needs_consent = profiling_rule()
        depth = max(limit, 0) * DEPTH_PER_ITEM
        self._products: dict[int, tuple[str, Decimal, str, str, str]] = {}
        self._by_category: dict[int, list[int]] = {}
        self._overall: list[int] = []
        with connection.cursor() as cursor:
            cursor.execute(
                _BEST_SELLERS,
                {
                    "statuses": list(Order.REVENUE_STATUSES),
                    "since": until - dt.timedelta(days=days),
                    "until": until,
                    "depth": depth,
                },
            )
            rows = cursor.fetchall()
        # Ranked overall, so each category's list comes in its own order too.
        for pk, category_id, *card, in_category, overall in rows:
            self._products[pk] = tuple(card)
            if category_id is not None and in_category <= depth:
                self._by_category.setdefault(category_id, []).append(pk)
            if overall <= depth:
                self._overall.append(pk)
        self._cards: dict[tuple[int, str], Recommendation] = {}

    def for_customer(self, customer: Customer) -> list[Recommendation]:
        """Up to ``limit`` products for this customer (an empty list if none)."""
        if not self._products or self.limit <= 0:
            return []
        if not _may_be_profiled(customer):
            return self._best_sellers(customer)
        with connection.cursor() as cursor:
            cursor.execute(
                _CUSTOMER,
                {
                    "customer": customer.pk,
                    "needs_consent": self._needs_consent,
                    "purpose": self._purpose_id,
                    "statuses": list(Order.REVENUE_STATUSES),
                    "favourites": FAVOURITE_CATEGORIES,
                },
            )
            allowed, favourites, ordered = cursor.fetchone()
        if not allowed:
            return self._best_sellers(customer)
        skip = set(ordered)
        # Ordered products leave each queue first, so every favourite category
        # really gets its turn.
        queues = [
            [pk for pk in self._by_category.get(category_id, ()) if pk not in skip]
            for category_id in favourites
        ]
        chosen: list[int] = []
        for pk in (*_round_robin(queues), *self._overall):
            if len(chosen) == self.limit:
                break
            if pk not in skip:
                chosen.append(pk)
                skip.add(pk)
        return [self._card(pk, customer.language) for pk in chosen]

    def _best_sellers(self, customer: Customer) -> list[Recommendation]:
        # The same list for everyone, what the customer ordered included: leaving
        # that out would tailor the message to their purchase history, the very
        # processing they objected to, did not consent to, or had restricted.
        return [self._card(pk, customer.language) for pk in self._overall[: self.limit]]

    def _card(self, pk: int, language: str) -> Recommendation:
        card = self._cards.get((pk, language))
        if card is None:
            name, price, currency, url, image_url = self._products[pk]
            card = self._cards[pk, language] = Recommendation(
                name=name,
                price=price_format(price, currency, language=language),
                url=url,
                image_url=image_url,
            )
        return card


def recommendations_for(customer: Customer, *, limit: int = 3) -> list[Recommendation]:
    """One customer's block (previews, test sends)."""
    return Recommender(limit=limit).for_customer(customer)
