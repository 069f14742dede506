"""django-bgjobs against bare Celery and its PostgreSQL-backed peers: ``bench/peers/run``.

Six systems run the same no-op job body (``body.py``) on the same machine in one run:
django-bgjobs, bare Celery with its default settings, bare Celery with bgjobs' safe settings,
django-tasks-db, django-q2 and Procrastinate. ``orchestrate.py`` measures; each system is driven
by ``driver.py`` through its adapter (``*_adapter.py``) in the virtualenv it is installed in.

Kept free of imports: the peers' virtualenv imports this package without Celery or bgjobs.
"""
