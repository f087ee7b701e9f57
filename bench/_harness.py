"""Shared benchmark plumbing: a throw-away database, machine conditions, result files.

Every benchmark runs against its own freshly created database (``kartoteka_bench``)
on the server the settings point at (``DATABASE_URL`` or the embedded cluster), with
migrations applied, and the database is dropped afterwards, so the dev data is never
touched. Results go to ``bench/results/<name>.json`` as
``{"name", "value", "unit", "reference", "ratio", "conditions"}``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
BENCH_DATABASE = "kartoteka_bench"


def _admin_connection(database: dict):
    """Autocommit connection to the server's maintenance database."""
    import psycopg

    params = {
        "host": database.get("HOST") or None,
        "port": database.get("PORT") or None,
        "user": database.get("USER") or None,
        "password": database.get("PASSWORD") or None,
        "dbname": "postgres",
    }
    return psycopg.connect(
        autocommit=True, **{k: v for k, v in params.items() if v is not None}
    )


def _recreate(database: dict, name: str, *, create: bool) -> None:
    from psycopg import sql

    with _admin_connection(database) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@contextmanager
def bench_database(name: str = BENCH_DATABASE, *, keep: bool = False) -> Iterator[None]:
    """Set Django up on a fresh, migrated database ``name``; drop it afterwards."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    os.environ.setdefault("SECRET_KEY", "kartoteka-bench-only-not-a-secret")
    from django.conf import settings

    database = settings.DATABASES["default"]  # loads settings: starts embedded PG
    if database["NAME"] == name:
        raise RuntimeError(
            f"The settings already point at {name}; refusing to drop it."
        )
    _recreate(database, name, create=True)
    # Before django.setup(): connections read this dict on first use.
    database["NAME"] = name
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    try:
        call_command("migrate", verbosity=0, interactive=False)
        yield
    finally:
        connections.close_all()
        if not keep:
            _recreate(database, name, create=False)


def conditions(**extra: object) -> dict:
    """Machine, versions and database the figure was measured on, plus ``extra``."""
    import django
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    return {
        **extra,
        "machine": {
            "cores": os.cpu_count(),
            "ram_gb": _ram_gb(),
            "cpu": _cpu_model(),
            "platform": platform.platform(),
            "speed_ms": speed_ms(),
        },
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgresql": pg_version,
        "database": "DATABASE_URL" if "DATABASE_URL" in os.environ else "embedded",
        "commit": _commit(),
    }


def speed_ms() -> float:
    """CPU time of a fixed pure-Python loop, in ms: how fast this machine ran now.

    A shared virtual machine's speed drifts by tens of per cent over an hour; two
    results are comparable only at a similar speed (lower is faster).
    """
    started = time.process_time()
    total = 0
    for number in range(5_000_000):
        total += number
    return round((time.process_time() - started) * 1000, 1)


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip() or None


def write_result(
    *,
    name: str,
    value: float,
    unit: str,
    reference: float | None,
    conditions: dict,
    summary: str = "",
) -> dict:
    """Print a human summary and write ``bench/results/<name>.json``."""
    ratio = round(value / reference, 3) if reference else None
    result = {
        "name": name,
        "value": round(value, 3),
        "unit": unit,
        "reference": round(reference, 3) if reference is not None else None,
        "ratio": ratio,
        "conditions": conditions,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    line = f"{name}: {value:,.1f} {unit}"
    if reference:
        line += f" (reference {reference:,.1f} {unit}, ratio {ratio:.2f})"
    print(line)
    if summary:
        print(f"  {summary}")
    speed = conditions.get("machine", {}).get("speed_ms")
    if speed is not None:
        print(f"  machine speed: {speed} ms for the reference loop (lower is faster)")
    print(f"  -> {path.relative_to(ROOT)}")
    return result
