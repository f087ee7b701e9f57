"""Fewer indexes on the consent ledger, which every import and API call appends to.

The single-column index on ``customer`` is covered by consent_event_customer_idx
(customer, purpose, -occurred_at). ``api_key`` and ``staff_user`` are set on few
events: their indexes (kept for the foreign keys' checks) hold only those. Only
the indexes change; the foreign keys stay as they are (Django's AlterField would
drop and re-validate them over the whole ledger).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

DROPPED = {
    "customer_id": "consents_consentevent_customer_id_c1675ae1",
    "api_key_id": "consents_consentevent_api_key_id_e5231220",
    "staff_user_id": "consents_consentevent_staff_user_id_5bb15b16",
}


class Migration(migrations.Migration):
    dependencies = [
        ("consents", "0003_state_trigger_per_statement"),
        ("customers", "0011_drop_redundant_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="consentevent",
                    name="api_key",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="customers.apikey",
                        verbose_name="API key",
                    ),
                ),
                migrations.AlterField(
                    model_name="consentevent",
                    name="customer",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="consent_events",
                        to="customers.customer",
                        verbose_name="customer",
                    ),
                ),
                migrations.AlterField(
                    model_name="consentevent",
                    name="staff_user",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="staff member",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX "{name}"'
                    f' ON "consents_consentevent" ("{column}")',
                )
                for column, name in DROPPED.items()
            ],
        ),
        migrations.AddIndex(
            model_name="consentevent",
            index=models.Index(
                condition=models.Q(("api_key__isnull", False)),
                fields=["api_key"],
                name="consent_event_api_key_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="consentevent",
            index=models.Index(
                condition=models.Q(("staff_user__isnull", False)),
                fields=["staff_user"],
                name="consent_event_staff_idx",
            ),
        ),
    ]
