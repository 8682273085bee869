"""The change log: every change to a limit and every action on the books, with who and why.

A limit's change is written when its history is (django-simple-history's signals, connected
in apps.py), so nothing that saves a limit can skip it; the actions (reset, cooldown ended,
job cancelled, import) are written by the services that carry them out, in their
transaction. Who acted is an ``Actor``: a person in the admin, an API key, a command. A
request or command names it once with ``acting(actor)``; a limit saved in the admin without
one is put down to the logged-in person, as its history already is.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from quotas import display
from quotas.models import ChangeLog
from quotas.vocabulary import Change, Subject


@dataclass(frozen=True)
class Actor:
    """Who did something, as the change log and a limit's history name them."""

    name: str
    user: object = None  # the person, when it was one

    @classmethod
    def person(cls, user) -> "Actor":
        return cls(user.get_username(), user)

    @classmethod
    def api_key(cls, api_key) -> "Actor":
        return cls(f"API key '{api_key.name}' ({api_key.prefix})")

    @classmethod
    def command(cls, name: str) -> "Actor":
        return cls(f"command {name}")


SERVICE = Actor("quotas")
_current: ContextVar[Actor | None] = ContextVar("quotas_actor", default=None)


@contextmanager
def acting(actor: Actor) -> Iterator[Actor]:
    """Put every change made inside down to ``actor``."""
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def current(user=None) -> Actor:
    """Who is acting now: the one named by ``acting``, else the person given, else the service."""
    actor = _current.get()
    if actor is not None:
        return actor
    return Actor.person(user) if user is not None else SERVICE


def record(
    *,
    change: Change,
    subject_kind: Subject,
    subject: str,
    summary: str,
    actor: Actor | None = None,
    reason: str = "",
    at: datetime | None = None,
) -> ChangeLog:
    actor = actor or current()
    return ChangeLog.objects.create(
        at=at or timezone.now(),
        actor=actor.name,
        user=actor.user,
        change=change,
        subject_kind=subject_kind,
        subject=subject,
        summary=summary,
        reason=reason,
    )


# A limit's history, as it is written

SUBJECT_OF = {
    "agentallowance": Subject.AGENT,
    "modelquota": Subject.MODEL,
    "repolimit": Subject.REPO,
}


def name_actor(sender, instance, history_instance, history_user=None, **kwargs) -> None:
    """pre_create_historical_record: the history names who changed the limit."""
    history_instance.history_actor = current(history_user).name


def log_limit_change(sender, instance, history_instance, history_user=None, **kwargs) -> None:
    """post_create_historical_record: the change log says what changed, in units."""
    change, summary = _what_changed(history_instance)
    if summary is None:
        return
    record(
        change=change,
        subject_kind=SUBJECT_OF[instance._meta.model_name],
        subject=str(instance),
        summary=summary,
        actor=current(history_user),
        reason=history_instance.history_change_reason or "",
        at=history_instance.history_date,
    )


def _what_changed(history) -> tuple[Change, str | None]:
    """The kind of change and its summary; None when a save changed none of the limits."""
    limit = history.instance_type
    if history.history_type == "+":
        return Change.LIMIT_ADDED, "added: " + _values(limit, history)
    if history.history_type == "-":
        return Change.LIMIT_DELETED, "deleted; it had " + _values(limit, history)
    previous = history.prev_record
    if previous is None:
        return Change.LIMIT_CHANGED, "changed: " + _values(limit, history)
    changes = history.diff_against(previous).changes
    if not changes:
        return Change.LIMIT_CHANGED, None
    if [c.field for c in changes] == ["paused"]:
        return (Change.PAUSED, "paused") if history.paused else (Change.RESUMED, "resumed")
    return Change.LIMIT_CHANGED, "; ".join(
        f"{display.field_label(limit, c.field)}: {display.field_value(limit, c.field, c.old)} "
        f"\u2192 {display.field_value(limit, c.field, c.new)}"
        for c in changes
    )


def _values(limit, history) -> str:
    values = ((name, getattr(history, name)) for name in limit.limit_fields)
    return "; ".join(
        f"{display.field_label(limit, name)} {display.field_value(limit, name, value)}"
        for name, value in values
    )
