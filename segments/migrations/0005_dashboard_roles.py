"""The dashboard for the Manager and Marketing.

Both see the dashboard (``segments.view_dashboard``); the Manager also reads the
pre-aggregated rows and their refreshes in the admin. Support and the DPO do not
see it: their work starts from a customer or a request.
"""

from django.db import migrations

from customers.roles import (
    MANAGER,
    MARKETING,
    grant_role_permissions,
    revoke_role_permissions,
)

PERMISSIONS = {
    MANAGER: {
        "dashboard": ("view",),
        "dashboardsnapshot": ("view",),
        "dashboardrefresh": ("view",),
        "dailysales": ("view",),
        "dailycustomers": ("view",),
        "dailycategorysales": ("view",),
        "dailybrandsales": ("view",),
    },
    MARKETING: {"dashboard": ("view",)},
}


def forwards(apps, schema_editor):
    grant_role_permissions(apps, "segments", PERMISSIONS)


def backwards(apps, schema_editor):
    revoke_role_permissions(apps, "segments", PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [
        ("segments", "0004_dashboard_rollups"),
        ("customers", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
