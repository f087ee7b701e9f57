"""Create the staff roles and grant them the customers app's permissions."""

from django.db import migrations

from customers.roles import (
    CUSTOMERS_PERMISSIONS,
    grant_role_permissions,
    revoke_role_permissions,
)


def grant(apps, schema_editor):
    grant_role_permissions(apps, "customers", CUSTOMERS_PERMISSIONS)


def revoke(apps, schema_editor):
    revoke_role_permissions(apps, "customers", CUSTOMERS_PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0002_seed_attribute_definitions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
