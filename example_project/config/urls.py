from django.contrib import admin
from django.urls import include, path

from example_project.shop.views import index

urlpatterns = [
    path("", index, name="index"),
    path("admin/", admin.site.urls),
    path("api/", include("example_project.shop.urls")),
    # The job status API, the Prometheus metrics and the OpenAPI schema.
    path("bgjobs/", include("django_bgjobs.api.urls")),
]
