"""Settings for the test suite.

DATABASE_URL picks the database (default: a SQLite file), CELERY_BROKER_URL the broker
(default: kombu's filesystem transport, no server). scripts/test runs the suite on both
PostgreSQL + Redis and SQLite + filesystem.
"""

import os
import tempfile
from pathlib import Path

import dj_database_url
import django

BASE_DIR = Path(__file__).resolve().parent.parent
# Where the test database file, the broker folders and worker logs go ("" counts as unset).
STATE_DIR = Path(
    os.environ.get("BGJOBS_TEST_STATE") or Path(tempfile.gettempdir()) / "bgjobs-tests"
)
STATE_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_bgjobs",
    "django_bgjobs.delivery",
    "tests",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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
STATIC_URL = "/static/"

_sqlite = STATE_DIR / "tests.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{_sqlite}"), conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not :memory:, so worker processes share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(STATE_DIR / "test-tests.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
# A worker process started by a test connects to the test database itself.
if os.environ.get("BGJOBS_TEST_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["BGJOBS_TEST_DB_NAME"]

_broker_dir = STATE_DIR / "broker"
for _folder in ("data", "control"):
    (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://localhost//")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(_broker_dir / "data"),
        "data_folder_out": str(_broker_dir / "data"),
        "control_folder": str(_broker_dir / "control"),
        "polling_interval": 0.05,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {}
)
if CELERY_BROKER_URL.startswith("filesystem"):
    CELERY_BROKER_TRANSPORT = "django_bgjobs.celery.filesystem_broker:Transport"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

BGJOBS = {
    "QUEUES": ["default", "emails", "slow"],
    "LEASE_SECONDS": float(os.environ.get("BGJOBS_TEST_LEASE", "2")),
    "DISPATCH_INTERVAL": float(os.environ.get("BGJOBS_TEST_DISPATCH_INTERVAL", "0.2")),
    "REPUBLISH_AFTER": float(os.environ.get("BGJOBS_TEST_REPUBLISH_AFTER", "3")),
    "BACKOFF": {"base": 0.05, "factor": 2, "max": 0.5, "jitter": True},
    # tests/test_shutdown.py starts workers with a short grace period.
    "SHUTDOWN_GRACE": float(os.environ.get("BGJOBS_TEST_SHUTDOWN_GRACE", "25")),
    # tests/test_metrics.py scrapes with it.
    "METRICS_TOKEN": "tests-metrics-token-0123456789abcdef",
    # Outbound delivery tests deliver to HTTP servers on the loopback address.
    "DELIVERY_ALLOW_HOSTS": ["127.0.0.1"],
}

# Django's tasks API on django-bgjobs (tests/test_django_tasks.py, tasks in tests/task_defs.py);
# "immediate" is Django's own, for the check that bgjobs' options need bgjobs' backend.
TASKS = {
    "default": {
        "BACKEND": "django_bgjobs.tasks.Backend",
        # "outside": a queue this backend lists and BGJOBS["QUEUES"] does not.
        "QUEUES": ["default", "emails", "outside"],
        "OPTIONS": {"MAX_ATTEMPTS": 2},
    },
    "immediate": {
        "BACKEND": (
            "django.tasks.backends.immediate.ImmediateBackend"
            if django.VERSION >= (6, 0)
            else "django_tasks.backends.immediate.ImmediateBackend"
        )
    },
}

# The public URL QStash would sign for: what a proxy-terminated request cannot tell by itself.
PUBLIC_URL = "https://shop.example.com"
BGJOBS["WEBHOOKS"] = {
    "qstash": {
        "scheme": "qstash",
        "url": f"{PUBLIC_URL}/own/qstash",
        "job": "tests.jobs.handle_webhook",
        "secrets": ["sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r", "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"],
    },
    "qstash-generic": {
        "scheme": "qstash",
        "url": f"{PUBLIC_URL}/webhooks/qstash-generic/",
        "secrets": ["sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"],
        "job": "tests.jobs.handle_webhook",
    },
    "clerk": {
        "scheme": "standard",
        "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        "job": "tests.jobs.handle_webhook",
        "max_body": 256 * 1024,
    },
    "stripe": {
        "scheme": "stripe",
        "secrets": ["whsec_test_secret_for_stripe_webhooks"],
        "job": "tests.jobs.handle_webhook",
    },
    "github": {
        "scheme": "github",
        "secrets": ["It's a Secret to Everybody"],
        "job": "tests.jobs.handle_webhook",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_bgjobs": {"handlers": ["console"], "level": "WARNING"}},
}
