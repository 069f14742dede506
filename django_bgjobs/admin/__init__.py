"""The admin: the jobs and their attempts, the dashboard, the schedules, the webhook receipts
and the events. Django's admin autodiscovery imports this package; jobs.py, schedules.py,
webhooks.py, events.py and flow.py register their ModelAdmins, and jobs.py mounts the pages of
dashboard.py, bulk.py, job_page.py and steps.py, which never import it back."""

from django_bgjobs.admin import events, flow, jobs, schedules, webhooks  # noqa: F401
