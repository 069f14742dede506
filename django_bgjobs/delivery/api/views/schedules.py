"""``/v2/schedules``: create (``POST /v2/schedules/{destination}`` with ``Upstash-Cron``;
``Upstash-Schedule-Id`` replaces that schedule), list, get, delete, pause, resume. The
schedules themselves are ``delivery.message_schedules``'."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.delivery import lifecycle, message_schedules
from django_bgjobs.delivery.api import destination as destinations
from django_bgjobs.delivery.api import headers as header_parser
from django_bgjobs.delivery.api import serializers
from django_bgjobs.delivery.api.errors import BadRequest, NotFound
from django_bgjobs.delivery.api.views.base import QStashView, done
from django_bgjobs.delivery.models import MessageSchedule
from django_bgjobs.delivery.publish import Publish


def _schedules() -> QuerySet[MessageSchedule]:
    return MessageSchedule.objects.select_related("periodic_task", "last_message__job")


def schedule_json(row: MessageSchedule) -> dict[str, object]:
    last = row.last_message
    return serializers.schedule(
        row,
        next_run=message_schedules.next_run(row),
        last_state=lifecycle.message_state(last) if last else None,
    )


class ScheduleListView(QStashView):
    def get(self, request: Request) -> Response:
        return Response([schedule_json(row) for row in _schedules()])


class ScheduleView(QStashView):
    """POST: the path is the destination; GET and DELETE: the schedule id."""

    def post(self, request: Request, destination: str) -> Response:
        cron = request.headers.get("Upstash-Cron")
        if not cron:
            raise BadRequest(
                "Upstash-Cron is missing: give a cron expression, e.g. "
                "'*/5 * * * *' (optionally after CRON_TZ=Area/City)"
            )
        target = destinations.check(destinations.rebuild(request._request, destination))
        fields = header_parser.parse(request.headers)
        template = Publish(
            destination=target, body=request.body, caller_ip=self.caller_ip(request), **fields
        )
        try:
            row = message_schedules.create(
                target, cron, template, schedule_id=request.headers.get("Upstash-Schedule-Id")
            )
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return Response({"scheduleId": row.pk}, status=status.HTTP_201_CREATED)

    def get(self, request: Request, destination: str) -> Response:
        row = _schedules().filter(pk=destination).first()
        if row is None:
            raise NotFound(f"schedule {destination} not found")
        return Response(schedule_json(row))

    def delete(self, request: Request, destination: str) -> Response:
        return done(message_schedules.delete(destination), f"schedule {destination}")


class SchedulePauseView(QStashView):
    """PATCH (both SDKs) or POST (the openapi)."""

    paused = True

    def patch(self, request: Request, schedule_id: str) -> Response:
        change = message_schedules.pause if self.paused else message_schedules.resume
        return done(change(schedule_id), f"schedule {schedule_id}")

    post = patch


class ScheduleResumeView(SchedulePauseView):
    paused = False
