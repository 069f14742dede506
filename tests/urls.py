from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views import View
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.webhooks.drf import WebhookAuthentication
from django_bgjobs.webhooks.views import WebhookVerifiedMixin, verify_webhook


@verify_webhook("qstash")
def qstash_function_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"message_id": request.webhook.message_id, "bytes": len(request.body)})


class StripeClassView(WebhookVerifiedMixin, View):
    webhook_endpoint = "stripe"

    def post(self, request: HttpRequest) -> HttpResponse:
        return JsonResponse({"message_id": request.webhook.message_id})


class QStashAuth(WebhookAuthentication):
    endpoint = "qstash"


@api_view(["POST"])
@authentication_classes([QStashAuth])
@permission_classes([AllowAny])
def qstash_drf_view(request: Request) -> Response:
    return Response({"message_id": request.auth.message_id})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("webhooks/", include("django_bgjobs.webhooks.urls")),
    path("bgjobs/", include("django_bgjobs.api.urls")),
    path("qstash/", include("django_bgjobs.delivery.api.urls")),
    path("own/qstash", qstash_function_view),
    path("own/stripe", StripeClassView.as_view()),
    path("own/drf", qstash_drf_view),
]
