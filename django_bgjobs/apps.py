from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class BgJobsConfig(AppConfig):
    name = "django_bgjobs"
    verbose_name = "Background jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_bgjobs import checks, hooks, logs, worker

        checks.register()
        logs.connect()
        hooks.connect()
        worker.connect()
        # Jobs defined in <app>/jobs.py are known to every process without further imports.
        autodiscover_modules("jobs")
