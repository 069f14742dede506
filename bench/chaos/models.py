"""The ledger the chaos jobs write: one effect per key, one log row per execution."""

from django.db import models


class Effect(models.Model):
    """The job's side effect. UNIQUE(key): the idempotency users are told to give their effects
    (at-least-once execution), so a repeated execution adds no second effect."""

    key = models.CharField(max_length=64, unique=True)
    job_id = models.UUIDField()
    attempt = models.PositiveIntegerField()
    at = models.DateTimeField()


class Execution(models.Model):
    """Append-only: a row each time a job's function body starts."""

    key = models.CharField(max_length=64)
    job_id = models.UUIDField()
    attempt = models.PositiveIntegerField()
    pid = models.IntegerField()
    at = models.DateTimeField()


class Order(models.Model):
    """The business row a "web request" writes in the same transaction as its job (outbox)."""

    key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
