"""The header search box's live results: a short list for htmx, as the user types.

Support staff type an email, a phone in any format, a name, an order number or an
external id into one box on every staff page; htmx asks ``customers:search`` after
each pause and puts the answer under the box. The rule of what matches is
``CustomerQuerySet.search``; this view only decides what comes first and how much
is shown. A million customers are never sorted or counted: exact matches (email,
phone, order, external id) come first, then name matches in whatever order the
index gives them, a few of each; "show all results" opens the customer list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlencode

import psycopg
from django.db import OperationalError, connection, transaction
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views import View

from customers.models import Address, Customer
from customers.models.customer import CustomerSearchTerms
from customers.views import StaffPageMixin, is_htmx

# Results under the box; the rest is one click away in the customer list.
LIVE_SEARCH_LIMIT = 8
# The longest query taken: an email may have 254 characters; beyond that no field
# can match and the query is someone's clipboard.
QUERY_MAX_LENGTH = 254
# The database time the partial matches may take, in ms. Nearly every query needs a
# few ms; one whose words resemble many names and match none ("nowakowa": every
# Nowakowska is a trigram candidate, each checked against the folded text) needs a
# few hundred on a million customers. Then the box says so and Enter searches all;
# the search keystrokes abandon (hx-sync) must not keep the database busy either.
PARTIAL_MATCHES_BUDGET_MS = 60

T = TypeVar("T")


@dataclass(frozen=True)
class LiveSearchResult:
    customer: Customer
    exact: bool
    order_number: str = ""


@dataclass
class LiveSearchResults:
    results: list[LiveSearchResult] = field(default_factory=list)
    # The partial matches took longer than PARTIAL_MATCHES_BUDGET_MS: not shown.
    partial_timed_out: bool = False


def within_budget(fetch: Callable[[], T], *, ms: int) -> tuple[T | None, bool]:
    """``fetch()`` with PostgreSQL's statement_timeout at ``ms``; (result, timed out).

    The timeout is set inside a savepoint and rolled back with it, so it ends here
    whether ``fetch`` ran or was cancelled, and the request's transaction goes on.
    """
    with transaction.atomic(savepoint=False):
        savepoint = transaction.savepoint()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, true)", [f"{ms}ms"]
                )
            return fetch(), False
        except OperationalError as error:
            if not isinstance(error.__cause__, psycopg.errors.QueryCanceled):
                raise
            return None, True
        finally:
            _rollback_within_budget(savepoint)


def _rollback_within_budget(savepoint: str, attempts: int = 3) -> None:
    """Roll back to ``savepoint``, which restores the statement timeout.

    Until it has, the budget applies to every statement, the rollback included: on
    a server starved of CPU (seen at 32 busy users on two cores) even that can run
    out of time. Rolling back to a savepoint is safe to repeat.
    """
    for attempt in range(attempts):
        try:
            transaction.savepoint_rollback(savepoint)
            return
        except OperationalError as error:
            cancelled = isinstance(error.__cause__, psycopg.errors.QueryCanceled)
            if not cancelled or attempt == attempts - 1:
                raise


def live_search_results(
    query: str, *, limit: int = LIVE_SEARCH_LIMIT
) -> LiveSearchResults:
    """At most ``limit`` customers for ``query``: exact matches first, no sorting.

    At most three queries: order numbers and external ids resolved (one UNION),
    the exact matches (email, phone, those ids; unique and btree indexes), and as
    many partial matches (names, phone digits; trigram indexes) as there is room
    for, in the index's order: a LIMIT without ORDER BY stops at the first rows
    found instead of sorting every "Anna" in the base. The partial matches have a
    time budget (``PARTIAL_MATCHES_BUDGET_MS``).
    """
    terms = CustomerSearchTerms.parse(query)
    customers = Customer.objects.order_by().only(
        "first_name", "last_name", "company", "email", "phone"
    )
    # The city of the address a parcel would go to: a lookup per row shown, on
    # address_customer_idx, evaluated only for the rows the LIMIT lets through.
    customers = customers.annotate(
        city=Subquery(
            Address.objects.filter(customer=OuterRef("pk"))
            .order_by("-is_default", "-kind", "-updated_at")
            .values("city")[:1]
        )
    )
    found = LiveSearchResults()
    results = found.results
    if terms.exact:
        exact = list(terms.apply(customers, partial=False)[:limit])
        results += [
            LiveSearchResult(
                customer=customer,
                exact=True,
                order_number=terms.order_numbers.get(customer.pk, ""),
            )
            for customer in exact
        ]
    room = limit - len(results)
    if terms.partial and room > 0:
        partial = terms.apply(customers, exact=False)
        if results:
            partial = partial.exclude(pk__in=[r.customer.pk for r in results])
        rows, found.partial_timed_out = within_budget(
            lambda: list(partial[:room]), ms=PARTIAL_MATCHES_BUDGET_MS
        )
        results += [
            LiveSearchResult(customer=customer, exact=False) for customer in rows or []
        ]
    return found


class CustomerSearchView(StaffPageMixin, View):
    """``GET ?q=``: the live results fragment (htmx); others go to the full list."""

    permission_required = "customers.view_customer"
    template_name = "customers/search_results.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        query = request.GET.get("q", "").strip()[:QUERY_MAX_LENGTH]
        if not is_htmx(request):
            # A bookmarked or opened-in-a-new-tab fragment URL: the page it stands for.
            url = reverse("customers:list")
            if query:
                url = f"{url}?{urlencode({'q': query})}"
            response: HttpResponse = HttpResponseRedirect(url)
        else:
            response = render(
                request,
                self.template_name,
                {
                    "query": query,
                    "found": live_search_results(query) if query else None,
                },
            )
        # Personal data, and a fragment or a redirect by the same URL: never cached,
        # and never the one for the other.
        patch_vary_headers(response, ["HX-Request"])
        add_never_cache_headers(response)
        return response
