"""``GET jobs/<id>/``: a job's status, for the front end that started it to poll."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import URLPattern, include, path
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework.generics import RetrieveAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs import __version__
from django_bgjobs.api.serializers import FIELDS, JobStatusSerializer
from django_bgjobs.models import Job


def sees_every_job(user: Any) -> bool:
    """Staff who may view jobs in the admin (``django_bgjobs.view_job``; superusers have it)."""
    return bool(user.is_active and user.is_staff and user.has_perm("django_bgjobs.view_job"))


class JobStatusSchema(AutoSchema):
    """drf-spectacular's AutoSchema (whatever the project's DEFAULT_SCHEMA_CLASS says), with
    an operation id that does not depend on where the API is mounted."""

    def get_operation_id(self) -> str:
        return "bgjobs_job_status"

    def get_tags(self) -> list[str]:
        return ["bgjobs"]


@extend_schema(
    summary="A job's status, progress and result",
    description=(
        "For the front end that started the job (`.using(owner=request.user)`) to poll until "
        "`finished` is true. Only the job's owner and staff who may view jobs see it; anyone "
        "else gets 404, as for an id that does not exist."
    ),
    responses={
        200: JobStatusSerializer,
        404: OpenApiResponse(description="No such job, or not yours."),
    },
)
class JobStatusView(RetrieveAPIView):
    """A job's status, progress and result.

    Only the job's owner (``.using(owner=request.user).enqueue(...)``) and staff who may view
    jobs see it; anyone else gets 404, as for an id that does not exist, so ids cannot be
    probed. Authentication is the project's (``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]``).
    """

    serializer_class = JobStatusSerializer
    permission_classes = [IsAuthenticated]
    lookup_url_kwarg = "job_id"
    schema = JobStatusSchema()  # @extend_schema above builds on it

    def get_queryset(self) -> QuerySet[Job]:
        jobs = Job.objects.only(*FIELDS)
        user = self.request.user
        # One query by primary key either way: the owner is a condition on the same row.
        return jobs if sees_every_job(user) else jobs.filter(owner_id=user.pk)

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response: Response = super().get(request, *args, **kwargs)
        # A status changes while it is polled: never from a cache.
        response["Cache-Control"] = "no-store, private"
        return response


# Where urls.py mounts the schema; the schema view describes the status routes mounted beside it.
SCHEMA_ROUTE = "schema/"


def status_patterns() -> list[URLPattern]:
    return [path("jobs/<uuid:job_id>/", JobStatusView.as_view(), name="job-status")]


@extend_schema(exclude=True)
class BgJobsSchemaView(SpectacularAPIView):
    """The OpenAPI schema of this API alone, with its paths where it is mounted.

    (A project with its own ``SpectacularAPIView`` gets these endpoints in its schema too;
    this view is left out of it.)
    """

    schema = AutoSchema()
    custom_settings = {
        "TITLE": "django-bgjobs",
        "DESCRIPTION": "The status of background jobs, for the front ends that started them.",
        "VERSION": __version__,
    }

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        prefix = request.path_info.removesuffix(SCHEMA_ROUTE).lstrip("/")
        self.patterns = [path(prefix, include(status_patterns()))]
        response: Response = super().get(  # type: ignore[no-untyped-call]
            request, *args, **kwargs
        )
        return response
