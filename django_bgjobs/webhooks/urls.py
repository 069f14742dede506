"""``path("webhooks/", include("django_bgjobs.webhooks.urls"))``: POST webhooks/<name>/."""

from django.urls import path

from django_bgjobs.webhooks.views import receive

app_name = "bgjobs_webhooks"
urlpatterns = [path("<str:name>/", receive, name="receive")]
