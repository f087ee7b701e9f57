"""Paginators for lists over big tables (admin changelists, autocomplete).

Django's paginator runs ``SELECT COUNT(*)`` over the whole result, which on PostgreSQL
reads every row: seconds on a million customers, on every changelist page load.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property


def table_row_estimate(queryset: QuerySet) -> int | None:
    """Return the planner's row estimate for the queryset's table, None if unknown."""
    connection = connections[queryset.db]
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [table],
        )
        row = cursor.fetchone()
    # reltuples is -1 for a table never vacuumed or analysed.
    if row is None or row[0] is None or row[0] < 0:
        return None
    return int(row[0])


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts a big table in full.

    - Unfiltered queryset on a table the planner knows to be big: the ``pg_class``
      estimate (refreshed by autovacuum; close enough for page links).
    - Anything else (filtered, or a small table): a count that stops at
      ``count_limit`` rows, so a broad filter costs at most that many index entries.
      Past the limit the list shows ``count_limit`` rows' worth of pages, which is
      more than anyone clicks through; staff narrow the list with search and filters.
    """

    count_limit = 10_000

    def __init__(self, *args: Any, whole_table: bool = False, **kwargs: Any) -> None:
        # The caller knows the list is the whole table but for a handful of rows
        # (the customer list leaves out merged-away records): estimate it too.
        self.whole_table = whole_table
        super().__init__(*args, **kwargs)

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        query = queryset.query
        unfiltered = self.whole_table or (
            not query.where and not query.combinator and not query.is_sliced
        )
        if unfiltered:
            estimate = table_row_estimate(queryset)
            if estimate is not None and estimate > self.count_limit:
                return estimate
        # Ordering is irrelevant to a count and may force a sort of every match.
        return queryset.order_by().values("pk")[: self.count_limit + 1].count()


class PageLinks:
    """Previous/next links of a page that knows its number and whether more follow.

    For pages found without counting (``number``, ``has_next``): what Django's
    ``Page`` offers the pagination partial, minus the page count.
    """

    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_other_pages(self) -> bool:
        return self.has_next or self.has_previous

    @property
    def next_page_number(self) -> int:
        return self.number + 1

    @property
    def previous_page_number(self) -> int:
        return self.number - 1
