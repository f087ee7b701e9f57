"""import_customers: rows per second importing a Shopify customers export.

One run, one fresh database, four figures side by side:

1. **COPY**: the same customers (names, email, phone, company) written straight
   into the customers table with PostgreSQL's COPY, in a transaction rolled back
   afterwards: what the database itself can do with that table and its indexes.
2. **Import**: ``python manage.py import_csv``'s service (the registered
   "customers" kind, consent columns included) on a generated file of
   ``BENCH_IMPORT_CUSTOMERS_ROWS`` rows (default 1,000,000) in the Shopify
   layout: customers, identities, addresses, tags and consents. Peak memory is
   the importing process's maximum resident set size.
3. **Re-import** of the same file: must change nothing, at least as fast.
4. **django-import-export**, its default path (a plain ``ModelResource`` matching
   rows by id, validating and saving one by one) on a
   ``BENCH_IMPORT_CUSTOMERS_DIE_ROWS`` (default 20,000) slice of new customers.

Goals: the import at least a quarter of the COPY rate and 40x django-import-export,
peak memory under 400 MB, the re-import at least as fast as the import.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import random
import tempfile
import time
from pathlib import Path

from bench import _harness

NAME = "import_customers"
ROWS = int(os.environ.get("BENCH_IMPORT_CUSTOMERS_ROWS", "1000000"))
DIE_ROWS = int(os.environ.get("BENCH_IMPORT_CUSTOMERS_DIE_ROWS", "20000"))
SEED = 20240101
MEMORY_GOAL_MB = 400

HEADER = [
    "Customer ID",
    "First Name",
    "Last Name",
    "Email",
    "Accepts Email Marketing",
    "Default Address Company",
    "Default Address Address1",
    "Default Address Address2",
    "Default Address City",
    "Default Address Province Code",
    "Default Address Country Code",
    "Default Address Zip",
    "Default Address Phone",
    "Phone",
    "Accepts SMS Marketing",
    "Total Spent",
    "Total Orders",
    "Note",
    "Tax Exempt",
    "Tags",
]
FIRST = ["Anna", "Maria", "Katarzyna", "Małgorzata", "Agnieszka", "Piotr", "Krzysztof"]
FIRST += ["Andrzej", "Tomasz", "Paweł", "Michał", "Zofia", "Łukasz", "Jakub", "Ewa"]
LAST = ["Nowak", "Kowalska", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamińska"]
LAST += ["Lewandowski", "Zielińska", "Szymański", "Woźniak", "Dąbrowska", "Kozłowski"]
CITIES = [
    ("Warszawa", "00"),
    ("Kraków", "30"),
    ("Łódź", "90"),
    ("Wrocław", "50"),
    ("Poznań", "60"),
    ("Gdańsk", "80"),
    ("Szczecin", "70"),
    ("Lublin", "20"),
]
STREETS = ["Marszałkowska", "Długa", "Polna", "Leśna", "Słoneczna", "Krótka", "Lipowa"]
TAGS = ["", "", "vip", "newsletter", "hurt, vip", "b2b"]
MOBILE = ["50", "51", "53", "57", "60", "66", "69", "72", "73", "78", "79", "88"]


def _row(rng: random.Random, n: int) -> list[str]:
    city, prefix = rng.choice(CITIES)
    phone = f"+48{rng.choice(MOBILE)}{rng.randint(0, 9_999_999):07d}"
    return [
        f"'{7_000_000_000 + n}",
        rng.choice(FIRST),
        rng.choice(LAST),
        f"klient{n}@example.pl",
        rng.choice(("yes", "no", "no")),
        "Firma Sp. z o.o." if n % 10 == 0 else "",
        f"ul. {rng.choice(STREETS)} {rng.randint(1, 120)}",
        f"m. {rng.randint(1, 80)}" if n % 3 == 0 else "",
        city,
        "",
        "PL",
        f"'{prefix}-{rng.randint(0, 999):03d}",
        f"'{phone}",
        f"'{phone}",
        rng.choice(("yes", "no", "no", "no")),
        f"{rng.randint(0, 500_000) / 100:.2f}",
        str(rng.randint(0, 30)),
        "Stała klientka" if n % 50 == 0 else "",
        "no",
        rng.choice(TAGS),
    ]


def _write_file(path: Path, rows: int, *, offset: int = 0) -> None:
    rng = random.Random(SEED + offset)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(offset, offset + rows):
            writer.writerow(_row(rng, n))


def _copy_rate(path: Path) -> tuple[float, float]:
    """Rows/s and seconds of COPY of the file's customers into the customers table.

    The file is turned into the table's columns first (not timed); the COPY runs
    in a transaction that is rolled back, so the table is empty afterwards.
    """
    from django.db import connection, transaction

    from customers.models import Customer

    columns = ["first_name", "last_name", "email", "phone", "company"]
    defaults = {
        f.column: f.get_default()
        for f in Customer._meta.concrete_fields
        if not f.primary_key and f.column not in columns
    }
    buffer = io.StringIO()
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for cells in reader:
            buffer.write(
                "\t".join(
                    [cells[1], cells[2], cells[3], cells[13].lstrip("'"), cells[5]]
                )
                + "\n"
            )
    data = buffer.getvalue().encode()
    del buffer
    now = "now()"
    fixed = {
        "created_at": now,
        "updated_at": now,
        "preferred_channels": "'{}'",
        "attributes": "'{}'::jsonb",
    }
    with transaction.atomic(), connection.cursor() as cursor:
        # Defaults the table lacks in SQL: set them for this transaction only.
        for column in ("created_at", "updated_at", "preferred_channels", "attributes"):
            cursor.execute(
                f'ALTER TABLE customers_customer ALTER COLUMN "{column}"'  # noqa: S608
                f" SET DEFAULT {fixed[column]}"
            )
        for column, value in defaults.items():
            if column in fixed or value is None or isinstance(value, list | dict):
                continue
            cursor.execute(
                f'ALTER TABLE customers_customer ALTER COLUMN "{column}"'  # noqa: S608
                " SET DEFAULT %s",
                [value],
            )
        started = time.perf_counter()
        with cursor.cursor.copy(
            f"COPY customers_customer ({', '.join(columns)}) FROM STDIN"  # noqa: S608
        ) as copy:
            for start in range(0, len(data), 1 << 20):
                copy.write(data[start : start + (1 << 20)])
        seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    with connection.cursor() as cursor:
        # The rolled-back rows are still in the heap and the indexes until vacuumed
        # (and autovacuum would do it during the import): the import starts on
        # the same empty table as the COPY did.
        cursor.execute("VACUUM customers_customer")
    return ROWS / seconds, seconds


def _import_in_child(path: str, store_id: int, queue) -> None:
    from django.db import connections

    from customers.importers import registry
    from customers.importers.reading import open_csv
    from customers.models import Store

    connections.close_all()
    store = Store.objects.get(pk=store_id)
    started = time.perf_counter()
    result = registry.get("customers").run(
        source=open_csv(path), store=store, on_error="skip"
    )
    seconds = time.perf_counter() - started
    queue.put(
        {
            "seconds": seconds,
            "rows": result.rows,
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "errors": len(result.errors),
            "extra": dict(result.extra),
        }
    )
    connections.close_all()


def _import(path: Path, store_id: int) -> dict:
    """Run the import in a child process; its figures plus its peak RSS in MB."""
    from django.db import connections

    connections.close_all()  # a forked child must not share the parent's socket
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(
        target=_import_in_child, args=(str(path), store_id, queue)
    )
    process.start()
    figures = queue.get()
    _pid, status, usage = os.wait4(process.pid, 0)
    if status:
        raise RuntimeError(f"the import process failed ({status})")
    figures["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    return figures


def _die_rate(path: Path) -> tuple[float, float]:
    """django-import-export's default path: a plain ModelResource, row by row."""
    import tablib
    from import_export import resources

    from customers.models import Customer

    class CustomerResource(resources.ModelResource):
        # Everything default: rows are matched by "id" (empty here: all new), then
        # each is validated and saved on its own.
        class Meta:
            model = Customer
            fields = ("id", "first_name", "last_name", "email", "phone", "company")

    dataset = tablib.Dataset(headers=list(CustomerResource.Meta.fields))
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for cells in reader:
            dataset.append(
                ["", cells[1], cells[2], cells[3], cells[13].lstrip("'"), cells[5]]
            )
    started = time.perf_counter()
    result = CustomerResource().import_data(dataset, raise_errors=True)
    seconds = time.perf_counter() - started
    if result.has_errors() or result.has_validation_errors():
        raise RuntimeError("django-import-export reported errors")
    return DIE_ROWS / seconds, seconds


def run() -> dict:
    from customers.models import Customer, Store

    store = Store.objects.create(code="bench", name="Sklep testowy")
    with tempfile.TemporaryDirectory(prefix="kartoteka-bench-") as directory:
        path = Path(directory) / "customers_export.csv"
        started = time.perf_counter()
        _write_file(path, ROWS)
        print(
            f"  generated {ROWS:,} rows ({path.stat().st_size / 1e6:.0f} MB)"
            f" in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        copy_rate, copy_seconds = _copy_rate(path)
        print(f"  COPY: {copy_rate:,.0f} rows/s ({copy_seconds:.1f} s)", flush=True)
        first = _import(path, store.pk)
        rate = ROWS / first["seconds"]
        print(f"  import: {rate:,.0f} rows/s; {first}", flush=True)
        again = _import(path, store.pk)
        again_rate = ROWS / again["seconds"]
        print(f"  re-import: {again_rate:,.0f} rows/s; {again}", flush=True)
        die_path = Path(directory) / "die_slice.csv"
        _write_file(die_path, DIE_ROWS, offset=ROWS)
        die_rate, die_seconds = _die_rate(die_path)
        print(f"  django-import-export: {die_rate:,.0f} rows/s", flush=True)
    peak = max(first["peak_rss_mb"], again["peak_rss_mb"])
    goals = {
        "quarter_of_copy": rate >= copy_rate / 4,
        "forty_times_django_import_export": rate >= 40 * die_rate,
        "memory_under_400_mb": peak < MEMORY_GOAL_MB,
        "reimport_at_least_as_fast": again_rate >= rate,
        "reimport_changes_nothing": again["created"] == 0 and again["updated"] == 0,
    }
    return _harness.write_result(
        name=NAME,
        value=rate,
        unit="rows/s",
        reference=copy_rate,
        conditions=_harness.conditions(
            rows=ROWS,
            file_format="shopify customers export (new layout), UTF-8, comma",
            import_=first,
            reimport=again,
            copy={"rows_per_s": round(copy_rate), "seconds": round(copy_seconds, 2)},
            django_import_export={
                "rows": DIE_ROWS,
                "rows_per_s": round(die_rate, 1),
                "seconds": round(die_seconds, 2),
                "path": "ModelResource.import_data, default options",
            },
            reimport_rows_per_s=round(again_rate),
            times_django_import_export=round(rate / die_rate, 1),
            peak_rss_mb=peak,
            goals=goals,
            customers=Customer.objects.count(),
            seed=SEED,
        ),
        summary=(
            f"import {rate:,.0f} rows/s ({first['seconds']:.1f} s), re-import "
            f"{again_rate:,.0f} rows/s; COPY {copy_rate:,.0f} rows/s (import = "
            f"{rate / copy_rate:.2f} of it); django-import-export {die_rate:,.0f} "
            f"rows/s ({rate / die_rate:.0f}x); peak memory {peak:.0f} MB; goals "
            + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in goals.items())
        ),
    )
