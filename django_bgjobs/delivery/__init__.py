"""Outbound delivery (the self-hosted QStash side), foundation only: pure modules for the URL
check (``ssrf``), one signed HTTP attempt (``http``) and the retry rules (``retry_delay``).
Nothing here touches the database or Celery."""
