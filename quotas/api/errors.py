"""The one place where errors become HTTP answers."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError, connection
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from quotas.exceptions import AllowanceNotFound, InvalidInput, QuotaError, UsageConflict

STATUS_OF = {
    AllowanceNotFound: status.HTTP_404_NOT_FOUND,
    InvalidInput: status.HTTP_400_BAD_REQUEST,
    UsageConflict: status.HTTP_409_CONFLICT,
}


DATABASE_RETRY_AFTER = 5


def database_unavailable() -> Response:
    return Response(
        {"detail": "The database is unavailable; try again shortly."},
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
    )


def exception_handler(exc, context):
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database went away (stopped, restarting, unreachable): say so, and let Django
        # drop the broken connection so that the next request connects afresh.
        connection.close_if_unusable_or_obsolete()
        return database_unavailable()
    if isinstance(exc, QuotaError):
        code = STATUS_OF.get(type(exc), status.HTTP_400_BAD_REQUEST)
        body = {exc.field: [exc.message]} if code == 400 and exc.field else {"detail": exc.message}
        return Response(body, status=code)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {"detail": f"Request body too large: at most {limit} bytes."},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, exceptions.UnsupportedMediaType):
        # A wrong content type is bad input like any other: 400, saying what to send.
        exc = exceptions.ParseError(
            f"{exc.detail} Send a JSON body with Content-Type: application/json."
        )
    return drf_exception_handler(exc, context)


def not_found(request, exception=None):
    """Django's 404 for paths no URL pattern matches: JSON under /api/, HTML elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """The last resort: an API client gets JSON, never an HTML error page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)
