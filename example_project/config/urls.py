from django.contrib import admin
from django.urls import include, path

from example_project.shop.views import index

urlpatterns = [
    path("", index, name="index"),
    path("admin/", admin.site.urls),
    path("api/", include("example_project.shop.urls")),
    # The job status API, the Prometheus metrics and the OpenAPI schema.
    path("bgjobs/", include("django_bgjobs.api.urls")),
    # Signed webhooks in (the "partner" endpoint receives this shop's own deliveries).
    path("webhooks/", include("django_bgjobs.webhooks.urls")),
    # The QStash-compatible API: QStash(token, base_url="http://127.0.0.1:8000/qstash").
    path("qstash/", include("django_bgjobs.delivery.api.urls")),
]
