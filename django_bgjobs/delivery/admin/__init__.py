"""The admin of the delivery side (self-hosted QStash): messages with their attempts (cancel,
retry from the dead-letter queue), URL groups and their endpoints, delivery queues and
flow-control keys, message schedules (pause, resume), API tokens (shown once), the signing
keys (rotate), and Upstash Workflow runs with their waits. Imported by
``django_bgjobs.admin``; its conventions are that package's: state the engine owns is
read-only, each action has its own permission and leaves a LogEntry, lists make no query per
row."""

# Each module registers its ModelAdmins on the default site when imported.
from django_bgjobs import extensions  # noqa: E402
from django_bgjobs.delivery.admin import (  # noqa: F401
    credentials,
    gates,
    groups,
    messages,
    schedules,
    workflows,
)
from django_bgjobs.delivery.admin.common import job_message_link  # noqa: E402

# The "related" line of a delivery job's page in the core's job admin: its message.
extensions.register_job_link("delivery.message", "message", job_message_link)
