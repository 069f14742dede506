"""The job status API (DRF) and the metrics endpoint, under one include:
``path("bgjobs/", include("django_bgjobs.api.urls"))``."""
