"""The named RFM segments and the recency-by-frequency grid that defines them.

Scores run from 1 (lowest) to 5 (best): R 5 is the most recent buyers, F 5 the most
frequent. Each cell of the 5x5 grid belongs to one named segment; staff may move a
cell to another segment or rename a segment in the admin.
"""

from __future__ import annotations

from typing import Any

SEGMENT_COLORS = {
    "champions": "#15803d",
    "loyal": "#22c55e",
    "potential_loyalists": "#84cc16",
    "new_customers": "#0ea5e9",
    "promising": "#38bdf8",
    "need_attention": "#eab308",
    "about_to_sleep": "#f59e0b",
    "at_risk": "#f97316",
    "cant_lose_them": "#dc2626",
    "hibernating": "#94a3b8",
    "lost": "#475569",
}

# Rows are R from 5 down to 1, columns F from 1 to 5.
DEFAULT_GRID = (
    (
        "new_customers",
        "potential_loyalists",
        "potential_loyalists",
        "champions",
        "champions",
    ),
    ("promising", "potential_loyalists", "potential_loyalists", "loyal", "champions"),
    ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),
    ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose_them"),
    ("lost", "lost", "at_risk", "cant_lose_them", "cant_lose_them"),
)


def default_cells() -> dict[tuple[int, int], str]:
    """(recency, frequency) -> segment code, as shipped."""
    return {
        (5 - row, column + 1): code
        for row, codes in enumerate(DEFAULT_GRID)
        for column, code in enumerate(codes)
    }


def rfm_grid_ensure(apps: Any = None) -> None:
    """Create the named segments and the grid as shipped, where they are missing.

    Run by the data migration and before every recompute (a flushed test database
    has none). Existing rows, staff's edits included, are left alone.
    """
    if apps is None:
        from django.apps import apps as registry

        apps = registry
    segment_model = apps.get_model("segments", "RfmSegment")
    cell_model = apps.get_model("segments", "RfmCell")
    if cell_model.objects.count() == 25:
        return
    segments = {}
    for position, (code, color) in enumerate(SEGMENT_COLORS.items()):
        segments[code], _ = segment_model.objects.get_or_create(
            code=code, defaults={"color": color, "position": position}
        )
    for (recency, frequency), code in default_cells().items():
        cell_model.objects.get_or_create(
            recency=recency, frequency=frequency, defaults={"segment": segments[code]}
        )
