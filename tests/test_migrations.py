"""Migrations match the models, under the project's own DEFAULT_AUTO_FIELD too."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings


@pytest.mark.django_db
@pytest.mark.parametrize(
    "auto_field", ["django.db.models.BigAutoField", "django.db.models.AutoField"]
)
def test_no_missing_migrations(auto_field):
    with override_settings(DEFAULT_AUTO_FIELD=auto_field):
        out = StringIO()
        call_command(
            "makemigrations", "django_bgjobs", "bgjobs_delivery", "--check", "--dry-run", stdout=out
        )
