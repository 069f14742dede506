"""tests/settings_core_only.py's URLs: the admin, the webhook receiver and the job status API,
no QStash API (it belongs to django_bgjobs.delivery)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("webhooks/", include("django_bgjobs.webhooks.urls")),
    path("bgjobs/", include("django_bgjobs.api.urls")),
]
