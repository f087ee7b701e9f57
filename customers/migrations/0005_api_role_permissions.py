"""Grant the staff roles the permissions on API keys, webhooks, visitors and events."""

from django.db import migrations

from customers.roles import grant_role_permissions
from customers.roles import DATA_PROTECTION_OFFICER, MANAGER, MARKETING, SUPPORT

ALL = ("view", "add", "change", "delete")
PERMISSIONS = {
    SUPPORT: {"event": ("view",), "visitor": ("view",)},
    MARKETING: {"event": ("view",), "visitor": ("view",)},
    MANAGER: {
        "apikey": ALL,
        "webhookendpoint": ALL,
        "webhookdelivery": ("view", "change"),
        "event": ("view",),
        "visitor": ("view",),
    },
    DATA_PROTECTION_OFFICER: {
        "event": ("view",),
        "visitor": ("view",),
        "webhookdelivery": ("view",),
        "apikey": ("view",),
    },
}


def grant(apps, schema_editor):
    grant_role_permissions(apps, "customers", PERMISSIONS)


def revoke(apps, schema_editor):
    # Only what this migration granted; earlier grants stay.
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, models in PERMISSIONS.items():
        group = group_model.objects.filter(name=role).first()
        if group:
            group.permissions.remove(
                *permission_model.objects.filter(
                    content_type__app_label="customers",
                    codename__in=[
                        f"{a}_{m}" for m, acts in models.items() for a in acts
                    ],
                )
            )


class Migration(migrations.Migration):
    dependencies = [("customers", "0004_api_keys_webhooks_events")]

    operations = [migrations.RunPython(grant, revoke)]
