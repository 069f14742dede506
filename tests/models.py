from django.db import models
from django.utils import timezone


class Effect(models.Model):
    """A side effect a test job leaves, seen from the test process (a real worker wrote it)."""

    key = models.CharField(max_length=100)
    job_id = models.CharField(max_length=64, blank=True)
    attempt = models.PositiveIntegerField(default=0)
    pid = models.PositiveIntegerField(default=0)
    at = models.DateTimeField(default=timezone.now)
