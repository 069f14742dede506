"""The test settings without django_bgjobs.delivery: a project that wants jobs only
(tests/test_extensions.py runs manage.py with them)."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "django_bgjobs.delivery"]
ROOT_URLCONF = "tests.urls_core_only"
