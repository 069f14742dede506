"""Signals sent as a job moves through its life. Receivers get ``job`` (a Job) and, where there
is one, ``run`` (the JobRun) and ``error`` (a string). Receivers are connected in
``AppConfig.ready()``, never here.
"""

from django.dispatch import Signal

job_enqueued = Signal()  # a job row was written (sent inside the caller's transaction)
job_started = Signal()  # a worker claimed it: job, run
job_succeeded = Signal()  # job, run
job_failed = Signal()  # an attempt failed and another is scheduled: job, run, error
job_dead = Signal()  # no more attempts, or failed for good: job, run, error
job_cancelled = Signal()  # job
job_released = Signal()  # its worker shut down mid-attempt and queued it again: job, run
# Jobs under a concurrency limit became ready and wait for a place: flow_keys (after commit).
jobs_blocked = Signal()
