"""What the job status API shows of a job."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from django_bgjobs.models import Job, JobStatus


class JobProgressSerializer(serializers.Serializer):
    """What the job last reported with ``ctx.progress(done, total, message)``."""

    done = serializers.IntegerField()
    total = serializers.IntegerField(allow_null=True)
    message = serializers.CharField(allow_blank=True)


class JobStatusSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField(
        help_text="The running attempt's progress, null until the job reports some."
    )
    result = serializers.SerializerMethodField(
        help_text="The function's return value (JSON) once the job succeeded, else null."
    )
    finished = serializers.SerializerMethodField(
        help_text="True once the job succeeded, is dead or was cancelled: stop polling."
    )

    class Meta:
        model = Job
        fields = (
            "id",
            "name",
            "queue",
            "status",
            "finished",
            "attempts",
            "max_attempts",
            "progress",
            "result",
            "error",
            "created_at",
            "run_after",
            "started_at",
            "finished_at",
        )
        read_only_fields = fields
        extra_kwargs = {
            "error": {"help_text": "The last failure's message, empty if none."},
            "run_after": {"help_text": "When a scheduled or retrying job is due."},
            "started_at": {"help_text": "The start of the current or last attempt."},
        }

    @extend_schema_field(JobProgressSerializer(allow_null=True))
    def get_progress(self, job: Job) -> dict[str, Any] | None:
        if job.progress_done is None:
            return None
        return {
            "done": job.progress_done,
            "total": job.progress_total,
            "message": job.progress_message,
        }

    @extend_schema_field(OpenApiTypes.ANY)
    def get_result(self, job: Job) -> Any:
        return job.result if job.status == JobStatus.SUCCEEDED else None

    def get_finished(self, job: Job) -> bool:
        return job.is_finished


# The columns read: those of the fields shown, the progress columns for ``progress`` and none
# for ``finished`` (the status says); never the arguments (they may hold what `redact=` hides).
_COLUMNS_OF = {"finished": (), "progress": ("progress_done", "progress_total", "progress_message")}
FIELDS = tuple(
    column for name in JobStatusSerializer.Meta.fields for column in _COLUMNS_OF.get(name, (name,))
)
