"""No form, serializer, filter or admin exposes "every field" of a model.

A model field added later (an internal flag, a hash, a note) must not become
writable or visible through a form or the API because a Meta said "all". Each
Meta names its fields. Two checks: the classes themselves, after importing every
module of the project, and a text scan of the sources as belt and braces
(``modelform_factory(..., fields=...)`` calls and classes never imported).
"""

import importlib
import pkgutil
import re
from pathlib import Path

import django_filters
from django import forms
from django.conf import settings
from django.contrib import admin
from rest_framework import serializers

ALL = "__" + "all" + "__"  # spelled so that the text scan below skips this file
PROJECT_PACKAGES = (
    "config",
    "customers",
    "orders",
    "consents",
    "segments",
    "campaigns",
)
# Entry points that start things rather than define them.
NOT_IMPORTED = {"config.wsgi", "config.asgi"}
SKIPPED_DIRECTORIES = {".venv", "node_modules", ".data", ".git", "migrations"}
FIELDS_ALL = re.compile(r"""\b(?:fields|exclude)\s*=\s*[(\[]?\s*["']__all__["']""")


def _import_project() -> list[str]:
    names = []
    for package_name in PROJECT_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            if ".migrations" in module.name or module.name in NOT_IMPORTED:
                continue
            if module.name.startswith("config.settings"):
                continue
            importlib.import_module(module.name)
            names.append(module.name)
    return names


def _subclasses(base: type):
    seen = set()
    stack = [base]
    while stack:
        for subclass in stack.pop().__subclasses__():
            if subclass not in seen:
                seen.add(subclass)
                stack.append(subclass)
                if subclass.__module__.split(".")[0] in PROJECT_PACKAGES:
                    yield subclass


def _meta_takes_all(cls) -> bool:
    meta = getattr(cls, "Meta", None)
    return ALL in (getattr(meta, "fields", None), getattr(meta, "exclude", None))


def test_the_project_imports_completely():
    """The class checks below see every module (nothing fails to import)."""
    modules = _import_project()
    assert any(name.endswith(".forms") for name in modules)
    assert any(name.endswith(".serializers") for name in modules)


def test_no_model_form_serializer_or_filter_takes_all_fields():
    _import_project()
    checked = {}
    for base in (
        forms.ModelForm,
        serializers.ModelSerializer,
        django_filters.FilterSet,
    ):
        classes = list(_subclasses(base))
        checked[base.__name__] = len(classes)
        offenders = [
            f"{cls.__module__}.{cls.__qualname__}"
            for cls in classes
            if _meta_takes_all(cls)
        ]
        assert not offenders, f"Meta with {ALL}: {offenders}"
    # The walk found the project's classes (a broken walk would pass vacuously).
    assert checked["ModelForm"] > 0
    assert checked["ModelSerializer"] > 0


def _ours(cls) -> bool:
    return cls.__module__.split(".")[0] in PROJECT_PACKAGES


def test_no_model_admin_takes_all_fields():
    """The project's admins, their inlines and their forms.

    Django's own (the stock UserAdmin, whose UserChangeForm says "all") are left
    out: the admin limits any form to its fieldsets anyway (``get_form``).
    """
    _import_project()
    offenders = []
    checked = 0
    for model, model_admin in admin.site._registry.items():
        for each in [model_admin, *model_admin.inlines]:
            if not _ours(each if isinstance(each, type) else type(each)):
                continue
            checked += 1
            name = f"{model.__name__}: {getattr(each, '__name__', type(each).__name__)}"
            if ALL in (getattr(each, "fields", None), getattr(each, "exclude", None)):
                offenders.append(name)
            if _ours(each.form) and _meta_takes_all(each.form):
                offenders.append(f"{name}.form")
    assert not offenders, offenders
    assert checked > 10


def _sources():
    for path in Path(settings.BASE_DIR).rglob("*.py"):
        if SKIPPED_DIRECTORIES.isdisjoint(path.parts):
            yield path


def test_no_source_assigns_all_fields():
    offenders = []
    scanned = 0
    for path in _sources():
        scanned += 1
        text = path.read_text(encoding="utf-8")
        for match in FIELDS_ALL.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            offenders.append(f"{path}:{line}: {match.group(0)}")
    assert not offenders, "\n".join(offenders)
    assert scanned > 50


def test_the_text_scan_catches_the_usual_spellings():
    for source in (
        f'    fields = "{ALL}"',
        f"fields='{ALL}'",
        f'form = modelform_factory(Customer, fields=("{ALL}"))',
        f'    exclude = ["{ALL}"]',
    ):
        assert FIELDS_ALL.search(source), source
    assert not FIELDS_ALL.search(f'__all__ = ["{ALL}"]')
    assert not FIELDS_ALL.search('fields = ["email", "name"]')
