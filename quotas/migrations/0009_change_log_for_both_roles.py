"""Budget managers and viewers may read the change log, like the books (the two groups are
made by 0004; a group deleted since is not made again)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTED = {"Budget managers": ["view_changelog"], "Viewers": ["view_changelog"]}


def grant(apps, schema_editor):
    # Permissions are normally created after all migrations ran; these grants need them now.
    quotas = apps.get_app_config("quotas")
    quotas.models_module = True
    create_permissions(quotas, apps=apps, verbosity=0)
    quotas.models_module = None
    for group, permissions in _each(apps):
        group.permissions.add(*permissions)


def revoke(apps, schema_editor):
    for group, permissions in _each(apps):
        group.permissions.remove(*permissions)


def _each(apps):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GRANTED.items():
        permissions = Permission.objects.filter(
            content_type__app_label="quotas", codename__in=codenames
        )
        for group in Group.objects.filter(name=name):
            yield group, list(permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("quotas", "0008_backfill_consumption_and_refusals"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
