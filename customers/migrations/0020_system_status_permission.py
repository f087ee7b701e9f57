"""Grant the Manager the system status page (/status/): checks, queues, failures."""

from django.db import migrations

from customers.roles import MANAGER, grant_role_permissions

CODENAME = "view_system_status"


def grant(apps, schema_editor):
    # Creates the app's permissions (and the role) first; the codename does not
    # follow <action>_<model>, so it is added by name.
    grant_role_permissions(apps, "customers", {MANAGER: {}})
    group = apps.get_model("auth", "Group").objects.get(name=MANAGER)
    permission = apps.get_model("auth", "Permission").objects.get(
        content_type__app_label="customers", codename=CODENAME
    )
    group.permissions.add(permission)


def revoke(apps, schema_editor):
    group = apps.get_model("auth", "Group").objects.filter(name=MANAGER).first()
    if group is not None:
        group.permissions.remove(
            *apps.get_model("auth", "Permission").objects.filter(
                content_type__app_label="customers", codename=CODENAME
            )
        )


class Migration(migrations.Migration):
    dependencies = [("customers", "0019_store_system_status_permission")]

    operations = [migrations.RunPython(grant, revoke)]
