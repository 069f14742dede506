"""Paths under the API's prefix that name nothing: a JSON 404 as QStash gives, not Django's
HTML page (which an SDK would print as the error)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def not_found(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"error": f"{request.method} {request.path_info}: no such endpoint"}, status=404
    )
