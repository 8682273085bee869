"""Formats of the identifiers the service stores, shared by the models, the engine and the API."""

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from quotas.exceptions import InvalidInput
from quotas.vocabulary import USAGE_EVENTS, Action

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
                f"{field} must be a whole number from 0 to {BIGINT_MAX}", field=field
            )
    if sum(counts.values()) > BIGINT_MAX:
        raise InvalidInput(
            f"tokens_in + tokens_out must be at most {BIGINT_MAX}", field="tokens_out"
        )
