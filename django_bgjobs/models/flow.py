"""Flow control's rows: one per key of a gate (``FlowKey``), the row its admissions and
enqueues lock and where its throttle and rate limit keep their state; and an operator's change
to a gate's concurrency (``FlowGate``, made from the admin)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class FlowKey(models.Model):
    # "<gate>" or "<gate> <key>", as on each of its jobs (Job.flow_key).
    key = models.CharField(max_length=255, primary_key=True)
    gate = models.CharField(max_length=255)
    # GCRA's "theoretical arrival time" (flow/gcra.py) of the throttle's next start, as
    # reserved at enqueue and as started by workers, and of the rate limit's next enqueue.
    reserved_tat = models.DateTimeField(null=True, blank=True)
    started_tat = models.DateTimeField(null=True, blank=True)
    rate_tat = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = _("flow-control key of jobs")
        verbose_name_plural = _("flow-control keys of jobs")
        indexes = [models.Index(fields=["gate"], name="bgjobs_flowkey_gate_idx")]

    def __str__(self) -> str:
        return self.key


class FlowGate(models.Model):
    """A gate's concurrency as an operator set it, in place of the one declared in code."""

    name = models.CharField(max_length=255, primary_key=True)
    concurrency = models.PositiveIntegerField(
        help_text=_("Jobs of each key queued or running at once (the code declares another).")
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("job limit")

    def __str__(self) -> str:
        return f"{self.name}: {self.concurrency}"
