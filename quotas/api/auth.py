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
# A key found valid is remembered by this process for QUOTAS_API_KEY_CACHE_SECONDS, so that a
# dispatcher's stream of requests costs one key lookup a second rather than one per request.
# Any saved or deleted key empties this process's memory at once (forget_keys); the other
# processes notice a revoked or deleted key once their memory of it runs out. Only keys that
# passed the hash check get in, and at most this many.
_remembered: dict[str, tuple[float, APIKey]] = {}
REMEMBER_AT_MOST = 1000
_clock = time.monotonic


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
    the lookup compiled once per connection, and its answer remembered for a moment."""
    seconds = settings.QUOTAS_API_KEY_CACHE_SECONDS
    remembered = _remembered.get(key)
    if remembered is not None and _clock() - remembered[0] < seconds:
        return remembered[1]
    prefix = key.partition(".")[0]
    api_key = (
        prepared.first(prepared.read(_unrevoked_with_prefix, prefix=prefix)) if prefix else None
    )
    if api_key is None or not api_key.is_valid(key):
        raise APIKey.DoesNotExist("Key is not valid.")
    if seconds > 0:
        if len(_remembered) >= REMEMBER_AT_MOST:
            _remembered.clear()
        _remembered[key] = (_clock(), api_key)
    return api_key


def forget_keys(**kwargs) -> None:
    """Connected to every save and delete of an API key (apps.py)."""
    _remembered.clear()


@prepared.statement("api_key")
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
        api_key.last_used_at = now  # the remembered copy, too


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
