"""Drop the single-column index on Address.customer: address_customer_idx
(customer, kind) starts with the same column, and every address written paid for
both. Only the index goes; the foreign key stays as it is (Django's AlterField
would drop and re-validate it over the whole table)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0010_import_export_role_permissions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="address",
                    name="customer",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="addresses",
                        to="customers.customer",
                        verbose_name="customer",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "customers_address_customer_id_f042422e"',
                    reverse_sql='CREATE INDEX "customers_address_customer_id_f042422e"'
                    ' ON "customers_address" ("customer_id")',
                ),
            ],
        ),
    ]
