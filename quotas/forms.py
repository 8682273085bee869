"""Form fields that let budget managers type what they mean: '1h 30m', '$1,250.50',
'1,000,000', a model list ticked. Each limit is held to its bounds in
quotas.validators.LIMIT_BOUNDS, as the API holds it, and labelled in display.LABELS' words."""

import re
from datetime import timedelta
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils.html import format_html
from pytimeparse import parse as parse_duration

from quotas import display
from quotas.models import (
    MODEL_QUOTA_LIMITS,
    REPO_LIMITS,
    AgentAllowance,
    ModelQuota,
    ModelUsage,
    RepoLimit,
)
from quotas.validators import CENTS, DOLLARS, LIMIT_BOUNDS, SECONDS, Bound

# '1,000,000', '250000', '$1,250.50', '-5', '.5'. Commas must group thousands: '1,50' is
# refused rather than guessed, since in much of Europe it means 1.50.
AMOUNT_RE = re.compile(
    r"(?P<sign>-?)(?P<dollar>\$?)(?P<whole>\d{1,3}(?:,\d{3})+|\d*)(?:\.(?P<fraction>\d*))?"
)
# More whole digits than any limit's maximum has: refused as too big before Python is asked
# to read a number of thousands of digits.
LONGEST_WHOLE = 30


def read_amount(text: str, *, dollars: bool) -> tuple[bool, int, str] | None:
    """Whether an amount as typed is negative, its whole part and its decimal digits: with or
    without thousands commas and, for ``dollars``, a '$'; None if it is not a number so
    written."""
    text = text.replace(" ", "")
    if text.startswith("$-"):
        text = "-$" + text[2:]
    match = AMOUNT_RE.fullmatch(text)
    if match is None or (match["dollar"] and not dollars):
        return None
    whole, fraction = match["whole"].replace(",", ""), match["fraction"] or ""
    if not whole and not fraction:
        return None
    if len(whole.lstrip("0")) > LONGEST_WHOLE:
        whole = "9" * LONGEST_WHOLE
    return bool(match["sign"]), int(whole or "0"), fraction


class LimitField(forms.Field):
    """A limit typed as people write it ('1,000,000', '$1,250.50', 'unlimited'), shown back
    the same way, and held to its ``bound``; money is typed in dollars, whatever it is
    stored in."""

    def __init__(self, bound: Bound, **kwargs):
        self.bound = bound
        money = bound.unit in (CENTS, DOLLARS)
        attrs = {"inputmode": "decimal" if money else "numeric", "autocomplete": "off"}
        kwargs.setdefault("widget", forms.TextInput(attrs=attrs))
        super().__init__(error_messages=bound.messages(), **kwargs)

    def prepare_value(self, value):
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            return value  # as typed, when a form comes back with a message
        if self.bound.unit == CENTS:
            return display.dollars_from_cents(value)
        if self.bound.unit == DOLLARS:
            return display.price(value)
        return display.number(value)

    def to_python(self, value):
        text = str(value if value is not None else "").strip()
        if not text:
            return None
        if self.bound.zero and text.lower() in ("unlimited", self.bound.zero):
            return 0
        read = read_amount(text, dollars=self.bound.unit in (CENTS, DOLLARS))
        if read is None:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        negative, whole, fraction = read
        fraction = fraction.rstrip("0")
        if fraction and not self.bound.places:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        if len(fraction) > self.bound.places:
            raise ValidationError(self.error_messages["max_decimal_places"], code="places")
        stored = self._stored(whole, fraction)
        stored = -stored if negative else stored
        self.bound.check(stored)
        return stored

    def _stored(self, whole: int, fraction: str) -> int | Decimal:
        if self.bound.unit == DOLLARS:
            return Decimal(f"{whole}.{fraction or '0'}")
        if self.bound.unit == CENTS:
            return whole * 100 + int(fraction.ljust(2, "0"))
        return whole


class DurationField(forms.CharField):
    """A duration typed as people say it ('45m', '1h 30m', '2 hours'); '0' for none."""

    def __init__(self, bound: Bound, **kwargs):
        self.bound = bound
        kwargs["error_messages"] = {
            "invalid": f"Write a duration such as 45m, 1h 30m or 2 hours (0 for {bound.zero}).",
            "range": f"Use a duration from 0 up to {bound.maximum // 86400:,} days.",
        }
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return display.duration(value) if isinstance(value, timedelta) else value

    def to_python(self, value):
        text = (super().to_python(value) or "").strip()
        if text.lower() in ("", "0", "unlimited", "none", self.bound.zero):
            return timedelta(0)
        # pytimeparse reads '1:30' as 90 seconds, which people rarely mean: ask for units.
        seconds = None if ":" in text else parse_duration(text)
        if seconds is None:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        if not 0 <= seconds <= self.bound.maximum:
            raise ValidationError(self.error_messages["range"], code="range")
        return timedelta(seconds=round(seconds))


def limit_field(model, name: str, help_text: str = "") -> forms.Field:
    """The form field of one limit, in display.LABELS' words and with its model's help
    text unless given another."""
    bound = LIMIT_BOUNDS[name]
    field = DurationField if bound.unit == SECONDS else LimitField
    return field(
        bound,
        label=display.field_label(model, name),
        help_text=help_text or model._meta.get_field(name).help_text,
    )


class ModelCheckboxes(forms.CheckboxSelectMultiple):
    """The models to tick, with the rule for none ticked written below them and tied to every
    box (aria-describedby), so that a screen reader says it at each box, not only once."""

    rule = "Tick the models this agent may use. None ticked means every model."

    def render(self, name, value, attrs=None, renderer=None):
        rule_id = f"{(attrs or {}).get('id') or 'id_' + name}_rule"
        boxes = super().render(
            name, value, {**(attrs or {}), "aria-describedby": rule_id}, renderer
        )
        return format_html(
            # A span: the admin indents a p.help or div.help inside a form by a label's width.
            '<div class="quota-allowlist">{}<span class="help" id="{}">{}</span></div>',
            boxes,
            rule_id,
            self.rule,
        )


def known_models(*extra: list[str]) -> list[tuple[str, str]]:
    """The models a budget manager can pick: those with a quota or with any usage, and any
    already chosen."""
    names = set(ModelQuota.objects.values_list("model", flat=True))
    names |= set(ModelUsage.objects.order_by().values_list("model", flat=True).distinct())
    for chosen in extra:
        names |= set(chosen)
    return [(name, name) for name in sorted(names)]


class LimitForm(forms.ModelForm):
    """What the three limit forms share: every field labelled as people say it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            field.label = display.field_label(self._meta.model, name)


class AllowanceForm(LimitForm):
    daily_token_limit = limit_field(AgentAllowance, "daily_token_limit")
    daily_job_limit = limit_field(AgentAllowance, "daily_job_limit")
    concurrent_jobs = limit_field(AgentAllowance, "concurrent_jobs")
    max_job_duration = limit_field(
        AgentAllowance,
        "max_job_duration",
        "Typed as you would say it: 45m, 1h 30m, 2 hours. 0 means unlimited.",
    )
    model_allowlist = forms.MultipleChoiceField(required=False, widget=ModelCheckboxes)

    class Meta:
        model = AgentAllowance
        fields = [
            "agent_id",
            "paused",
            "daily_token_limit",
            "daily_job_limit",
            "concurrent_jobs",
            "max_job_duration",
            "model_allowlist",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "model_allowlist" in self.fields:
            chosen = self.instance.model_allowlist if self.instance.pk else []
            self.fields["model_allowlist"].choices = known_models(chosen)


class ModelQuotaForm(LimitForm):
    daily_token_budget = limit_field(ModelQuota, "daily_token_budget")
    hourly_rate_limit = limit_field(ModelQuota, "hourly_rate_limit")
    cost_ceiling = limit_field(
        ModelQuota,
        "cost_ceiling",
        "What all agents together may spend on this model per day, in US dollars, e.g. "
        "$250 or $1,250.50. 0 means unlimited.",
    )
    input_price_per_mtok = limit_field(
        ModelQuota, "input_price_per_mtok", "US dollars per million input tokens, e.g. $3."
    )
    output_price_per_mtok = limit_field(
        ModelQuota, "output_price_per_mtok", "US dollars per million output tokens, e.g. $15."
    )

    class Meta:
        model = ModelQuota
        fields = ["model", *MODEL_QUOTA_LIMITS]


class RepoLimitForm(LimitForm):
    max_daily_prs = limit_field(RepoLimit, "max_daily_prs")
    max_daily_issues = limit_field(RepoLimit, "max_daily_issues")
    cooldown_after_failure = limit_field(
        RepoLimit,
        "cooldown_after_failure",
        "Typed as you would say it: 30m, 2 hours. 0 means no cooldown.",
    )

    class Meta:
        model = RepoLimit
        fields = ["repo", *REPO_LIMITS]
