"""The staff roles' access to campaigns.

Marketing writes templates, builds, sends and follows campaigns and flows; the
Manager does everything; Support reads what a customer was sent (the customer
page); the DPO reads deliveries, events and coupons (what was sent to whom, on
which consent).
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
READ = {
    "delivery": ("view",),
    "deliveryevent": ("view",),
    "coupon": ("view",),
}
PERMISSIONS = {
    SUPPORT: READ,
    MARKETING: {
        **READ,
        "messagetemplate": ALL,
        "campaign": (*ALL, "send"),
        "campaignevent": ("view",),
        "flow": ("view", "change"),
    },
    MANAGER: {
        **READ,
        "messagetemplate": ALL,
        "campaign": (*ALL, "send"),
        "campaignevent": ("view",),
        "flow": ("view", "change"),
    },
    DATA_PROTECTION_OFFICER: {
        **READ,
        "messagetemplate": ("view",),
        "campaign": ("view",),
        "campaignevent": ("view",),
        "flow": ("view",),
    },
}


def forwards(apps, schema_editor):
    grant_role_permissions(apps, "campaigns", PERMISSIONS)


def backwards(apps, schema_editor):
    revoke_role_permissions(apps, "campaigns", PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_campaign_prepared_at"),
        ("customers", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
