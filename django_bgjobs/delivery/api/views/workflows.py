"""The endpoints an Upstash Workflow app's SDK calls (api/workflow_runs.py): a run's steps
and its end, waits and notify, the waiters of an event."""

from __future__ import annotations

from django.db import transaction
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.delivery.api import workflow_runs as workflows
from django_bgjobs.delivery.api.errors import BadRequest, NotFound
from django_bgjobs.delivery.api.views.base import QStashView, json_body


class WorkflowRunView(QStashView):
    def get(self, request: Request, run_id: str) -> Response:
        """The run's steps, as the SDK reads them when a step comes with an empty body."""
        steps = workflows.raw_steps(run_id)
        if steps is None:
            raise NotFound(f"workflow run {run_id} not found (or it has ended)")
        return Response(steps)

    def delete(self, request: Request, run_id: str) -> Response:
        """``?cancel=true|false``: the run is over (its SDK says so at its end, or a cancel)."""
        cancel = request.query_params.get("cancel", "false")
        if cancel not in ("true", "false"):
            raise BadRequest(f"cancel must be true or false, got {cancel!r}")
        result = request.body.decode("utf-8", "replace")
        if not workflows.end(run_id, cancel=cancel == "true", result=result):
            raise NotFound(f"workflow run {run_id} not found")
        return Response(status=status.HTTP_200_OK)


class WorkflowRunsView(QStashView):
    def delete(self, request: Request) -> Response:
        """``?workflowRunIds=a&workflowRunIds=b`` (or comma-separated): cancel those runs."""
        ids = [
            run_id
            for value in request.query_params.getlist("workflowRunIds")
            for run_id in value.split(",")
            if run_id
        ]
        if not ids:
            raise BadRequest("cancel needs workflowRunIds (other filters are not offered)")
        cancelled = sum(workflows.end(run_id, cancel=True, result="") for run_id in ids)
        return Response({"cancelled": cancelled})


class WaitView(QStashView):
    def post(self, request: Request, event_id: str) -> Response:
        run_id = request.headers.get("Upstash-Workflow-RunId", "")
        if not run_id:
            raise BadRequest("a wait needs the Upstash-Workflow-RunId header")
        body = json_body(request)
        if not isinstance(body, dict):
            raise BadRequest("the wait request must be a JSON object")
        workflows.wait(run_id, event_id, body, dict(request.headers))
        return Response(status=status.HTTP_200_OK)


class NotifyView(QStashView):
    def post(self, request: Request, event_id: str, run_id: str | None = None) -> Response:
        with transaction.atomic():
            answered = workflows.notify(event_id, request.body, run_id)
        return Response(answered)


class WaitersView(QStashView):
    def get(self, request: Request, event_id: str) -> Response:
        return Response(workflows.waiters(event_id))
