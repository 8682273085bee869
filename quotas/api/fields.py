"""Serializer fields for the shapes Go dispatchers send and expect."""

from datetime import timedelta

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from quotas.validators import BIGINT_MAX, LIMIT_BOUNDS, LONGEST_SECONDS, Bound

MAX_DURATION_SECONDS = LONGEST_SECONDS


@extend_schema_field({"type": "integer", "format": "int64", "minimum": 0, "maximum": BIGINT_MAX})
class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, no more: DRF's own field would also take "12", 12.0 and true."""

    default_error_messages = {
        "invalid": "A whole number is required, e.g. 1200.",
        # Formatted by DRF with the field's bounds; a limit's own words replace these.
        "max_value": "Use at most {max_value:,}.",
        "min_value": "Use {min_value:,} or more.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(**kwargs)

    @classmethod
    def limit(cls, name: str, **kwargs) -> "StrictIntegerField":
        """The field of the limit ``name``: its bounds and messages from
        quotas.validators.LIMIT_BOUNDS, as the admin's."""
        bound = LIMIT_BOUNDS[name]
        return cls(max_value=bound.maximum, error_messages=bound.messages(api=True), **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": MAX_DURATION_SECONDS})
class SecondsField(serializers.Field):
    """A duration limit as whole seconds; 0 means unlimited (or no cooldown)."""

    def __init__(self, name: str, **kwargs):
        self.bound: Bound = LIMIT_BOUNDS[name]
        super().__init__(error_messages=self.bound.messages(api=True), **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        if data < 0:
            self.fail("min_value")
        if data > self.bound.maximum:
            self.fail("max_value")
        return timedelta(seconds=data)

    def to_representation(self, value):
        return int(value.total_seconds())


class PriceField(serializers.DecimalField):
    """A price in US dollars per million tokens, to at most four decimal places, bounded as
    the admin bounds it (quotas.validators.LIMIT_BOUNDS)."""

    def __init__(self, name: str, **kwargs):
        bound = LIMIT_BOUNDS[name]
        super().__init__(
            max_digits=12,
            decimal_places=bound.places,
            min_value=0,
            max_value=bound.maximum,
            error_messages=bound.messages(api=True),
            **kwargs,
        )

    def validate_precision(self, value):
        # The amount before its digits: DRF counts digits first, and a price of a billion
        # dollars would be told it has too many decimal places.
        if value > self.max_value:
            self.fail("max_value")
        if value < self.min_value:
            self.fail("min_value")
        return super().validate_precision(value)
