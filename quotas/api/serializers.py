"""Input and output shapes of the API. Field names are the Go JSON tags."""

from decimal import Decimal

from django.core.validators import MaxLengthValidator, ProhibitNullCharactersValidator
from django.db import DatabaseError, IntegrityError, transaction
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.validators import ProhibitSurrogateCharactersValidator, UniqueValidator

from quotas.api.fields import PriceField, SecondsField, StrictIntegerField
from quotas.models import (
    ALLOWANCE_LIMITS,
    MICROCENTS_PER_CENT,
    MODEL_QUOTA_LIMITS,
    REPO_LIMITS,
    AgentAllowance,
    Job,
    Limit,
    ModelQuota,
    RepoLimit,
)
from quotas.rules import EXCEEDED, OK, WARNING
from quotas.validators import (
    ACTIONS,
    ID_MAX_LENGTH,
    validate_agent_id,
    validate_allowance_agent_id,
    validate_job_id,
    validate_model_id,
    validate_model_list,
    validate_repo,
)
from quotas.vocabulary import REPO_EVENTS, USAGE_EVENTS


class IdField(serializers.CharField):
    """An identifier: text only (no numbers turned into text), never trimmed or altered.

    Its format validator (quotas.validators) allows only ASCII letters, digits and a few
    marks, at most 200 of them, so DRF's own checks of every text field (length, NUL and
    surrogate characters) could only repeat its verdict in other words: they are left out,
    and a malformed id gets one message that says what an id may be.
    """

    default_error_messages = {"invalid": "Text is required."}
    REPEATED = (
        MaxLengthValidator,
        ProhibitNullCharactersValidator,
        ProhibitSurrogateCharactersValidator,
    )

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", ID_MAX_LENGTH)  # still in the OpenAPI schema
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        if kwargs.get("validators"):
            self.validators = [v for v in self.validators if not isinstance(v, self.REPEATED)]

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def optional_id(validator) -> IdField:
    return IdField(required=False, allow_blank=True, default="", validators=[validator])


def limit(name: str, **kwargs) -> StrictIntegerField:
    """A whole-number limit, bounded and worded as quotas.validators.LIMIT_BOUNDS says."""
    return StrictIntegerField.limit(name, required=False, **kwargs)


def price(name: str) -> PriceField:
    return PriceField(name, required=False)


# Requests


class CheckInput(serializers.Serializer):
    agent_id = IdField(validators=[validate_agent_id])
    model = optional_id(validate_model_id)
    repo = optional_id(validate_repo)
    action = serializers.ChoiceField(choices=ACTIONS, required=False, allow_blank=True, default="")


class DispatchInput(serializers.Serializer):
    agent_id = IdField(validators=[validate_agent_id])
    job_id = IdField(validators=[validate_job_id])
    model = optional_id(validate_model_id)
    repo = optional_id(validate_repo)


class UsageReportInput(serializers.Serializer):
    agent_id = IdField(validators=[validate_agent_id])
    job_id = IdField(validators=[validate_job_id])
    model = optional_id(validate_model_id)
    tokens_in = StrictIntegerField(required=False, default=0)
    tokens_out = StrictIntegerField(required=False, default=0)
    event = serializers.ChoiceField(choices=USAGE_EVENTS)
    timestamp = serializers.DateTimeField(required=False, allow_null=True, default=None)


class RepoEventInput(serializers.Serializer):
    repo = IdField(validators=[validate_repo])
    kind = serializers.ChoiceField(choices=REPO_EVENTS)
    agent_id = optional_id(validate_agent_id)
    timestamp = serializers.DateTimeField(required=False, allow_null=True, default=None)


class ResetInput(serializers.Serializer):
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=500,
        help_text="Why, for the change log.",
    )


class JobFilter(serializers.Serializer):
    agent_id = optional_id(validate_agent_id)
    state = serializers.ChoiceField(
        choices=Job.State.values, required=False, allow_blank=True, default=""
    )


# Answers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class FieldErrors(serializers.Serializer):
    """Each malformed field with what to fix, e.g. {"tokens_in": ["..."]}; problems with the
    body as a whole come under "detail" or "non_field_errors"."""

    detail = serializers.CharField(required=False)
    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)


class QuotaCheckResultSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    status = serializers.ChoiceField(choices=[OK, WARNING, EXCEEDED])
    remaining_tokens = serializers.IntegerField(help_text="-1 means unlimited.")
    remaining_jobs = serializers.IntegerField(help_text="-1 means unlimited.")
    reason = serializers.CharField(help_text="Empty when allowed.")
    retry_after = serializers.IntegerField(
        allow_null=True, help_text="Seconds until the refusal clears, when that is known."
    )
    reason_code = serializers.CharField(
        help_text="The refusing rule as a stable word, e.g. concurrent_jobs; empty when allowed."
    )


class DispatchResultSerializer(QuotaCheckResultSerializer):
    job_id = serializers.CharField(allow_null=True)
    duplicate = serializers.BooleanField()


class UsageRecordSerializer(serializers.Serializer):
    agent_id = serializers.CharField()
    tokens_used = serializers.IntegerField()
    jobs_started = serializers.IntegerField()
    active_jobs = serializers.IntegerField()
    period_start = serializers.DateTimeField()
    daily_token_limit = serializers.IntegerField()
    daily_job_limit = serializers.IntegerField()
    concurrent_jobs = serializers.IntegerField()
    status = serializers.ChoiceField(choices=[OK, WARNING, EXCEEDED])


class UsageReportResultSerializer(serializers.Serializer):
    duplicate = serializers.BooleanField()
    usage = UsageRecordSerializer()


class ModelUsageSerializer(serializers.Serializer):
    model = serializers.CharField()
    tokens_used = serializers.IntegerField()
    cost_cents = serializers.SerializerMethodField()
    requests_last_hour = serializers.IntegerField()
    period_start = serializers.DateTimeField()

    def get_cost_cents(self, record) -> Decimal:
        return Decimal(record.cost_microcents) / MICROCENTS_PER_CENT


class RepoUsageSerializer(serializers.Serializer):
    repo = serializers.CharField()
    prs_opened = serializers.IntegerField()
    issues_opened = serializers.IntegerField()
    cooldown_until = serializers.DateTimeField(allow_null=True)
    period_start = serializers.DateTimeField()


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "agent_id",
            "job_id",
            "model",
            "repo",
            "state",
            "started_at",
            "ended_at",
            "tokens_in",
            "tokens_out",
            "tokens_charged",
            "cost_charged_microcents",
        ]


# Limits


def limit_meta(limit_model: type[Limit], limits: tuple[str, ...], id_format, taken: str) -> type:
    """A limit serializer's Meta: the id, checked by ``id_format`` and answered ``taken`` when
    another limit has it already; the limits; when it was created and last changed."""

    class Meta:
        model = limit_model
        fields = [limit_model.id_field, *limits, "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        id_validators = [id_format, UniqueValidator(limit_model.objects.all(), taken)]

    return Meta


# The docstring below is each limit's description in the OpenAPI document (drf-spectacular
# takes it from the first base class that has one).
class LimitSerializer(serializers.ModelSerializer):
    """What the three limit serializers share.

    The id in a limit's URL names it: changing it would orphan its usage history. Two
    requests creating the same id at once must end in a 400, not in the unique constraint's
    500; an update racing a delete must not bring the deleted limit back.
    """

    @property
    def id_field(self) -> str:
        return self.Meta.model.id_field

    def build_field(self, field_name, info, model_class, nested_depth):
        if field_name != self.id_field:
            return super().build_field(field_name, info, model_class, nested_depth)
        # An update need not repeat the id: the URL names the limit.
        return IdField, {"validators": self.Meta.id_validators, "required": self.instance is None}

    def validate(self, attrs):
        new = attrs.get(self.id_field)
        old = getattr(self.instance, self.id_field, None)
        if self.instance is not None and new is not None and new != old:
            raise serializers.ValidationError(
                {self.id_field: [f"{self.id_field} cannot be changed; create a new one instead."]}
            )
        return super().validate(attrs)

    def create(self, validated_data):
        try:
            with transaction.atomic():
                instance = super().create(validated_data)
        except IntegrityError:
            message = self.fields[self.id_field].validators[-1].message
            raise serializers.ValidationError({self.id_field: [message]}) from None
        return instance

    def update(self, instance, validated_data):
        for field, value in validated_data.items():
            setattr(instance, field, value)
        try:
            with transaction.atomic():
                instance.save(force_update=True)
        except DatabaseError:
            if type(instance).objects.filter(pk=instance.pk).exists():
                raise
            raise NotFound(f"{getattr(instance, self.id_field)} was deleted meanwhile.") from None
        return instance


class AllowanceSerializer(LimitSerializer):
    daily_token_limit = limit("daily_token_limit")
    daily_job_limit = limit("daily_job_limit")
    concurrent_jobs = limit("concurrent_jobs")
    max_job_duration = SecondsField(
        "max_job_duration", required=False, help_text="Whole seconds; 0 means unlimited."
    )
    model_allowlist = serializers.ListField(
        child=IdField(validators=[validate_model_id]),
        required=False,
        max_length=1000,
        validators=[validate_model_list],
        help_text="Model ids this agent may use; empty means all.",
    )

    Meta = limit_meta(
        AgentAllowance,
        ALLOWANCE_LIMITS,
        validate_allowance_agent_id,
        taken="This agent has an allowance already.",
    )


class ModelQuotaSerializer(LimitSerializer):
    daily_token_budget = limit("daily_token_budget")
    hourly_rate_limit = limit("hourly_rate_limit")
    cost_ceiling = limit("cost_ceiling", help_text="US cents per day; 0 means none.")
    input_price_per_mtok = price("input_price_per_mtok")
    output_price_per_mtok = price("output_price_per_mtok")

    Meta = limit_meta(
        ModelQuota, MODEL_QUOTA_LIMITS, validate_model_id, taken="This model has a quota already."
    )


class RepoLimitSerializer(LimitSerializer):
    max_daily_prs = limit("max_daily_prs")
    max_daily_issues = limit("max_daily_issues")
    cooldown_after_failure = SecondsField(
        "cooldown_after_failure", required=False, help_text="Whole seconds; 0 means none."
    )

    Meta = limit_meta(
        RepoLimit, REPO_LIMITS, validate_repo, taken="This repository has a limit already."
    )
