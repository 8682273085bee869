"""A limit's values in the units people read them in, on the pages Django and
django-simple-history draw by themselves: the read-only page a Viewer gets, the History page
and an old version of a limit, and any yes/no column of a list.

Every value goes through display.field_value and every label through display.field_label,
as the forms' and the change log's do, so a limit reads the same on every page.
"""

from django.conf import settings
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.text import capfirst

from quotas import display
from quotas.changelog import SUBJECT_OF
from quotas.models import ChangeLog
from quotas.vocabulary import Change, Subject

IN_WORDS = "_in_words"
# The changes a limit's own history holds already; the change log's other entries about the
# limit (a reset, a cooldown ended early, a job cancelled) join them on its History page.
HISTORY_CHANGES = (
    Change.LIMIT_ADDED,
    Change.LIMIT_CHANGED,
    Change.LIMIT_DELETED,
    Change.PAUSED,
    Change.RESUMED,
)


def in_words(model, name: str, **options):
    """A read-only field or list column showing the field ``name`` as display says it."""

    @admin.display(description=display.field_label(model, name), **options)
    def show(obj):
        return display.field_value(model, name, getattr(obj, name))

    show.__name__ = name  # the list column's class stays field-<name>
    return show


def actor_of(record) -> str:
    """Who made a historical record: the change log's name for them (a person, "API key
    'name' (prefix)", a command), or the person simple-history knew of."""
    if record.history_actor:
        return record.history_actor
    return record.history_user.get_username() if record.history_user_id else "unknown"


class ReadableLimitAdmin:
    """Mixed into the limits' admins, before SimpleHistoryAdmin."""

    object_history_template = "admin/quotas/limit_history.html"

    def __init__(self, model, admin_site):
        super().__init__(model, admin_site)
        # Found by name (lookup_field) when a Viewer's page lists "<field>_in_words".
        for name in (model.id_field, *model.limit_fields):
            setattr(self, name + IN_WORDS, in_words(model, name))
        self.yes_no_columns = {
            field.name: in_words(model, field.name, ordering=field.name)
            for field in model._meta.concrete_fields
            if field.get_internal_type() == "BooleanField"
        }

    # A list's yes/no columns in words, not Django's icons

    def get_list_display(self, request):
        return [self.yes_no_columns.get(name, name) for name in super().get_list_display(request)]

    # The read-only page: each limit in words, under the words people use for it

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # Here rather than in get_fieldsets, which each admin shapes in its own way.
        if change and obj is not None and not self.has_change_permission(request, obj):
            shown = context["adminform"]
            context["adminform"] = helpers.AdminForm(
                shown.form,
                [
                    (title, {**options, "fields": self._in_words(options["fields"])})
                    for title, options in shown.fieldsets
                ],
                {},
                readonly_fields=self._in_words(shown.readonly_fields),
                model_admin=self,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _in_words(self, names):
        """Fields' names (of a fieldset, or of several fields on one line) with those of the
        limit's fields in words in their stead."""
        if isinstance(names, list | tuple):
            return [self._in_words(name) for name in names]
        return names + IN_WORDS if hasattr(self, names + IN_WORDS) else names

    # History: the limit's changes and the other actions on it, in words, with who and why

    def history_view(self, request, object_id, extra_context=None):
        # A deleted limit has no page of its own: its deletion, with what it had, is in the
        # change log.
        if self.get_object(request, unquote(object_id)) is None:
            raise Http404(f"No {self.model._meta.verbose_name} with this id exists (any more).")
        return super().history_view(request, object_id, extra_context)

    def render_history_view(self, request, template, context, **kwargs):
        if template == self.object_history_template:
            context["entries"] = self.history_entries(context["object"], context["page_obj"])
            context["time_zone"] = settings.QUOTAS_TIME_ZONE
        return super().render_history_view(request, template, context, **kwargs)

    def history_entries(self, obj, page) -> list[dict]:
        """The page's historical records and the change log's other entries of the same
        span, newest first."""
        records = list(page.object_list)
        entries = [
            self._record_entry(record, older)
            for record, older in zip(records, [*records[1:], None], strict=True)
        ]
        entries += [self._log_entry(obj, entry) for entry in self._other_actions(obj, page)]
        return sorted(entries, key=lambda entry: entry["at"], reverse=True)

    def _record_entry(self, record, older) -> dict:
        limit = self.model
        if record.history_type == "~":
            older = older or record.prev_record  # the page's last record: one query
        if record.history_type == "~" and older is not None:
            delta = record.diff_against(older, included_fields=limit.limit_fields)
            changes = [
                (
                    display.field_label(limit, change.field),
                    display.field_value(limit, change.field, change.old),
                    display.field_value(limit, change.field, change.new),
                )
                for change in sorted(delta.changes, key=lambda c: limit.limit_fields.index(c.field))
            ]
        else:  # added, deleted, or the first record there is: what it held
            changes = [
                (display.field_label(limit, name), None, display.field_value(limit, name, value))
                for name in limit.limit_fields
                if (value := getattr(record, name)) is not None
            ]
        return {
            "at": record.history_date,
            "what": record.get_history_type_display(),
            "who": actor_of(record),
            "why": record.history_change_reason or "",
            "changes": changes,
            "url": reverse(
                f"{self.admin_site.name}:{limit._meta.app_label}_{limit._meta.model_name}"
                "_simple_history",
                args=[getattr(record, limit._meta.pk.attname), record.history_id],
            ),
        }

    def _log_entry(self, obj, entry: ChangeLog) -> dict:
        subject = str(obj)
        about = "" if entry.subject == subject else f"job {entry.subject.split('/', 1)[1]}: "
        return {
            "at": entry.at,
            "what": capfirst(entry.get_change_display()),
            "who": entry.actor,
            "why": entry.reason,
            "summary": about + entry.summary,
        }

    def _other_actions(self, obj, page):
        """The change log's entries about ``obj`` that its history does not hold, of the span
        the page's records cover (the first page up to now, the last back to the start)."""
        kind, subject = SUBJECT_OF[self.model._meta.model_name], str(obj)
        about = Q(subject_kind=kind, subject=subject)
        if kind == Subject.AGENT:  # an agent id holds no '/'
            about |= Q(subject_kind=Subject.JOB, subject__startswith=f"{subject}/")
        entries = ChangeLog.objects.filter(about).exclude(change__in=HISTORY_CHANGES)
        records = page.paginator.object_list
        if page.has_next():
            entries = entries.filter(at__gte=records[page.end_index() - 1].history_date)
        if page.has_previous():
            entries = entries.filter(at__lt=records[page.start_index() - 2].history_date)
        return entries.order_by("-at", "-id")

    # An old version of a limit, read in words

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        """One version of the limit, read-only for everyone: reverting is off
        (SIMPLE_HISTORY_REVERT_DISABLED). django-simple-history's own page would save a posted
        form without asking for the change permission, and cannot rebuild the kinds of limit
        whose history leaves out a field only repository limits have."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        found = {self.model._meta.pk.attname: unquote(object_id), "history_id": version_id}
        try:
            record = self.model.history.model.objects.get(**found)
        except (ObjectDoesNotExist, ValidationError, ValueError):
            raise Http404("No such version of this limit.") from None
        version = record.history_object
        if not self.has_view_history_or_change_history_permission(request, version):
            raise PermissionDenied
        opts = self.model._meta
        fields = [
            (display.field_label(self.model, name), display.field_value(self.model, name, value))
            for name in (self.model.id_field, *self.model.limit_fields)
            if (value := getattr(record, name)) is not None
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"{version} as of {display.moment(record.history_date)}",
            "opts": opts,
            "object": version,
            "record": record,
            "who": actor_of(record),
            "fields": fields,
            "time_zone": settings.QUOTAS_TIME_ZONE,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/quotas/limit_version.html", context)
