from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    """Outbound delivery (self-hosted QStash), built on the core through its extension points
    only (django_bgjobs.extensions): the core imports nothing from here, and a project that
    wants jobs only leaves this app out of INSTALLED_APPS."""

    name = "django_bgjobs.delivery"
    label = "bgjobs_delivery"
    verbose_name = "Outbound delivery"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The admin's job link is registered by delivery/admin/, which the admin's autodiscovery
        # imports only where django.contrib.admin is installed.
        from django_bgjobs import extensions
        from django_bgjobs.delivery import (  # deliver, message_schedules: their jobs
            admission,
            commands,
            deliver,  # noqa: F401
            keys,
            lifecycle,
            message_schedules,  # noqa: F401
            prune,
            receivers,
        )
        from django_bgjobs.delivery.api import workflow_runs

        receivers.connect()
        # Settle messages whose job finished while no receiver ran (dead-lettering those that
        # died), then admit those waiting for their queue or flow-control key.
        extensions.register_sweep("delivery.settle", lifecycle.settle_stragglers)
        extensions.register_sweep("delivery.admit", admission.sweep)
        extensions.register_next_due("delivery.admit", admission.next_due)
        # Upstash Workflow runs' waits that time out:
        extensions.register_sweep("delivery.workflow_waits", workflow_runs.time_out_waits)
        extensions.register_next_due("delivery.workflow_waits", workflow_runs.next_deadline)
        extensions.register_prune_hook("delivery.messages", prune.MessagePruning())
        for subcommand in commands.SUBCOMMANDS:
            extensions.register_subcommand(subcommand)
        extensions.register_key_source(
            extensions.KeySource(
                name="bgjobs",
                scheme="qstash",
                keys=keys.verification_keys,
                description="this project's own delivery keys",
            )
        )
