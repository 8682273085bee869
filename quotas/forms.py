"""Form fields that let budget managers type what they mean: '1h 30m', '$12.34', a model list."""

from datetime import timedelta
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
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
from quotas.validators import BIGINT_MAX
from quotas.vocabulary import LONGEST_DURATION


class DurationField(forms.CharField):
    """A duration typed as people say it ('45m', '1h 30m', '2 hours'); '0' for none."""

    default_error_messages = {
        "invalid": "Write a duration such as 45m, 1h 30m or 2 hours (0 for none).",
        "range": f"Use a duration from 0 up to {LONGEST_DURATION.days} days.",
    }

    def prepare_value(self, value):
        return display.duration(value) if isinstance(value, timedelta) else value

    def to_python(self, value):
        text = (super().to_python(value) or "").strip()
        if text in ("", "0"):
            return timedelta(0)
        # pytimeparse reads '1:30' as 90 seconds, which people rarely mean: ask for units.
        seconds = None if ":" in text else parse_duration(text)
        if seconds is None:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        if not 0 <= seconds <= LONGEST_DURATION.total_seconds():
            raise ValidationError(self.error_messages["range"], code="range")
        return timedelta(seconds=round(seconds))


class DollarsField(forms.DecimalField):
    """An amount typed in dollars and stored in cents."""

    def __init__(self, **kwargs):
        super().__init__(
            max_digits=18,
            decimal_places=2,
            min_value=Decimal(0),
            max_value=Decimal(BIGINT_MAX) / 100,
            **kwargs,
        )

    def prepare_value(self, value):
        return f"{Decimal(value) / 100:.2f}" if isinstance(value, int) else value

    def clean(self, value):
        dollars = super().clean(value)
        return 0 if dollars is None else int(dollars * 100)


def known_models(*extra: list[str]) -> list[tuple[str, str]]:
    """The models a budget manager can pick: those with a quota or with any usage, and any
    already chosen."""
    names = set(ModelQuota.objects.values_list("model", flat=True))
    names |= set(ModelUsage.objects.order_by().values_list("model", flat=True).distinct())
    for chosen in extra:
        names |= set(chosen)
    return [(name, name) for name in sorted(names)]


class AllowanceForm(forms.ModelForm):
    max_job_duration = DurationField(
        help_text="Typed as you would say it: 45m, 1h 30m, 2 hours. 0 means unlimited."
    )
    model_allowlist = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Tick the models this agent may use. None ticked means every model.",
    )

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
        chosen = self.instance.model_allowlist if self.instance.pk else []
        self.fields["model_allowlist"].choices = known_models(chosen)


class ModelQuotaForm(forms.ModelForm):
    cost_ceiling = DollarsField(
        label="Cost ceiling (US dollars per day)",
        help_text="What all agents together may spend on this model per day, e.g. 250.00. "
        "0 means unlimited.",
    )

    class Meta:
        model = ModelQuota
        fields = ["model", *MODEL_QUOTA_LIMITS]
        labels = {
            "input_price_per_mtok": "Input price (US dollars per million tokens)",
            "output_price_per_mtok": "Output price (US dollars per million tokens)",
        }


class RepoLimitForm(forms.ModelForm):
    cooldown_after_failure = DurationField(
        help_text="Typed as you would say it: 30m, 2 hours. 0 means no cooldown."
    )

    class Meta:
        model = RepoLimit
        fields = ["repo", *REPO_LIMITS]
