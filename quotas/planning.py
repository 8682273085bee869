"""How PostgreSQL plans a request's statements: once for the API, for their values in the admin.

The API's statements are lookups by key, the same few shapes over and over: the connection
prepares each on the server and plans it once, generically (settings.py,
DB_PREPARED_STATEMENTS). The admin's are reports over many rows (sorts, filters, a day's
totals) whose best plan depends on the values: with a generic plan ``state = $1`` cannot use
the partial index of running jobs (the README's performance section has what that cost). So
an admin request switches its connection to plan every statement for its values and to
prepare none; the next API request on that connection switches back. A switch is one SET
statement, on the (rare) request that changes from one kind to the other; nothing otherwise.
"""

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

ADMIN = ("/admin/",)


class AdminPlansMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        connection = connections[DEFAULT_DB_ALIAS]
        if connection.vendor == "postgresql" and settings.DATABASES["default"]["OPTIONS"].get(
            "server_side_binding"
        ):
            plan_for(connection, admin=request.path.startswith(ADMIN))
        return self.get_response(request)


def plan_for(connection, *, admin: bool) -> None:
    """Make the connection plan as an admin request (or an API request) wants."""
    raw = connection.connection
    if raw is None:
        if not admin:
            return  # a new connection starts as the API wants it
        connection.ensure_connection()
        raw = connection.connection
    in_admin_mode = raw.prepare_threshold is None
    if in_admin_mode == admin:
        return
    threshold = settings.DATABASES["default"]["OPTIONS"].get("prepare_threshold", 5)
    raw.prepare_threshold = None if admin else threshold
    mode = "auto" if admin else "force_generic_plan"
    with connection.cursor() as cursor:
        cursor.execute(f"SET plan_cache_mode = {mode}")
