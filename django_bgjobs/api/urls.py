"""``path("bgjobs/", include("django_bgjobs.api.urls"))``:

- ``GET bgjobs/jobs/<id>/``: a job's status (owner or staff; DRF authentication);
- ``GET bgjobs/metrics``: Prometheus metrics (staff session or ``Authorization: Bearer``);
- ``GET bgjobs/schema/``: the OpenAPI schema of the job status API.
"""

from django.urls import path

from django_bgjobs.api.views import SCHEMA_ROUTE, BgJobsSchemaView, status_patterns
from django_bgjobs.figures.metrics import metrics_view

app_name = "bgjobs"
urlpatterns = [
    *status_patterns(),
    path("metrics", metrics_view, name="metrics"),
    path(SCHEMA_ROUTE, BgJobsSchemaView.as_view(), name="schema"),
]
