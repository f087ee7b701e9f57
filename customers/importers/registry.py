"""Which importer runs for each kind of file: customers, orders, consents.

The import command, the wizard and its Celery task only know kinds by name. Each
app registers the kinds it owns from its ``AppConfig.ready()``, so ``customers``
(leftmost in the layering) can run an orders or consents import without importing
the apps to its right. A later registration of the same kind replaces the earlier
one: the consents app re-registers ``customers`` to record the consent columns of
a customers file in the same transaction.

Every runner takes the same keyword arguments as
:func:`customers.importers.customers.customers_import` (``source``, ``store``,
``format``, ``dry_run``, ``on_error``, ``progress``, ``actor``) and returns an
:class:`~customers.importers.customers.ImportResult`; bad input raises
``ValidationError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils.functional import Promise


@dataclass(frozen=True)
class ImportKind:
    name: str  # one of customers.importers.formats.KINDS
    label: str | Promise
    run: Callable[..., Any]  # -> ImportResult
    # The permission a user needs to run it (``app_label.codename``).
    permission: str


_KINDS: dict[str, ImportKind] = {}


def register(kind: ImportKind) -> None:
    """Make ``kind`` the importer for its name (replacing an earlier one)."""
    _KINDS[kind.name] = kind


def get(name: str) -> ImportKind:
    """The importer registered for ``name``; KeyError if there is none."""
    return _KINDS[name]


def registered() -> list[ImportKind]:
    """Every registered kind, in the order of ``formats.KINDS``."""
    from customers.importers.formats import KINDS

    return [_KINDS[name] for name in KINDS if name in _KINDS]
