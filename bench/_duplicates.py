"""The duplicate scan on the bench shop: known duplicates planted, the scan timed.

:func:`measure` works on the current bench database, the shop of
``bench/_segments_data.py`` (the dashboard benchmark calls it after generating
1,000,000 customers with a default address each). That shop's people are few
(8 first names, 6 last names) and have no phone, so first everyone gets a name
from Faker's Polish lists (153 first names, 3,890 last names, Zipf-like skew,
gendered -ski/-ska forms), seven in ten a Polish mobile number and one in five a
Gmail address with dots (``first.last<n>@gmail.com``), in one UPDATE (not timed).
The shop's addresses stay as they are, and they are the hard case for the name
rules: 1,000 people per postcode and some 600 per street and number, where a real
shop has tens and a few.

Then ``BENCH_DUPLICATES_PLANT`` (default 10,000) duplicates of each kind are
planted as new customers, each a copy of its own original:

* ``email`` -- a Gmail original's address without dots at googlemail.com, or
  another original's address with a "+sklep" tag (about half each);
* ``phone`` -- the original's phone, no email;
* ``name_street`` -- a typo in the middle of the last name, at the same address
  written otherwise ("Dluga 12" for "ul. Długa 12"), same postcode;
* ``name_postcode`` -- a typo in the middle of the first name, at another street
  of the same postcode (half as many).

``duplicates_scan()`` is timed (then once more: the rescan that finds what it
already holds), the pairs found are counted per reason and the planted pairs
found (recall) per kind. The planted customers are removed afterwards; the new
names, phones and emails stay.

``python -m bench._duplicates`` does the same on a database of its own
(``kartoteka_bench_quality``) with a smaller shop (``BENCH_SEGMENTS_CUSTOMERS``,
default 200,000, and ``BENCH_SEGMENTS_ORDERS``, default 400,000).
"""

from __future__ import annotations

import json
import os
import sys
import time

from bench import _sql

PLANT = int(os.environ.get("BENCH_DUPLICATES_PLANT", "10000"))
GOAL_S = 60.0


def _names_sql() -> tuple[str, list]:
    from faker.providers.person.pl_PL import Provider

    female = list(Provider.first_names_female)
    male = list(Provider.first_names_male)
    last = list(Provider.male_last_names) + list(Provider.unisex_last_names)
    female_sql = _sql.pick(female, "id", 101, skew=1.6)
    male_sql = _sql.pick(male, "id", 102, skew=1.6)
    is_female = f"{_sql.uniform('id', 103)} < 0.5"
    last_sql = _sql.pick(last, "id", 104, skew=2.2)
    # Feminine forms: Kowalski -> Kowalska when the first name is a woman's.
    surname = (
        f"CASE WHEN {is_female} AND {last_sql} ~ '(ski|cki|dzki)$'"
        f" THEN left({last_sql}, -1) || 'a' ELSE {last_sql} END"
    )
    ascii_name = "lower(translate({0}, 'ąćęłńóśźżĄĆĘŁŃÓŚŹŻ', 'acelnoszzACELNOSZZ'))"
    first = f"CASE WHEN {is_female} THEN {female_sql} ELSE {male_sql} END"
    email = (
        f"CASE WHEN mod(id, 5) = 0 THEN {ascii_name.format(first)} || '.'"
        f" || {ascii_name.format(surname)} || id || '@gmail.com' ELSE email END"
    )
    phone = (
        "CASE WHEN mod(id, 10) < 7 THEN '+4850' || lpad(mod(id, 10000000)::text, 7,"
        " '0') ELSE '' END"
    )
    return (
        f"UPDATE customers_customer SET first_name = {first},"  # noqa: S608
        f" last_name = {surname}, email = {email}, phone = {phone}",
        [],
    )


def _typo(column: str) -> str:
    """SQL: ``column`` with its middle letter changed (a one-letter typo)."""
    position = f"greatest(2, char_length({column}) / 2 + 1)"
    letter = f"substr({column}, {position}, 1)"
    return (
        f"overlay({column} placing CASE WHEN {letter} = 'e' THEN 'a' ELSE 'e' END"
        f" from {position} for 1)"
    )


_PLANT_SQL = {
    "email": """
        INSERT INTO quality_bench_planted
            (kind, original_id, copy_email, copy_phone, copy_first, copy_last)
        SELECT 'email', c.id,
            CASE WHEN c.email LIKE '%%@gmail.com'
                THEN replace(split_part(c.email, '@', 1), '.', '') || '@googlemail.com'
                ELSE split_part(c.email, '@', 1) || '+sklep@'
                    || split_part(c.email, '@', 2) END,
            '', c.first_name, c.last_name
        FROM customers_customer c
        WHERE mod(c.id, %(step)s) IN (0, 4) AND c.email IS NOT NULL
        ORDER BY c.id LIMIT %(plant)s
    """,
    "phone": """
        INSERT INTO quality_bench_planted
            (kind, original_id, copy_email, copy_phone, copy_first, copy_last)
        SELECT 'phone', c.id, NULL, c.phone, c.first_name, c.last_name
        FROM customers_customer c WHERE mod(c.id, %(step)s) = 1 AND c.phone <> ''
        ORDER BY c.id LIMIT %(plant)s
    """,
    "name_street": """
        INSERT INTO quality_bench_planted (kind, original_id, copy_email,
            copy_phone, copy_first, copy_last, street, postcode, city)
        SELECT 'name_street', c.id, NULL, '', c.first_name, {typo_last},
            regexp_replace(replace(a.street, 'ł', 'l'), '^ul\\. ', ''),
            a.postcode, a.city
        FROM customers_customer c
        JOIN customers_address a ON a.customer_id = c.id AND a.is_default
        WHERE mod(c.id, %(step)s) = 2 AND char_length(c.last_name) >= 5
        ORDER BY c.id LIMIT %(plant)s
    """,
    "name_postcode": """
        INSERT INTO quality_bench_planted (kind, original_id, copy_email,
            copy_phone, copy_first, copy_last, street, postcode, city)
        SELECT 'name_postcode', c.id, NULL, '', {typo_first}, c.last_name,
            'Polna ' || (mod(c.id, 90) + 1), a.postcode, a.city
        FROM customers_customer c
        JOIN customers_address a ON a.customer_id = c.id AND a.is_default
        WHERE mod(c.id, %(step)s) = 3 AND char_length(c.first_name) >= 5
        ORDER BY c.id LIMIT %(plant)s / 2
    """,
}


def _plant(cursor, *, customers: int) -> dict[str, int]:
    """Plant the copies; their originals and kinds in quality_bench_planted."""
    from customers.models import Address, Customer

    cursor.execute("DROP TABLE IF EXISTS quality_bench_planted")
    cursor.execute(
        "CREATE TABLE quality_bench_planted (seq serial, kind text,"
        " original_id bigint, copy_id bigint, copy_email text, copy_phone text,"
        " copy_first text, copy_last text, street text, postcode text, city text)"
    )
    step = max(5, customers // max(PLANT, 1) // 2)
    for statement in _PLANT_SQL.values():
        cursor.execute(
            statement.format(
                typo_last=_typo("c.last_name"), typo_first=_typo("c.first_name")
            ),
            {"step": step, "plant": PLANT},
        )
    # The copies: new customers (newer than their originals), found again by
    # the note that names their planted row.
    _sql.insert(
        cursor,
        Customer,
        {
            "first_name": "p.copy_first",
            "last_name": "p.copy_last",
            "email": "p.copy_email",
            "phone": "p.copy_phone",
            "note": "'quality-bench ' || p.seq",
            "created_at": "now()",
            "updated_at": "now()",
        },
        "quality_bench_planted p ORDER BY p.seq",
    )
    cursor.execute(
        "UPDATE quality_bench_planted p SET copy_id = c.id FROM customers_customer c"
        " WHERE c.note = 'quality-bench ' || p.seq"
    )
    _sql.insert(
        cursor,
        Address,
        {
            "customer_id": "p.copy_id",
            "kind": "'shipping'",
            "is_default": "true",
            "street": "p.street",
            "postcode": "p.postcode",
            "city": "p.city",
            "country": "'PL'",
        },
        "quality_bench_planted p WHERE p.street IS NOT NULL",
    )
    cursor.execute("SELECT kind, count(*) FROM quality_bench_planted GROUP BY kind")
    return dict(cursor.fetchall())


def _recall(cursor) -> dict[str, int]:
    """Planted pairs the scan found, per kind (each under its own reason)."""
    cursor.execute(
        """
        SELECT p.kind, count(*) FROM quality_bench_planted p
        JOIN customers_duplicatecandidate d
          ON d.customer_id = least(p.original_id, p.copy_id)
         AND d.other_id = greatest(p.original_id, p.copy_id)
         AND d.reason = p.kind
        GROUP BY p.kind
        """
    )
    return dict(cursor.fetchall())


def _remove_planted(cursor) -> None:
    copies = "SELECT copy_id FROM quality_bench_planted"
    cursor.execute(
        f"DELETE FROM customers_duplicatecandidate WHERE customer_id IN ({copies})"
        f" OR other_id IN ({copies})"
    )
    cursor.execute(f"DELETE FROM customers_address WHERE customer_id IN ({copies})")
    cursor.execute(f"DELETE FROM customers_customer WHERE id IN ({copies})")
    cursor.execute("DROP TABLE quality_bench_planted")


def measure() -> dict:
    """Plant duplicates in the bench shop, time ``duplicates_scan()``; the figures.

    Returns ``{"duplicate_scan_s", "rescan_s", "found", "planted",
    "planted_found", "customers", "prepare_s"}``.
    """
    from django.db import connection

    from customers.quality import duplicates_scan

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers_customer")
        (customers,) = cursor.fetchone()
        statement, params = _names_sql()
        cursor.execute(statement, params)
        planted = _plant(cursor, customers=customers)
        cursor.execute("VACUUM ANALYZE customers_customer")
        cursor.execute("VACUUM ANALYZE customers_address")
    prepared = time.perf_counter() - started

    scan_started = time.perf_counter()
    found = duplicates_scan()
    scan_s = time.perf_counter() - scan_started
    rescan_started = time.perf_counter()
    duplicates_scan()
    rescan_s = time.perf_counter() - rescan_started

    with connection.cursor() as cursor:
        planted_found = _recall(cursor)
        _remove_planted(cursor)
    return {
        "duplicate_scan_s": round(scan_s, 2),
        "rescan_s": round(rescan_s, 2),
        "found": found,
        "planted": planted,
        "planted_found": planted_found,
        "customers": customers + sum(planted.values()),
        "prepare_s": round(prepared, 1),
    }


def main() -> int:
    os.environ.setdefault("BENCH_SEGMENTS_CUSTOMERS", "200000")
    os.environ.setdefault("BENCH_SEGMENTS_ORDERS", "400000")
    from bench import _harness, _segments_data

    with _harness.bench_database("kartoteka_bench_quality"):
        data = _segments_data.generate()
        print(f"  generated {data['rows']}", flush=True)
        result = measure()
    verdict = "meets" if result["duplicate_scan_s"] < GOAL_S else "MISSES"
    print(
        f"duplicate scan: {result['duplicate_scan_s']:.1f} s on"
        f" {result['customers']:,} customers ({verdict} the goal of {GOAL_S:.0f} s"
        f" at 1,000,000); rescan {result['rescan_s']:.1f} s"
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
