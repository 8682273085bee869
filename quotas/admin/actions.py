"""Actions on one object, from a button on its page (ending a repository's cooldown,
cancelling a job): they ask first, like the actions of a list, and put down who took them."""

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from quotas.admin.common import confirmation
from quotas.changelog import Actor
from quotas.exceptions import InvalidInput


def act_on_one(
    model_admin, request, obj, *, act: Callable[[Actor, str], str], **words: str
) -> HttpResponse:
    """Ask a person to confirm an action on ``obj`` (``question``, ``consequence``,
    ``confirm_label``; with an optional reason), then ``act(actor, reason)``, which says what
    it did or raises InvalidInput saying why it did nothing; back to the object's page."""
    confirmed = confirmation(model_admin, request, [obj], **words)
    if isinstance(confirmed, TemplateResponse):
        return confirmed
    actor, reason = confirmed
    try:
        done = act(actor, reason)
    except InvalidInput as error:
        model_admin.message_user(request, f"Nothing changed: {error}.", messages.ERROR)
    else:
        model_admin.message_user(request, done, messages.SUCCESS)
    return HttpResponseRedirect(change_url(obj))


def change_url(obj) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def button(url_name: str, obj, label: str) -> dict:
    """A button among the object's tools at the top of its page (beside History), for
    templates/admin/quotas/object_actions.html."""
    return {"url": reverse(f"admin:{url_name}", args=[obj.pk]), "label": label}
