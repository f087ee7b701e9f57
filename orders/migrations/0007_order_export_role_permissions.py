"""Grant the Manager role order exports."""

from django.db import migrations

from customers.roles import MANAGER, grant_role_permissions, revoke_role_permissions

PERMISSIONS = {MANAGER: {"order": ("export",)}}


def grant(apps, schema_editor):
    grant_role_permissions(apps, "orders", PERMISSIONS)


def revoke(apps, schema_editor):
    revoke_role_permissions(apps, "orders", PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [("orders", "0006_order_note_export")]

    operations = [migrations.RunPython(grant, revoke)]
