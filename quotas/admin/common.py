"""What the admin's pages share: filters typed into a box, columns of used-of-limit and of
cost, and the confirmation an action asks for before it changes anything."""

from django.contrib import admin
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from quotas import display, selectors
from quotas.changelog import Actor
from quotas.vocabulary import Standing


class StandingFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return Standing.choices

    def queryset(self, request, queryset):
        if self.value() in Standing.values:
            return selectors.filter_by_standing(queryset, self.value())
        return queryset


class TextFilter(admin.SimpleListFilter):
    """A filter typed into a box: there may be far too many agents to list them all."""

    template = "admin/quotas/text_filter.html"

    def lookups(self, request, model_admin):
        return [("", "")]  # the sidebar only shows filters that have lookups

    def choices(self, changelist):
        params = changelist.get_filters_params()
        others = [
            (name, value)
            for name, values in params.items()
            if name != self.parameter_name
            for value in (values if isinstance(values, list) else [values])
        ]
        yield {"query_parts": others, "value": self.value() or ""}

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.parameter_name: self.value()})
        return queryset


class AgentFilter(TextFilter):
    title = "agent"
    parameter_name = "agent_id"


class ModelFilter(TextFilter):
    title = "model"
    parameter_name = "model"


def used_of_column(description: str, used: str, limit: str, *, bar: bool = False):
    """A column '1,234 of 10,000' of the ``used`` and ``limit`` fields, sorted by ``used``;
    with ``bar``, drawn as a progress bar too."""

    @admin.display(description=description, ordering=used)
    def column(self, obj):
        text = display.used_of(getattr(obj, used), getattr(obj, limit))
        return display.bar(getattr(obj, used), getattr(obj, limit), text) if bar else text

    return column


def cost_column(microcents: str):
    """A column of the cost in the ``microcents`` field, in dollars, sorted by it."""

    @admin.display(description="cost", ordering=microcents)
    def cost(self, obj):
        return display.dollars_from_microcents(getattr(obj, microcents))

    return cost


def confirmation(model_admin, request, queryset, **words) -> tuple[Actor, str] | TemplateResponse:
    """Who confirmed an action, and why; until a person confirmed it, the page that asks
    (the action then returns it). Nothing an agent's action changes is changed unasked."""
    if request.POST.get("confirmed") == "yes":
        reason = request.POST.get("reason", "").strip()[:500]
        return Actor.person(request.user), reason
    return TemplateResponse(
        request,
        "admin/quotas/confirm_action.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": words["confirm_label"].removeprefix("Yes, ").capitalize(),
            "opts": model_admin.model._meta,
            "objects": list(queryset[:100]),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": chosen_action(request),
            **words,
        },
    )


def chosen_action(request) -> str:
    """The action a person picked: with a menu above and below the list, both are posted,
    and the Go button pressed says which one counts (as Django's own changelist reads it)."""
    actions = request.POST.getlist("action")
    try:
        return actions[int(request.POST.get("index", 0))]
    except (ValueError, IndexError):
        return next((action for action in actions if action), "")
