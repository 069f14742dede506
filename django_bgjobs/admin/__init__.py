"""The admin: the jobs and their attempts, the dashboard, the schedules and the webhook
receipts. Django's admin autodiscovery imports this package; jobs.py, schedules.py and
webhooks.py register their ModelAdmins, and jobs.py mounts the pages of dashboard.py, bulk.py
and job_page.py, which never import it back."""

from django_bgjobs.admin import jobs, schedules, webhooks  # noqa: F401
