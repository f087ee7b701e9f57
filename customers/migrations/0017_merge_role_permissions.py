"""Grant the Manager and the DPO the data quality page and merging.

Both keep the base clean: they see the likely duplicates, merge them (choosing
what survives) and undo a merge within its 30 days; both read the merge records,
the audit trail with each merged-away record's snapshot.
"""

from django.db import migrations

from customers.roles import (
    DATA_PROTECTION_OFFICER,
    MANAGER,
    grant_role_permissions,
    revoke_role_permissions,
)

CLEANING = {
    "customer": ("merge",),
    "duplicatecandidate": ("view",),
    "customermerge": ("view", "undo"),
}
PERMISSIONS = {MANAGER: CLEANING, DATA_PROTECTION_OFFICER: CLEANING}


def grant(apps, schema_editor):
    grant_role_permissions(apps, "customers", PERMISSIONS)


def revoke(apps, schema_editor):
    revoke_role_permissions(apps, "customers", PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [("customers", "0016_merges_and_duplicates")]

    operations = [migrations.RunPython(grant, revoke)]
