"""Benchmark: bare Celery vs django-bgjobs on PostgreSQL + Redis. Run ``python bench/run.py``."""
