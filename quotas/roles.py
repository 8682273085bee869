"""Who may use the admin: superusers, and the people who hold one of the two roles.

A role is a group that migration 0004 makes. Holding one is all it takes to log in: "Staff
status" plays no part, so a person put into a role by the people form, by a group widget or
in the shell can log in at once, and one taken out of every role is shut out at their next
click. Anyone else is told at the login form that they have no role, not that their password
is wrong.
"""

from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from quotas.vocabulary import AdminRole as Role

# Read once per person and request: the admin asks several times per page.
_CACHE = "_quotas_role"


def role_of(user) -> Role | None:
    """The person's role. Someone put into both groups is a budget manager: the wider role."""
    if not getattr(user, "is_authenticated", False):
        return None
    if not hasattr(user, _CACHE):
        # .all() rather than a filter, so that a list of people prefetched with their groups
        # costs no query per row.
        names = {group.name for group in user.groups.all()}
        setattr(user, _CACHE, next((role for role in Role if role.value in names), None))
    return getattr(user, _CACHE)


def may_use_admin(user) -> bool:
    """Whether the person may log into the admin: active, and a superuser or holding a role."""
    return bool(user.is_active and (user.is_superuser or role_of(user) is not None))


def missing_role_group(role: Role | None) -> str:
    """Why ``role`` cannot be given ('' when it can): its group may have been deleted."""
    if role and not Group.objects.filter(name=role.value).exists():
        return (
            f"There is no group named '{role.value}' any more, so nobody can be made a "
            f"{role.label.lower()}: a superuser must first create it again under Groups, with "
            "its permissions."
        )
    return ""


def set_role(user, role: Role | None) -> None:
    """Give the person exactly ``role`` (None: no role), leaving any other groups alone."""
    with transaction.atomic():
        others = Group.objects.filter(name__in=Role.values).exclude(name=role or "")
        user.groups.remove(*others)
        if role:
            user.groups.add(Group.objects.get(name=role.value))
    setattr(user, _CACHE, role)


class RoleLoginForm(AuthenticationForm):
    """The admin's login form, admitting by role where Django's admits by "Staff status"."""

    required_css_class = "required"
    error_messages = {
        **AuthenticationForm.error_messages,
        "no_role": (
            "Your password is right, but you have no role yet, so you cannot open the admin. "
            "Ask a superuser to make you a Budget manager or a Viewer."
        ),
    }

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        # Only reached with the right password, so it tells a stranger nothing.
        if not may_use_admin(user):
            raise ValidationError(self.error_messages["no_role"], code="no_role")
