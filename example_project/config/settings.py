"""Settings for the example project (``scripts/demo``).

With no environment at all it runs on one machine with no servers: a SQLite file and kombu's
filesystem broker, both under ``<repo>/.state/``. Point it at real services with
``DATABASE_URL=postgres://...`` and ``CELERY_BROKER_URL=redis://...``.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


BASE_DIR = Path(__file__).resolve().parent.parent  # example_project/
REPO_DIR = BASE_DIR.parent
STATE_DIR = REPO_DIR / ".state"
STATE_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_flag("DEBUG", True)  # a demo: on unless told otherwise
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set the SECRET_KEY environment variable when DEBUG is off.")
    SECRET_KEY = "django-insecure-example-project-dev-only"
if DEBUG:
    ALLOWED_HOSTS = ["*"]
else:
    ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_celery_beat",
    "django_bgjobs",
    "django_bgjobs.delivery",
    "example_project.shop",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "example_project.config.urls"
WSGI_APPLICATION = "example_project.config.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# --- database: DATABASE_URL, else a SQLite file shared by the web process and the workers ---
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{STATE_DIR / 'demo.sqlite3'}",
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several processes write at once: take the write lock when a transaction starts (no
    # "database is locked" on upgrade), wait for it, and let readers run beside the writer.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = STATE_DIR / "static"

# --- email: printed on the worker's console ---
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "shop@example.com")

# --- Celery: CELERY_BROKER_URL, else kombu's filesystem transport (no server to run) ---
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://localhost//"
if CELERY_BROKER_URL.startswith("filesystem"):
    _broker_dir = STATE_DIR / "broker"
    # kombu's filesystem transport fails when its folders are missing.
    for _folder in ("data", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "data"),
        "data_folder_out": str(_broker_dir / "data"),
        "control_folder": str(_broker_dir / "control"),
        "polling_interval": 0.1,
    }
    # kombu's filesystem transport, each message written whole (see the module).
    CELERY_BROKER_TRANSPORT = "django_bgjobs.celery.filesystem_broker:Transport"
# Keep the LOGGING below: Celery would otherwise replace the root logger's handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Let the console email backend print to the terminal as it is, not as WARNING log lines.
CELERY_WORKER_REDIRECT_STDOUTS = False

# --- django_bgjobs ---
# Where this site is reached from outside: QStash signs each delivery for that exact URL.
PUBLIC_URL = os.environ.get("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")

# Django's own tasks API (shop/tasks.py), run by django-bgjobs: every @task is a job.
TASKS = {
    "default": {
        "BACKEND": "django_bgjobs.tasks.Backend",
        "OPTIONS": {"MAX_ATTEMPTS": 3, "BACKOFF": {"base": 1, "max": 30}},
    }
}

BGJOBS = {
    "QUEUES": ["default", "emails"],
    # The seed's consumer, POST /api/jobs/welcome, verified like QStash's own deliveries.
    # Keys from the Upstash console (these defaults are the QStash dev server's).
    "WEBHOOKS": {
        "qstash": {
            "scheme": "qstash",
            "secrets": [
                os.environ.get("QSTASH_CURRENT_SIGNING_KEY", "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"),
                os.environ.get("QSTASH_NEXT_SIGNING_KEY", "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"),
            ],
            "url": f"{PUBLIC_URL}/api/jobs/welcome",
        },
        # A partner receiving this shop's own deliveries (POST /api/demo/deliver publishes to
        # it): verified with the live signing keys, across rotations.
        "partner": {
            "scheme": "qstash",
            "secrets": "bgjobs",
            "url": f"{PUBLIC_URL}/webhooks/partner/",
            "job": "example_project.shop.jobs.record_order_event",
        },
    },
    # Outbound delivery refuses local addresses; the demo delivers to itself.
    "DELIVERY_ALLOW_HOSTS": ["127.0.0.1", "localhost"] if DEBUG else [],
    # GET /bgjobs/metrics with "Authorization: Bearer <token>" (the README's curl). A fixed
    # token in the demo only; give BGJOBS_METRICS_TOKEN a real secret anywhere else.
    "METRICS_TOKEN": os.environ.get("BGJOBS_METRICS_TOKEN")
    or ("demo-metrics-token-not-a-secret" if DEBUG else None),
}

# --- Django REST framework ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        # `curl -u admin:admin` in the demo; never send passwords like this over plain HTTP.
        *(["rest_framework.authentication.BasicAuthentication"] if DEBUG else []),
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}

# --- logging: what the jobs do, on the console of whichever process does it ---
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "console": {
            "format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s",
            "datefmt": "%H:%M:%S",
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "console"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        # Replaces the handler Django's default logging gives "django" (no line printed twice).
        "django": {"handlers": [], "level": "INFO"},
        "django_bgjobs": {"level": os.environ.get("BGJOBS_LOG_LEVEL", "INFO")},
        # Each delivery attempt is recorded (admin: Messages); not a line per request here.
        "httpx": {"level": "WARNING"},
        "example_project": {"level": "INFO"},
        # The worker's "ready" line; not Celery's per-task lines (the job lines say more).
        "celery.apps.worker": {"level": "INFO"},
        "celery.worker.consumer": {"level": "INFO"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
    },
}
