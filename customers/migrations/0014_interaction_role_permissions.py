"""Grant the staff roles the support log.

Support logs and follows up interactions; Marketing reads them (reviews,
feedback); the Manager runs the complaints queue and exports it; the DPO reads
everything and can remove an attachment that should not have been kept.
"""

from django.db import migrations

from customers.roles import (
    DATA_PROTECTION_OFFICER,
    MANAGER,
    MARKETING,
    SUPPORT,
    grant_role_permissions,
    revoke_role_permissions,
)

ALL = ("view", "add", "change", "delete")
PERMISSIONS = {
    SUPPORT: {
        "interaction": ("view", "add", "change"),
        "interactionattachment": ("view", "add"),
        "interactionchange": ("view",),
    },
    MARKETING: {
        "interaction": ("view",),
        "interactionattachment": ("view",),
        "interactionchange": ("view",),
    },
    MANAGER: {
        "interaction": (*ALL, "export"),
        "interactionattachment": ALL,
        "interactionchange": ("view",),
    },
    DATA_PROTECTION_OFFICER: {
        "interaction": ("view", "export"),
        "interactionattachment": ("view", "delete"),
        "interactionchange": ("view",),
    },
}


def grant(apps, schema_editor):
    grant_role_permissions(apps, "customers", PERMISSIONS)


def revoke(apps, schema_editor):
    revoke_role_permissions(apps, "customers", PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [("customers", "0013_search_index")]

    operations = [migrations.RunPython(grant, revoke)]
