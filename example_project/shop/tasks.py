"""A task written for Django's own tasks API (``django.tasks``): nothing here knows about
django-bgjobs. settings.TASKS runs it on the django-bgjobs backend, so it gets a row per
attempt, retries with backoff (the backend's OPTIONS) and a page in the admin."""

try:
    from django.tasks import task  # Django 6.0 and later
except ImportError:  # Django 5.2: the django-tasks package (pip install "django-bgjobs[tasks]")
    from django_tasks import task  # type: ignore[import-not-found, no-redef]


@task(queue_name="default")
def count_words(text: str) -> dict[str, int]:
    words = text.split()
    return {"words": len(words), "distinct": len({word.lower() for word in words})}
