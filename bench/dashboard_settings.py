"""Settings for bench/dashboard.py: bench/settings.py plus the admin, on its own database
(``BENCH_DASHBOARD_DATABASE_URL``, default postgres://postgres@127.0.0.1:5432/bgjobs_dashboard)."""

import os

import dj_database_url

from bench.settings import *  # noqa: F403
from bench.settings import BGJOBS, INSTALLED_APPS

DATABASE_URL = os.environ.get(
    "BENCH_DASHBOARD_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bgjobs_dashboard"
)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=None)}

INSTALLED_APPS = [
    "django.contrib.admin",
    *INSTALLED_APPS[:2],
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    *INSTALLED_APPS[2:],
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
ROOT_URLCONF = "bench.dashboard_urls"
STATIC_URL = "/static/"
BGJOBS = {**BGJOBS, "QUEUES": ["default", "emails", "slow"], "DISPATCHER": "off"}
