"""Full emails and phones in lists for the roles that work with them.

Marketing, the Manager and the DPO see contacts in full in every list; Support
sees a phone's last digits and an email's first letter and domain in lists, and
the full contacts on the customer page, whose every view is in the access log.
"""

from django.db import migrations

from customers.roles import (
    DATA_PROTECTION_OFFICER,
    MANAGER,
    MARKETING,
    grant_role_codenames,
    revoke_role_codenames,
)

CODENAMES = {
    role: ("view_full_contacts",)
    for role in (MARKETING, MANAGER, DATA_PROTECTION_OFFICER)
}


def grant(apps, schema_editor):
    grant_role_codenames(apps, "customers", CODENAMES)


def revoke(apps, schema_editor):
    revoke_role_codenames(apps, "customers", CODENAMES)


class Migration(migrations.Migration):
    dependencies = [("customers", "0021_customer_full_contacts_permission")]

    operations = [migrations.RunPython(grant, revoke)]
