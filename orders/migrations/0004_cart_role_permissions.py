"""Grant the staff roles the permissions on carts."""

from django.db import migrations

from customers.roles import grant_role_permissions
from customers.roles import DATA_PROTECTION_OFFICER, MANAGER, MARKETING, SUPPORT

PERMISSIONS = {
    SUPPORT: {"cart": ("view",)},
    MARKETING: {"cart": ("view",)},
    MANAGER: {"cart": ("view", "add", "change", "delete")},
    DATA_PROTECTION_OFFICER: {"cart": ("view",)},
}


def grant(apps, schema_editor):
    grant_role_permissions(apps, "orders", PERMISSIONS)


def revoke(apps, schema_editor):
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role in PERMISSIONS:
        group = group_model.objects.filter(name=role).first()
        if group:
            group.permissions.remove(
                *permission_model.objects.filter(
                    content_type__app_label="orders", codename__endswith="_cart"
                )
            )


class Migration(migrations.Migration):
    dependencies = [("orders", "0003_cart"), ("customers", "0005_api_role_permissions")]

    operations = [migrations.RunPython(grant, revoke)]
