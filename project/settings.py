"""Settings for the quotas service.

Everything comes from the environment (or a local ``.env`` file) through django-environ.
With no configuration at all the service runs on SQLite; ``SECRET_KEY`` is the one value
that must be given whenever ``DEBUG`` is off. Every setting is documented in README.md.
"""

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Values already in the environment win over the file. ENV_FILE names another file (tests
# point it at /dev/null so that a developer's .env cannot leak in).
environ.Env.read_env(env.str("ENV_FILE", default=str(BASE_DIR / ".env")))

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off: set it in the environment or in .env "
            "(`make run` writes one for you)."
        )
    SECRET_KEY = "insecure-development-key"  # only ever used with DEBUG on

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

# Behind TLS (HTTPS=on): secure cookies, HSTS, redirects to https, and trust of the proxy's
# X-Forwarded-Proto. Off by default so that `make run` works on plain http://127.0.0.1.
HTTPS = env.bool("HTTPS", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS)
if HTTPS and env.bool("BEHIND_PROXY", default=True):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The API answers the same to everyone; the admin must not be framed by other sites.
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "quotas.apps.QuotasAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "axes",
    "quotas",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "quotas.planning.AdminPlansMiddleware",
    "quotas.api.logging.APIRequestLogMiddleware",
    # Last, as django-axes asks: it turns a lockout raised by the login into its answer.
    "axes.middleware.AxesMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "project.wsgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        # IMMEDIATE takes the write lock when a transaction begins, so concurrent writers queue
        # on the busy timeout instead of failing with "database is locked" when a reader tries
        # to upgrade its lock mid-transaction. WAL lets readers go on while one writer writes.
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=30),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        **_db.get("OPTIONS", {}),
    }
    # The test database is a file, not shared memory: the concurrency tests use real threads,
    # and shared-cache memory databases fail with "table is locked" instead of waiting.
    # SQLITE_TEST_NAME lets two test runs on one machine keep out of each other's way.
    _db.setdefault("TEST", {})["NAME"] = env.str(
        "SQLITE_TEST_NAME", default=str(BASE_DIR / "test-db.sqlite3")
    )
else:
    _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    _db["CONN_HEALTH_CHECKS"] = True
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", 3))
    # Server-side parameters let psycopg prepare a statement the fifth time a connection runs
    # it, so PostgreSQL stops parsing the hot path's queries on every request. A prepared
    # statement is also planned once, not on every run: left to choose, PostgreSQL kept
    # re-planning the check's read, because its generic estimate of "jobs started in the last
    # hour" is a third of the ledger. The hot path's statements are lookups by key whose best
    # plan does not depend on the values. What each step saved: README, Performance. Turn off
    # behind a pooler that cannot keep prepared statements (PgBouncer in transaction mode
    # before 1.21). The admin's statements are reports whose best plan does depend on their
    # values: quotas.planning plans them for their values, in admin requests only.
    # JIT compilation never pays for these statements (it was seen adding half a second to
    # the admin's sorts of 100,000 agents, and the hot path's are far below its threshold).
    _db["OPTIONS"]["options"] = " ".join([_db["OPTIONS"].get("options", ""), "-c jit=off"])
    if env.bool("DB_PREPARED_STATEMENTS", default=True):
        _db["OPTIONS"].setdefault("server_side_binding", True)
        _db["OPTIONS"].setdefault("prepare_threshold", 5)
        _db["OPTIONS"]["options"] += " -c plan_cache_mode=force_generic_plan"
    _db["OPTIONS"]["options"] = _db["OPTIONS"]["options"].strip()

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username and address before the password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Failed admin logins: after AXES_FAILURE_LIMIT failures for one username from one address,
# that pair is locked out for AXES_COOLOFF_MINUTES.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The lockout page, in the admin's look, says when the lockout ends.
AXES_LOCKOUT_CALLABLE = "quotas.admin.people.lockout_response"
AXES_IPWARE_PROXY_COUNT = env.int("PROXY_COUNT", default=0)

# Bad API keys: after this many failed authentications from one address within a minute,
# further attempts are answered 429 without looking at the key.
QUOTAS_BAD_KEY_LIMIT = env.int("QUOTAS_BAD_KEY_LIMIT", default=20)
# How long a worker remembers a valid API key instead of looking it up again (0: never). A
# key revoked in the admin stops working within this time in every worker.
QUOTAS_API_KEY_CACHE_SECONDS = env.float("QUOTAS_API_KEY_CACHE_SECONDS", default=1.0)
if not 0 <= QUOTAS_API_KEY_CACHE_SECONDS <= 60:
    raise ImproperlyConfigured(
        f"QUOTAS_API_KEY_CACHE_SECONDS={QUOTAS_API_KEY_CACHE_SECONDS} must be from 0 to 60."
    )

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://quotas")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
# One date-time format on every admin page, Django's own included, naming the time zone
# ("Dec 1, 2026 16:03 UTC"), and counts with thousands separators ("1,250,000").
FORMAT_MODULE_PATH = ["project.formats"]
USE_THOUSAND_SEPARATOR = True

# The zone whose midnight starts a new quota day. Django shows times in the same zone, so the
# admin's "today" and the engine's "today" never disagree.
QUOTAS_TIME_ZONE = env.str("QUOTAS_TIME_ZONE", default="UTC")
try:
    ZoneInfo(QUOTAS_TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError) as exc:
    raise ImproperlyConfigured(
        f"QUOTAS_TIME_ZONE={QUOTAS_TIME_ZONE!r} is not a time zone name such as 'UTC' or "
        "'Europe/Berlin'."
    ) from exc
TIME_ZONE = QUOTAS_TIME_ZONE

# A check that is allowed answers "warning" once usage reaches this share of a limit.
QUOTAS_WARNING_RATIO = env.float("QUOTAS_WARNING_RATIO", default=0.8)
if not 0 < QUOTAS_WARNING_RATIO <= 1:
    raise ImproperlyConfigured(
        f"QUOTAS_WARNING_RATIO={QUOTAS_WARNING_RATIO} must be above 0 and at most 1 (e.g. 0.8)."
    )

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["quotas.api.auth.APIKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["quotas.api.auth.HasAPIKey"],
    "DEFAULT_PARSER_CLASSES": ["quotas.api.parsers.JSONObjectParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "quotas.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Go decodes numbers, not strings, into float64 prices.
    "COERCE_DECIMAL_TO_STRING": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "quotas API",
    "DESCRIPTION": "Decides how much work AI coding agents may do, and keeps the books on what "
    "they did. Authenticate with `Authorization: Bearer <key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page loads Swagger UI from this service's own static files, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["quotas.api.schema.canonical_paths"],
}

# History records who changed a limit; restoring an old version is done by editing, so that
# the form's validation applies.
SIMPLE_HISTORY_REVERT_DISABLED = True

# Refused dispatches that will clear but whose moment is unknown (a concurrency slot with no
# maximum job duration) still answer 429 with this Retry-After, in seconds.
QUOTAS_DEFAULT_RETRY_AFTER = env.int("QUOTAS_DEFAULT_RETRY_AFTER", default=30)

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
