"""The one domain exception type; the API maps each subclass to an HTTP status in one place."""


class QuotaError(Exception):
    """Something the caller asked for cannot be done; the message says what and why."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class AllowanceNotFound(QuotaError):
    """No allowance exists for the agent and there is no ``*`` default to create one from."""


class InvalidInput(QuotaError):
    """A value is malformed or out of range; nothing was changed."""


class UsageConflict(QuotaError):
    """The report contradicts what is already recorded for the job; nothing was changed."""
