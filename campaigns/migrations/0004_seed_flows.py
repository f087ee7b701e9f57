"""The five flows as shipped: off, without a template, on the email marketing consent.

Staff choose a template and switch each on from the flows page; flows_ensure adds
any that are missing later (a flushed database), leaving existing ones alone.
"""

from django.db import migrations

from campaigns.flows import flows_ensure


def forwards(apps, schema_editor):
    flows_ensure(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0003_role_permissions"),
        ("consents", "0002_purposes_and_roles"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
