"""Grant the staff roles imports (Manager, DPO) and customer exports."""

from django.db import migrations

from customers.roles import (
    DATA_PROTECTION_OFFICER,
    MANAGER,
    grant_role_permissions,
    revoke_role_permissions,
)

ALL = ("view", "add", "change", "delete")
PERMISSIONS = {
    MANAGER: {"importjob": ALL, "customer": ("export",)},
    DATA_PROTECTION_OFFICER: {"importjob": ("view", "add"), "customer": ("export",)},
}


def grant(apps, schema_editor):
    grant_role_permissions(apps, "customers", PERMISSIONS)


def revoke(apps, schema_editor):
    revoke_role_permissions(apps, "customers", PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [("customers", "0009_imports")]

    operations = [migrations.RunPython(grant, revoke)]
