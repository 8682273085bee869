"""Serializer fields for the shapes Go dispatchers send and expect."""

from datetime import timedelta

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from quotas.validators import BIGINT_MAX
from quotas.vocabulary import LONGEST_DURATION

MAX_DURATION_SECONDS = int(LONGEST_DURATION.total_seconds())


@extend_schema_field({"type": "integer", "format": "int64", "minimum": 0, "maximum": BIGINT_MAX})
class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, no more: DRF's own field would also take "12", 12.0 and true."""

    default_error_messages = {"invalid": "A whole number is required, e.g. 1200."}

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": MAX_DURATION_SECONDS})
class SecondsField(serializers.Field):
    """A duration as whole seconds; 0 means unlimited (or no cooldown)."""

    default_error_messages = {
        "invalid": "A whole number of seconds is required, e.g. 2700 for 45 minutes.",
        "range": f"Use 0 to {MAX_DURATION_SECONDS} seconds ({LONGEST_DURATION.days} days).",
    }

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        if not 0 <= data <= MAX_DURATION_SECONDS:
            self.fail("range")
        return timedelta(seconds=data)

    def to_representation(self, value):
        return int(value.total_seconds())
