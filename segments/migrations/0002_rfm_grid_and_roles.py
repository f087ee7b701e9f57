"""The RFM segments and grid as shipped, and the staff roles' access to segments.

Marketing builds segments and exports their members; the Manager does everything;
Support and the DPO read (the customer page shows a customer's segments and
scores).
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
from segments.rfm import rfm_grid_ensure

ALL = ("view", "add", "change", "delete")
READ = {
    "customermetrics": ("view",),
    "rfmsegment": ("view",),
    "rfmcell": ("view",),
    "rfmsegmentmove": ("view",),
    "segment": ("view",),
    "segmentmembership": ("view",),
    "segmentrebuild": ("view",),
    "segmentchange": ("view",),
}
PERMISSIONS = {
    SUPPORT: READ,
    MARKETING: {
        **READ,
        "segment": (*ALL, "export"),
        "segmentmembership": ALL,
        "currencyrate": ("view",),
    },
    MANAGER: {
        **{model: ALL for model in READ},
        "segment": (*ALL, "export"),
        "currencyrate": ALL,
        "rfmthreshold": ("view",),
    },
    DATA_PROTECTION_OFFICER: {**READ, "currencyrate": ("view",)},
}


def forwards(apps, schema_editor):
    rfm_grid_ensure(apps)
    grant_role_permissions(apps, "segments", PERMISSIONS)


def backwards(apps, schema_editor):
    revoke_role_permissions(apps, "segments", PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [("segments", "0001_metrics_and_segments")]

    operations = [migrations.RunPython(forwards, backwards)]
