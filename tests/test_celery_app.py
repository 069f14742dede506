"""Which Celery app bgjobs uses, and that its own defaults are the safe ones."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from celery import Celery
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_bgjobs.celery import app as celery_app
from django_bgjobs.celery.broker import EXECUTE_TASK
from tests.conftest import REPO

project_app = Celery("project", set_as_current=False)


def test_bgjobs_own_app_is_safe_by_default():
    app = celery_app.create_app()
    assert app.conf.accept_content == ["json"] and app.conf.task_serializer == "json"
    assert app.conf.worker_prefetch_multiplier == 1
    task = app.tasks[EXECUTE_TASK]
    assert task.acks_late and task.reject_on_worker_lost and task.ignore_result


def test_the_projects_current_app_is_used_and_gets_the_task():
    previous = celery_app.get_celery_app()
    mine = Celery("myproject")  # what proj/celery.py does: becomes the current app
    try:
        assert celery_app.get_celery_app() is mine
        assert EXECUTE_TASK in mine.tasks  # a shared_task: registered in every app
    finally:
        previous.set_current()


@override_settings(BGJOBS={"CELERY_APP": "tests.test_celery_app:project_app"})
def test_an_app_named_in_settings_wins():
    assert celery_app.get_celery_app() is project_app


@override_settings(BGJOBS={"CELERY_APP": "tests.nowhere:app"})
def test_an_app_that_cannot_be_imported_names_the_setting():
    with pytest.raises(
        ImproperlyConfigured, match=r"BGJOBS\['CELERY_APP'\] names 'tests.nowhere:app'"
    ):
        celery_app.get_celery_app()


def test_database_down_at_enqueue_raises_to_the_caller():
    """The caller's transaction failed anyway: the error is theirs to see, nothing is queued."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup()\nfrom tests.jobs import noop\nnoop.enqueue()",
        ],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PYTHONPATH": str(REPO),
            "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere",
        },
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 1
    assert "OperationalError" in result.stderr


@pytest.mark.django_db
def test_the_default_app_is_not_mistaken_for_a_project_app():
    from celery import _state

    fallback = getattr(_state, "default_app", None)
    assert celery_app.get_celery_app() is not fallback
