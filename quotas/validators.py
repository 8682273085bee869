"""Formats of the identifiers the service stores, shared by the models, the engine and the API."""

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from quotas.exceptions import InvalidInput
from quotas.vocabulary import LONGEST_DURATION, USAGE_EVENTS, Action

BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1
ID_MAX_LENGTH = 200

DEFAULT_AGENT_ID = "*"

AGENT_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,200}\Z")
MODEL_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._:/-]{0,198}[A-Za-z0-9._:-])?\Z")
JOB_ID_RE = re.compile(r"^[A-Za-z0-9._:/@#+=-]{1,200}\Z")
# GitHub's rules: owner of letters, digits and single inner hyphens (at most 39), name of
# letters, digits, '.', '_' and '-' (at most 100), and never '.' or '..'.
REPO_RE = re.compile(
    r"^(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})/(?P<name>[A-Za-z0-9._-]{1,100})\Z"
)

validate_agent_id = RegexValidator(
    AGENT_ID_RE,
    "Use 1 to 200 letters, digits, '.', '_', ':' or '-' for an agent id.",
    code="invalid_agent_id",
)
validate_model_id = RegexValidator(
    MODEL_RE,
    "Use up to 200 letters, digits, '.', '_', ':', '-' or '/' for a model, starting with a "
    "letter or digit and not ending with '/'.",
    code="invalid_model",
)
validate_job_id = RegexValidator(
    JOB_ID_RE,
    "Use 1 to 200 letters, digits or '.', '_', ':', '/', '@', '#', '+', '=', '-' for a job id.",
    code="invalid_job_id",
)


def validate_repo(value: str) -> None:
    """Accept ``owner/name`` as GitHub spells repositories."""
    match = REPO_RE.match(value or "")
    if match is None or match["name"] in {".", ".."}:
        raise ValidationError(
            "Write the repository as owner/name, e.g. 'octo-org/api' (letters, digits, '-' in "
            "the owner; letters, digits, '.', '_', '-' in the name).",
            code="invalid_repo",
        )


def validate_allowance_agent_id(value: str) -> None:
    """An allowance belongs to one agent, or is the ``*`` default new agents are created from."""
    if value != DEFAULT_AGENT_ID:
        validate_agent_id(value)


def validate_model_list(value: object) -> None:
    """A model allowlist is a list of distinct model ids."""
    if not isinstance(value, list):
        raise ValidationError("The model allowlist must be a list of model ids.", code="invalid")
    for model in value:
        if not isinstance(model, str):
            raise ValidationError("Every model in the allowlist must be text.", code="invalid")
        validate_model_id(model)
    if len(set(value)) != len(value):
        raise ValidationError("The model allowlist names a model twice.", code="duplicate")


ACTIONS = tuple(Action.values)
ACTIONS_IN_WORDS = " or ".join([", ".join(f"'{a}'" for a in ACTIONS if a), "empty"])
ID_VALIDATORS = {
    "agent_id": validate_agent_id,
    "job_id": validate_job_id,
    "model": validate_model_id,
    "repo": validate_repo,
}


def require_valid(**values: str | None) -> None:
    """Raise ``InvalidInput`` naming the first malformed field; None and "" mean "not given"
    (the service functions decide which fields are required)."""
    for field, value in values.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"{field} must be text", field=field)
        if field == "action":
            if value not in ACTIONS:
                raise InvalidInput(f"action must be {ACTIONS_IN_WORDS}", field=field)
        elif field == "event":
            if value not in USAGE_EVENTS:
                raise InvalidInput(f"event must be {one_of(USAGE_EVENTS)}", field=field)
        elif value or field in ("agent_id", "job_id"):
            try:
                ID_VALIDATORS[field](value)
            except ValidationError as exc:
                raise InvalidInput(exc.messages[0], field=field) from None


def one_of(words) -> str:
    """'a, b or c', for messages that list what is accepted."""
    words = list(words)
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]


def require_token_counts(**counts: Any) -> None:
    for field, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= BIGINT_MAX:
            raise InvalidInput(
                f"{field} must be a whole number from 0 to {BIGINT_MAX:,}", field=field
            )
    if sum(counts.values()) > BIGINT_MAX:
        raise InvalidInput(
            f"tokens_in + tokens_out must be at most {BIGINT_MAX:,}", field="tokens_out"
        )


# What each limit may hold, once for the admin's forms and the API's serializers, and how a
# message says it in the limit's own unit: "Use at most 2,147,483,647 jobs.", never "less
# than or equal to 2147483647" or "no more than 18 digits".

CENTS = "US cents"
DOLLARS = "US dollars"
SECONDS = "seconds"
# The models' prices: 12 digits, 4 of them after the point.
PRICE_MAX = Decimal("99999999.9999")
LONGEST_SECONDS = int(LONGEST_DURATION.total_seconds())


@dataclass(frozen=True)
class Bound:
    """A limit holds 0 to ``maximum`` in the unit it is stored in: a count of ``unit``
    ('jobs'), US cents, US dollars or seconds. ``zero`` is what 0 means to a person ('' when
    it means nothing special), ``places`` how many decimal places a typed dollar amount has."""

    maximum: int | Decimal
    unit: str
    zero: str = "unlimited"
    places: int = 0

    def amount(self, value: int | Decimal, *, as_stored: bool = False) -> str:
        """``value`` in words of this unit: '2,147,483,647 jobs', '$12.50'; with
        ``as_stored``, cents as cents, as the API takes them: '1,250 US cents ($12.50)'."""
        from quotas import display  # display reads the models, which read this module

        if self.unit == CENTS:
            dollars = display.dollars_from_cents(value)
            return f"{value:,} {CENTS} ({dollars})" if as_stored else dollars
        if self.unit == DOLLARS:
            return display.price(value)
        if self.unit == SECONDS and value and value % 86400 == 0:
            return f"{value:,} {SECONDS} ({value // 86400:,} days)"
        return f"{value:,} {self.unit}"

    def messages(self, *, api: bool = False) -> dict[str, str]:
        """Django's and DRF's error codes for this limit, in words: the admin's (typed, money
        in dollars) or, with ``api``, the API's (JSON numbers, money in cents)."""
        zero = f"; 0 means {self.zero}" if self.zero else ""
        too_big = f"Use at most {self.amount(self.maximum, as_stored=api)}."
        unreadable = (self._sent() if api else self._typed()) + zero + "."
        messages = {
            "required": unreadable,
            "invalid": unreadable,
            "max_value": too_big,
            "min_value": f"Use {self.amount(0, as_stored=api)} or more{zero}.",
        }
        if self.places:
            places = (
                "Give the amount to the cent, e.g. $1,250.50."
                if self.unit == CENTS
                else f"Use at most {self.places} decimal places, e.g. $0.0001."
            )
            # Prices are held to their maximum first (quotas.api.fields.PriceField), so too
            # many digits can then only mean too many decimal places.
            messages |= {
                "max_whole_digits": too_big,
                "max_digits": places,
                "max_decimal_places": places,
            }
        return messages

    def _typed(self) -> str:
        if self.unit == CENTS:
            return "Write an amount in US dollars, such as 250, $1,250.50 or 0.75"
        if self.unit == DOLLARS:
            return "Write a price in US dollars, such as 3, $0.25 or 15.1234"
        return f"Write a whole number of {self.unit}, such as 250000 or 1,000,000"

    def _sent(self) -> str:
        if self.unit == CENTS:
            return f"A whole number of {CENTS} is required, e.g. 25050 for $250.50"
        if self.unit == DOLLARS:
            return f"A number of {DOLLARS} is required, e.g. 3 or 0.25"
        if self.unit == SECONDS:
            return "A whole number of seconds is required, e.g. 2700 for 45 minutes"
        return f"A whole number of {self.unit} is required, e.g. 1200"

    def check(self, value: int | Decimal) -> None:
        """Raise the admin's message when ``value`` (in the stored unit) is out of bounds."""
        if value < 0:
            raise ValidationError(self.messages()["min_value"], code="min_value")
        if value > self.maximum:
            raise ValidationError(self.messages()["max_value"], code="max_value")


LIMIT_BOUNDS: dict[str, Bound] = {
    "daily_token_limit": Bound(BIGINT_MAX, "tokens"),
    "daily_job_limit": Bound(INT_MAX, "jobs"),
    "concurrent_jobs": Bound(INT_MAX, "jobs"),
    "max_job_duration": Bound(LONGEST_SECONDS, SECONDS),
    "daily_token_budget": Bound(BIGINT_MAX, "tokens"),
    "hourly_rate_limit": Bound(INT_MAX, "jobs"),
    "cost_ceiling": Bound(BIGINT_MAX, CENTS, places=2),
    "input_price_per_mtok": Bound(PRICE_MAX, DOLLARS, zero="", places=4),
    "output_price_per_mtok": Bound(PRICE_MAX, DOLLARS, zero="", places=4),
    "max_daily_prs": Bound(INT_MAX, "pull requests"),
    "max_daily_issues": Bound(INT_MAX, "issues"),
    "cooldown_after_failure": Bound(LONGEST_SECONDS, SECONDS, zero="no cooldown"),
}
