"""Grant the Manager the system status page (/status/): checks, queues, failures."""

from django.db import migrations

from customers.roles import MANAGER, grant_role_codenames, revoke_role_codenames

CODENAMES = {MANAGER: ("view_system_status",)}


def grant(apps, schema_editor):
    grant_role_codenames(apps, "customers", CODENAMES)


def revoke(apps, schema_editor):
    revoke_role_codenames(apps, "customers", CODENAMES)


class Migration(migrations.Migration):
    dependencies = [("customers", "0019_store_system_status_permission")]

    operations = [migrations.RunPython(grant, revoke)]
