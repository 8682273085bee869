"""The admin for budget managers: one module per kind of page, registered on import."""

from quotas.admin import books, changes, keys, limits, people  # noqa: F401
