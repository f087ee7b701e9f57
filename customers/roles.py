"""Staff roles: which model permissions each job needs.

Groups are created by data migrations. Each app grants its own models' permissions in
a migration of its own (``grant_role_permissions``), so a later app extends the roles
without touching earlier ones. A role sees a staff page or admin page only through
these permissions.
"""

from __future__ import annotations

SUPPORT = "Support"
MARKETING = "Marketing"
MANAGER = "Manager"
DATA_PROTECTION_OFFICER = "Data protection officer"
ROLES = (SUPPORT, MARKETING, MANAGER, DATA_PROTECTION_OFFICER)

ALL = ("view", "add", "change", "delete")

# app label -> role -> model -> actions
CUSTOMERS_PERMISSIONS = {
    SUPPORT: {
        "customer": ("view", "add", "change"),
        "address": ("view", "add", "change", "delete"),
        "customeridentity": ("view",),
        "tag": ("view",),
        "attributedefinition": ("view",),
        "store": ("view",),
    },
    MARKETING: {
        "customer": ("view",),
        "address": ("view",),
        "tag": ALL,
        "attributedefinition": ("view",),
        "store": ("view",),
    },
    MANAGER: {
        "customer": ALL,
        "address": ALL,
        "customeridentity": ALL,
        "tag": ALL,
        "attributedefinition": ALL,
        "store": ALL,
    },
    DATA_PROTECTION_OFFICER: {
        "customer": ("view", "change"),
        "address": ("view", "change", "delete"),
        "customeridentity": ("view",),
        "tag": ("view",),
        "attributedefinition": ("view",),
        "store": ("view",),
    },
}

ORDERS_PERMISSIONS = {
    SUPPORT: {
        "order": ("view",),
        "orderline": ("view",),
        "product": ("view",),
        "category": ("view",),
    },
    MARKETING: {
        "order": ("view",),
        "orderline": ("view",),
        "product": ("view",),
        "category": ("view",),
    },
    MANAGER: {"order": ALL, "orderline": ALL, "product": ALL, "category": ALL},
    DATA_PROTECTION_OFFICER: {"order": ("view",), "orderline": ("view",)},
}


CONSENTS_PERMISSIONS = {
    SUPPORT: {
        "consentpurpose": ("view",),
        "consenttext": ("view",),
        "consentevent": ("view", "add"),
        "consentstate": ("view",),
    },
    MARKETING: {
        "consentpurpose": ("view",),
        "consenttext": ("view",),
        "consentstate": ("view",),
    },
    MANAGER: {
        "consentpurpose": ("view",),
        "consenttext": ("view",),
        "consentevent": ("view",),
        "consentstate": ("view",),
        "datasubjectrequest": ("view",),
    },
    DATA_PROTECTION_OFFICER: {
        "consentpurpose": ("view", "change"),
        "consenttext": ("view", "add"),
        "consentevent": ("view", "add"),
        "consentstate": ("view",),
        "doubleoptin": ("view",),
        "suppression": ("view",),
        "datasubjectrequest": ("view", "add", "change"),
        "accesslog": ("view",),
    },
}


def grant_role_permissions(apps, app_label: str, table: dict) -> None:
    """Create the role groups if needed and grant them ``table``'s permissions.

    Meant for data migrations: permissions are normally created after migrations
    run, so this creates the app's permissions first.
    """
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config(app_label)
    stub = not getattr(app_config, "models_module", None)
    if stub:  # migration state app configs are stubs; create_permissions needs it
        app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    if stub:
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, models in table.items():
        group, _ = group_model.objects.get_or_create(name=role)
        codenames = [
            f"{action}_{model}"
            for model, actions in models.items()
            for action in actions
        ]
        permissions = permission_model.objects.filter(
            content_type__app_label=app_label, codename__in=codenames
        )
        missing = set(codenames) - set(permissions.values_list("codename", flat=True))
        if missing:
            raise LookupError(f"Unknown permissions for {app_label}: {sorted(missing)}")
        group.permissions.add(*permissions)


def revoke_role_permissions(apps, app_label: str, table: dict) -> None:
    """Undo ``grant_role_permissions`` (reverse migrations): only ``table``'s grants."""
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, models in table.items():
        group = group_model.objects.filter(name=role).first()
        if group:
            group.permissions.remove(
                *permission_model.objects.filter(
                    content_type__app_label=app_label,
                    codename__in=[
                        f"{action}_{model}"
                        for model, actions in models.items()
                        for action in actions
                    ],
                )
            )


def grant_role_codenames(apps, app_label: str, table: dict[str, tuple]) -> None:
    """Grant permissions by codename (role -> codenames), for custom ones.

    A custom permission ("view_system_status") does not follow <action>_<model>,
    so ``grant_role_permissions``' table cannot name it.
    """
    grant_role_permissions(apps, app_label, dict.fromkeys(table, {}))
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, codenames in table.items():
        permissions = permission_model.objects.filter(
            content_type__app_label=app_label, codename__in=codenames
        )
        missing = set(codenames) - set(permissions.values_list("codename", flat=True))
        if missing:
            raise LookupError(f"Unknown permissions for {app_label}: {sorted(missing)}")
        group_model.objects.get(name=role).permissions.add(*permissions)


def revoke_role_codenames(apps, app_label: str, table: dict[str, tuple]) -> None:
    """Undo ``grant_role_codenames`` (reverse migrations)."""
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, codenames in table.items():
        group = group_model.objects.filter(name=role).first()
        if group:
            group.permissions.remove(
                *permission_model.objects.filter(
                    content_type__app_label=app_label, codename__in=codenames
                )
            )
