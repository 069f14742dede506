"""The admin: the jobs and their attempts, the dashboard, the schedules and the webhook
receipts. Django's admin autodiscovery imports this package; each module registers its pages."""

# The delivery side's pages (messages, URL groups, queues, tokens, keys, message schedules).
from django_bgjobs import delivery_admin  # noqa: E402, F401
from django_bgjobs.admin import jobs, schedules, webhooks  # noqa: F401
