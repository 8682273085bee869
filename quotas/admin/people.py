"""People and roles: adding a person in one form, their role as one choice, set-password
links, and the pages that only superusers see (people, groups, django-axes' login records).

Who may log in at all is decided in quotas/roles.py; this module only lets superusers change
it. The lockout page of django-axes and the page a set-password link opens are here too: they
are the two pages a person sees before they are logged in.
"""

from datetime import timedelta

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.conf import settings as axes_settings
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UsernameField
from django.contrib.auth.models import Group, User
from django.contrib.auth.tokens import default_token_generator
from django.contrib.auth.views import PasswordResetConfirmView
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.urls import path, reverse, reverse_lazy
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.html import format_html
from django.utils.http import urlsafe_base64_encode

from quotas import display
from quotas.roles import Role, may_use_admin, missing_role_group, role_of, set_role

ROLE_CHOICES = [
    (Role.BUDGET_MANAGER.value, "Budget manager: may change limits, reset and pause, export"),
    (Role.VIEWER.value, "Viewer: may only look"),
]
NO_ROLE = ("", "No role: cannot log in")


def spoken(delta: timedelta) -> str:
    """A span of time in words, to the minute: '3 days', '1 hour 30 minutes'."""
    minutes = max(1, -(-int(delta.total_seconds()) // 60))
    parts = []
    for name, size in (("day", 1440), ("hour", 60), ("minute", 1)):
        amount, minutes = divmod(minutes, size)
        if amount:
            parts.append(display.count(amount, name))
    return " ".join(parts)


def link_lifetime() -> str:
    return spoken(timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT))


# Pages for superusers only


class SuperusersOnly:
    """Pages that mean nothing to a budget manager: only superusers see them, whatever
    permissions a group is given."""

    def has_module_permission(self, request):
        return request.user.is_superuser and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)


admin.site.unregister(Group)


@admin.register(Group)
class SuperusersGroupAdmin(SuperusersOnly, GroupAdmin):
    pass


# django-axes' records of logins: registered unless AXES_ENABLE_ADMIN turned them off.
for _model, _model_admin in (
    (AccessAttempt, AccessAttemptAdmin),
    (AccessLog, AccessLogAdmin),
    (AccessFailureLog, AccessFailureLogAdmin),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
        admin.site.register(_model, type(_model_admin.__name__, (SuperusersOnly, _model_admin), {}))


# People


def role_field(*, required: bool) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        label="Role",
        choices=ROLE_CHOICES if required else [*ROLE_CHOICES, NO_ROLE],
        coerce=Role,
        empty_value=None,
        required=required,
        widget=forms.RadioSelect(attrs={"class": "radiolist"}),
        help_text="Superusers may do everything whatever their role.",
    )


def clean_role(form) -> Role | None:
    role = form.cleaned_data.get("role")
    if problem := missing_role_group(role):
        raise ValidationError(problem)
    return role


class PersonAddForm(AdminUserCreationForm):
    """A new person: name, role, and a password typed twice or a link to choose their own."""

    role = role_field(required=True)
    # Django's own field in other words: the stylesheet of its add_form.html hides the
    # password boxes while "false", the link, is chosen.
    usable_password = forms.ChoiceField(
        label="Password",
        choices={
            "false": "Show me a link to send them, so that they choose their own",
            "true": "Type a password for them now",
        },
        initial="false",
        widget=forms.RadioSelect(attrs={"class": "radiolist"}),
    )

    class Meta(AdminUserCreationForm.Meta):
        fields = ("username", "first_name", "last_name", "email")
        field_classes = {"username": UsernameField}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["usable_password"].help_text = f"The link works once, for {link_lifetime()}."

    clean_role = clean_role


class PersonChangeForm(forms.ModelForm):
    """A person's name, role and standing; the password is changed on a page of its own."""

    role = role_field(required=False)
    editor = None  # who is editing: set by the admin, so that nobody shuts themselves out

    class Meta:
        model = User
        fields = ("username", "first_name", "last_name", "email", "is_active", "is_superuser")
        field_classes = {"username": UsernameField}
        labels = {"is_active": "Active", "is_superuser": "Superuser"}
        help_texts = {
            "is_active": "Untick to stop them logging in; their name stays in the books.",
            "is_superuser": "May do everything, including managing people and API keys.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial.setdefault("role", role_of(self.instance) or "")

    clean_role = clean_role

    def clean(self):
        cleaned = super().clean()
        if self.editor is not None and self.instance.pk == self.editor.pk:
            yourself = "ask another superuser to do that."
            if not cleaned.get("is_active", True):
                self.add_error("is_active", f"You cannot deactivate yourself: {yourself}")
            if not cleaned.get("is_superuser", True):
                self.add_error("is_superuser", f"You cannot demote yourself: {yourself}")
        return cleaned


class RoleFilter(admin.SimpleListFilter):
    title = "role"
    parameter_name = "role"
    SUPERUSER, NONE = "superuser", "none"

    def lookups(self, request, model_admin):
        return [*Role.choices, (self.SUPERUSER, "Superuser"), (self.NONE, "No role")]

    def queryset(self, request, queryset):
        if self.value() in Role.values:
            return queryset.filter(groups__name=self.value())
        if self.value() == self.SUPERUSER:
            return queryset.filter(is_superuser=True)
        if self.value() == self.NONE:
            return queryset.filter(is_superuser=False).exclude(groups__name__in=Role.values)
        return queryset


admin.site.unregister(User)


@admin.register(User)
class PersonAdmin(SuperusersOnly, UserAdmin):
    form = PersonChangeForm
    add_form = PersonAddForm
    add_form_template = "admin/quotas/person_add_form.html"
    add_fieldsets = (
        (
            None,
            {
                "fields": (
                    "username",
                    "first_name",
                    "last_name",
                    "email",
                    "role",
                    "usable_password",
                    "password1",
                    "password2",
                )
            },
        ),
    )
    fieldsets = (
        (None, {"fields": ("username", "password_state")}),
        ("Name and email", {"fields": ("first_name", "last_name", "email")}),
        ("Role", {"fields": ("role", "is_active", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    readonly_fields = ("password_state", "last_login", "date_joined")
    list_display = ("username", "full_name", "email", "role_label", "can_log_in", "last_login")
    list_filter = (RoleFilter, "is_active")
    filter_horizontal = ()

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.editor = request.user
        return form

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        set_role(form.instance, form.cleaned_data["role"])

    @admin.display(description="name", ordering="last_name")
    def full_name(self, obj):
        return obj.get_full_name()

    @admin.display(description="role")
    def role_label(self, obj):
        if obj.is_superuser:
            return "Superuser"
        role = role_of(obj)
        return role.label if role else "No role"

    @admin.display(description="may log in", boolean=True)
    def can_log_in(self, obj):
        return may_use_admin(obj)

    @admin.display(description="password")
    def password_state(self, obj):
        return format_html(
            '{} <a class="button" href="{}">Type a new password</a> '
            '<a class="button" href="{}">Make a set-password link</a>',
            "Set." if obj.has_usable_password() else "None yet: they have not used a link.",
            reverse("admin:auth_user_password_change", args=[obj.pk]),
            reverse("admin:auth_user_set_password_link", args=[obj.pk]),
        )

    def get_urls(self):
        link = self.admin_site.admin_view(self.set_password_link_view)
        return [
            path("<id>/set-password-link/", link, name="auth_user_set_password_link"),
            *super().get_urls(),
        ]

    def set_password_link_view(self, request, id):
        person = self.get_object(request, unquote(id))
        if person is None:
            raise Http404(f"There is no person with the ID {id!r}.")
        if not self.has_change_permission(request, person):
            raise PermissionDenied
        return self.link_page(request, person, added=False)

    def response_add(self, request, obj, post_url_continue=None):
        if obj.has_usable_password() or IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        return self.link_page(request, obj, added=True)

    def link_page(self, request, person, *, added: bool) -> TemplateResponse:
        """The set-password link, shown once: it is not stored anywhere to be shown again."""
        uid = urlsafe_base64_encode(force_bytes(person.pk))
        token = default_token_generator.make_token(person)
        return TemplateResponse(
            request,
            "admin/quotas/set_password_link.html",
            {
                **self.admin_site.each_context(request),
                "title": f"A set-password link for {person.get_username()}",
                "opts": self.opts,
                "original": person,
                "added": added,
                "role": self.role_label(person),
                "link": request.build_absolute_uri(reverse("set_password", args=[uid, token])),
                "lifetime": link_lifetime(),
            },
        )


# Before logging in


class SetPasswordView(PasswordResetConfirmView):
    """Where a set-password link leads: the person chooses their password, then logs in."""

    template_name = "registration/set_password.html"
    success_url = reverse_lazy("admin:login")
    title = "Choose your password"

    def get_context_data(self, **kwargs):
        context = {**admin.site.each_context(self.request), **super().get_context_data(**kwargs)}
        if not context["validlink"]:
            context["title"] = "This link does not work any more"
        return {**context, "lifetime": link_lifetime()}

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(
            self.request,
            f"Your password is set. Log in as {form.user.get_username()} with it.",
        )
        return response


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer once a username is locked out from an address
    (AXES_LOCKOUT_CALLABLE): the admin's page, saying in words when to try again."""
    cool_off = get_cool_off(request)
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed logins",
        "failures": display.count(get_failure_limit(request, credentials), "failed login"),
        "username": get_client_username(request, credentials) or "",
        "wait": spoken(cool_off) if cool_off else "",
        # This answers the failure just counted, so the lockout ends one cool-off from now.
        "until": display.moment(timezone.now() + cool_off) if cool_off else "",
        "each_try_restarts": axes_settings.AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT,
    }
    return render(
        request,
        "registration/lockout.html",
        context,
        status=axes_settings.AXES_HTTP_RESPONSE_CODE,
    )
