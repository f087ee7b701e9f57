"""Who bought a category or a product, from the index alone.

The single-column indexes on OrderLine.category and OrderLine.product become
(category, order) and (product, order): segments' purchase conditions ("bought
category Karma in the last 90 days") get the orders from an index-only scan and
never read the lines. The new indexes are built concurrently (the lines stay
writable), then the old ones dropped; the foreign keys stay as they are (Django's
AlterField would drop and re-validate them over the whole table).
"""

import django.db.models.deletion
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


def _without_index(name: str, to: str) -> migrations.AlterField:
    return migrations.AlterField(
        model_name="orderline",
        name=name,
        field=models.ForeignKey(
            blank=True,
            db_index=False,
            null=True,
            on_delete=django.db.models.deletion.SET_NULL,
            related_name="order_lines",
            to=to,
            verbose_name=name,
        ),
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("orders", "0007_order_export_role_permissions")]

    operations = [
        AddIndexConcurrently(
            model_name="orderline",
            index=models.Index(
                fields=["category", "order"], name="order_line_category_idx"
            ),
        ),
        AddIndexConcurrently(
            model_name="orderline",
            index=models.Index(
                fields=["product", "order"], name="order_line_product_idx"
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                _without_index("category", "orders.category"),
                _without_index("product", "orders.product"),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX CONCURRENTLY IF EXISTS "orders_orderline_category_id_0e6ff9a1"',
                    reverse_sql='CREATE INDEX "orders_orderline_category_id_0e6ff9a1"'
                    ' ON "orders_orderline" ("category_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX CONCURRENTLY IF EXISTS "orders_orderline_product_id_a68772b6"',
                    reverse_sql='CREATE INDEX "orders_orderline_product_id_a68772b6"'
                    ' ON "orders_orderline" ("product_id")',
                ),
            ],
        ),
    ]
