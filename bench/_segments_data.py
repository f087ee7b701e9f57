"""The shop the segment benchmarks run on, made in SQL in a few minutes.

``BENCH_SEGMENTS_CUSTOMERS`` customers (default 1,000,000) and
``BENCH_SEGMENTS_ORDERS`` orders (default 5,000,000) in two stores: a default
address each (one in eight in Warszawa), an identity in the main store each and in
the outlet for one in five; 60 categories (two sensitive) and 3,000 products of 30
brands, one in five replenishable; orders spread over three years, skewed so that
a few customers buy often and most once or never (about 40 % never), 88 % paid,
shipped or delivered, 3 % in EUR, with one or two lines each. Secondary indexes
are dropped first and built again afterwards from their own definitions, then
ANALYZE.
"""

from __future__ import annotations

import os
import time

from bench import _sql

CUSTOMERS = int(os.environ.get("BENCH_SEGMENTS_CUSTOMERS", "1000000"))
ORDERS = int(os.environ.get("BENCH_SEGMENTS_ORDERS", "5000000"))
CATEGORIES = 30  # per store
PRODUCTS = 1500  # per store
BUYER_SHARE = 0.6
CITIES = [
    "Warszawa",
    "Kraków",
    "Łódź",
    "Wrocław",
    "Poznań",
    "Gdańsk",
    "Lublin",
    "Katowice",
]
BRANDS = [f"Marka {i:02d}" for i in range(30)]
FIRST = [
    "Anna",
    "Piotr",
    "Katarzyna",
    "Tomasz",
    "Magdalena",
    "Łukasz",
    "Zofia",
    "Jakub",
]
LAST = ["Nowak", "Kowalski", "Wiśniewska", "Wójcik", "Kamińska", "Lewandowski"]


def generate() -> dict[str, object]:
    """Make the data; returns the rows per table and the ids the rules need."""
    from django.db import connection, transaction

    from customers.models import Address, Customer, CustomerIdentity, Store
    from orders.models import Category, Order, OrderLine, Product

    started = time.perf_counter()
    main = Store.objects.create(code="main", name="Sklep")
    outlet = Store.objects.create(code="outlet", name="Outlet")
    tables = [
        m._meta.db_table
        for m in (Customer, Address, CustomerIdentity, Order, OrderLine, Product)
    ]
    rows: dict[str, object] = {}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        indexes = _sql.secondary_indexes(cursor, tables)
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        rows["customers"] = _sql.insert(
            cursor,
            Customer,
            {
                "first_name": _sql.pick(FIRST, "n", 1),
                "last_name": _sql.pick(LAST, "n", 2),
                "email": "'k' || n || '@example.pl'",
                "status": f"CASE WHEN n <= {int(CUSTOMERS * BUYER_SHARE)}"
                " THEN 'buyer' ELSE 'lead' END",
                "language": "CASE WHEN mod(n, 20) = 0 THEN 'en' ELSE 'pl' END",
                "acquisition_source": _sql.pick(["google", "facebook", "", ""], "n", 3),
                "created_at": "now() - make_interval(mins => n)",
                "updated_at": "now()",
            },
            "generate_series(1, %s) AS n ORDER BY n",
            [CUSTOMERS],
        )
        cursor.execute(f"SELECT min(id) FROM {Customer._meta.db_table}")  # noqa: S608
        first_id = cursor.fetchone()[0]
        customers = f"{Customer._meta.db_table} c"
        rows["addresses"] = _sql.insert(
            cursor,
            Address,
            {
                "customer_id": "c.id",
                "kind": "'shipping'",
                "is_default": "true",
                "street": "'ul. Długa ' || mod(c.id, 200)",
                "postcode": "lpad(mod(c.id, 100)::text, 2, '0') || '-'"
                " || lpad(mod(c.id, 1000)::text, 3, '0')",
                "city": _sql.pick(CITIES, "c.id", 4, skew=1.6),
                "country": "'PL'",
            },
            customers,
        )
        rows["identities"] = _sql.insert(
            cursor,
            CustomerIdentity,
            {
                "store_id": str(main.pk),
                "customer_id": "c.id",
                "external_id": "c.id::text",
            },
            customers,
        )
        rows["identities"] += _sql.insert(
            cursor,
            CustomerIdentity,
            {
                "store_id": str(outlet.pk),
                "customer_id": "c.id",
                "external_id": "'o' || c.id",
            },
            customers + " WHERE mod(c.id, 5) = 0",
        )
        for store in (main, outlet):
            _sql.insert(
                cursor,
                Category,
                {
                    "store_id": str(store.pk),
                    "external_id": "'CAT' || n",
                    "name": "'Kategoria ' || n",
                    "is_sensitive": "n > 28",
                },
                "generate_series(1, %s) AS n",
                [CATEGORIES],
            )
            _sql.insert(
                cursor,
                Product,
                {
                    "store_id": str(store.pk),
                    "external_id": "'P' || n",
                    "sku": "'SKU-' || n",
                    "name": "'Produkt ' || n",
                    "brand": _sql.pick(BRANDS, "n", 5, skew=1.5),
                    "category_id": "(SELECT min(id) FROM orders_category"
                    f" WHERE store_id = {store.pk}) + mod(n, {CATEGORIES})",
                    "price": "(10 + mod(n, 300))::numeric",
                    "replenishment_days": "CASE WHEN mod(n, 5) = 0"
                    " THEN 30 + mod(n, 60) END",
                },
                "generate_series(1, %s) AS n",
                [PRODUCTS],
            )
        cursor.execute("SELECT min(id) FROM orders_product")
        first_product = cursor.fetchone()[0]
        buyers = int(CUSTOMERS * BUYER_SHARE)
        status = (
            f"CASE WHEN {_sql.uniform('k', 7)} < 0.07 THEN 'cancelled'"
            f" WHEN {_sql.uniform('k', 7)} < 0.12 THEN 'returned'"
            f" ELSE (ARRAY['paid', 'shipped', 'delivered'])[1 + mod(k, 3)] END"
        )
        in_outlet = f"{_sql.uniform('k', 8)} < 0.2"
        rows["orders"] = _sql.insert(
            cursor,
            Order,
            {
                "store_id": (
                    f"CASE WHEN {in_outlet} THEN {outlet.pk} ELSE {main.pk} END"
                ),
                "customer_id": f"{first_id} + floor({buyers} * power("
                f"{_sql.uniform('k', 6)}, 1.7))::int",
                "external_id": "'O' || k",
                "number": "'#' || (100000 + k)",
                "status": status,
                "placed_at": f"now() - make_interval(secs => {_sql.uniform('k', 9)}"
                " * 3 * 365 * 86400)",
                "currency": "CASE WHEN mod(k, 33) = 0 THEN 'EUR' ELSE 'PLN' END",
                "subtotal": "(20 + mod(k * 7, 480))::numeric",
                "total": "(20 + mod(k * 7, 480))::numeric",
            },
            "generate_series(1, %s) AS k",
            [ORDERS],
        )
        product = (
            f"{first_product} + (CASE WHEN o.store_id = {main.pk} THEN 0 ELSE"
            f" {PRODUCTS} END) + floor({PRODUCTS} * power("
            f"{_sql.uniform('o.id * 2 + pos', 10)}, 1.4))::int"
        )
        rows["lines"] = _sql.insert(
            cursor,
            OrderLine,
            {
                "order_id": "x.order_id",
                "position": "x.pos",
                "product_id": "x.product_id",
                "sku": "p.sku",
                "name": "p.name",
                "category_id": "p.category_id",
                "quantity": "x.quantity",
                "unit_price": "p.price",
                "total": "p.price * x.quantity",
            },
            f"""(
                SELECT o.id AS order_id, pos, {product} AS product_id,
                    (1 + mod(o.id + pos, 3))::numeric AS quantity
                FROM {Order._meta.db_table} o
                CROSS JOIN LATERAL generate_series(1, 1 + mod(o.id, 2)) AS pos
            ) x JOIN orders_product p ON p.id = x.product_id""",
        )
        index_started = time.perf_counter()
        for _name, definition in indexes:
            cursor.execute(definition)
        rows["index_build_s"] = round(time.perf_counter() - index_started, 1)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    category = Category.objects.get(store=main, external_id="CAT3")
    rows["generate_s"] = round(time.perf_counter() - started, 1)
    return {"rows": rows, "category_id": category.pk, "main": main, "outlet": outlet}


def three_conditions(category_id: int) -> dict:
    """The benchmarks' rule: repeat buyers in Warszawa who bought a category lately."""
    return {
        "op": "and",
        "rules": [
            {"field": "orders_count", "operator": "gte", "value": 2},
            {"field": "city", "operator": "equals", "value": "Warszawa"},
            {
                "field": "bought_category",
                "operator": "within_days",
                "value": category_id,
                "days": 365,
            },
        ],
    }
