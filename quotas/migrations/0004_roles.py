"""The two roles of the admin: budget managers change limits, viewers only look."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

LIMITS = ["agentallowance", "modelquota", "repolimit"]
BOOKS = ["agentusage", "modelusage", "repousage", "job", "usageevent", "refusalcount"]

VIEWERS = [f"view_{model}" for model in LIMITS + BOOKS]
BUDGET_MANAGERS = [
    *VIEWERS,
    *(f"{action}_{model}" for model in LIMITS for action in ("add", "change", "delete")),
    "reset_usage",
    "export_usage",
]
GROUPS = {"Budget managers": BUDGET_MANAGERS, "Viewers": VIEWERS}


def create_groups(apps, schema_editor):
    # Permissions are normally created after all migrations ran; these groups need them now.
    quotas = apps.get_app_config("quotas")
    quotas.models_module = True
    create_permissions(quotas, apps=apps, verbosity=0)
    quotas.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="quotas", codename__in=codenames)
        )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("quotas", "0003_history_refusals_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
