"""Grant the staff roles the orders app's permissions."""

from django.db import migrations

from customers.roles import (
    ORDERS_PERMISSIONS,
    grant_role_permissions,
    revoke_role_permissions,
)


def grant(apps, schema_editor):
    grant_role_permissions(apps, "orders", ORDERS_PERMISSIONS)


def revoke(apps, schema_editor):
    revoke_role_permissions(apps, "orders", ORDERS_PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial"), ("customers", "0003_roles")]

    operations = [migrations.RunPython(grant, revoke)]
