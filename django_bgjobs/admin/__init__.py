"""The admin: the jobs and their attempts, the dashboard, the schedules and the webhook
receipts. Django's admin autodiscovery imports this package; each module registers its pages."""

from django_bgjobs.admin import jobs, schedules, webhooks  # noqa: F401
