"""API keys: ``Authorization: Bearer <key>``, checked once for every endpoint.

Keys are made and hashed by djangorestframework-api-key; this module only reads the Bearer
header (the library's own parser expects ``Api-Key``), answers 401 with ``WWW-Authenticate``
for a missing or wrong key, and 403 for a right key of the wrong role.
"""

import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from quotas import prepared
from quotas.models import APIKey

# Recording every use would turn each read into a write; once a minute is enough to tell
# which keys are in use.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class APIKeyAuthentication(authentication.BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword:
            return None
        address = request.META.get("REMOTE_ADDR", "")
        if _bad_keys_this_minute(address) >= settings.QUOTAS_BAD_KEY_LIMIT:
            raise exceptions.Throttled(
                wait=60 - int(time.time()) % 60,
                detail="Too many invalid API keys from this address; wait and try again.",
            )
        try:
            if len(header) != 2:
                raise exceptions.AuthenticationFailed(
                    "Malformed Authorization header: send 'Authorization: Bearer <key>'."
                )
            api_key = _usable_key(header[1].decode("ascii"))
        except (UnicodeDecodeError, APIKey.DoesNotExist):
            _count_bad_key(address)
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        except exceptions.AuthenticationFailed:
            _count_bad_key(address)
            raise
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        _note_use(api_key)
        return (None, api_key)

    def authenticate_header(self, request):
        return 'Bearer realm="quotas"'


def _usable_key(key: str) -> APIKey:
    """The library's get_from_key (an unrevoked key with this prefix whose hash matches), with
    the lookup compiled once per connection: it runs before every API request."""
    prefix = key.partition(".")[0]
    api_key = prepared.first("api_key", _unrevoked_with_prefix, prefix=prefix) if prefix else None
    if api_key is None or not api_key.is_valid(key):
        raise APIKey.DoesNotExist("Key is not valid.")
    return api_key


def _unrevoked_with_prefix(*, prefix: str):
    return APIKey.objects.get_usable_keys().filter(prefix=prefix)


def _bad_key_counter(address: str) -> str:
    # One counter per address and clock minute: a burst is refused, the next minute is not.
    return f"quotas:bad-api-key:{address}:{int(time.time()) // 60}"


def _bad_keys_this_minute(address: str) -> int:
    return cache.get(_bad_key_counter(address), 0)


def _count_bad_key(address: str) -> None:
    counter = _bad_key_counter(address)
    cache.add(counter, 0, timeout=120)
    cache.incr(counter)


def _note_use(api_key: APIKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        APIKey.objects.filter(pk=api_key.pk).update(last_used_at=now)


class HasAPIKey(permissions.BasePermission):
    """Any valid key: dispatchers and admins alike."""

    def has_permission(self, request, view):
        return isinstance(request.auth, APIKey)


class HasAdminKey(permissions.BasePermission):
    """A valid key with the admin role."""

    message = "This action needs an API key with the admin role."

    def has_permission(self, request, view):
        return isinstance(request.auth, APIKey) and request.auth.role == APIKey.Role.ADMIN


class ReadAnyWriteAdmin(permissions.BasePermission):
    """Limits can be read with any key and changed only with an admin key."""

    message = HasAdminKey.message

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return HasAPIKey().has_permission(request, view)
        return HasAdminKey().has_permission(request, view)


class BearerKeyScheme(OpenApiAuthenticationExtension):
    """Tells drf-spectacular how the API authenticates, for the schema and the docs page."""

    target_class = APIKeyAuthentication
    name = "bearerKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key from the admin."}
