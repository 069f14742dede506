"""``path("qstash/", include("django_bgjobs.delivery.api.urls"))``: the SDKs' ``base_url`` is then
``https://host/qstash``. Paths as both SDKs call them (webhook-wire.md 2.1); anything else
under the prefix is a JSON 404."""

from __future__ import annotations

from django.urls import path, re_path

from django_bgjobs.delivery.api.views import (
    dlq,
    events,
    flow_control,
    keys,
    messages,
    not_offered,
    publish,
    queues,
    schedules,
    topics,
    workflows,
)
from django_bgjobs.delivery.api.views.fallback import not_found

app_name = "qstash"
urlpatterns = [
    # The destination is the rest of the path, slashes and all: the view rebuilds it from
    # the raw request (destination.py), the captured value only says where it starts.
    path("v2/publish/<path:destination>", publish.PublishView.as_view(), name="publish"),
    path(
        "v2/enqueue/<str:queue>/<path:destination>", publish.EnqueueView.as_view(), name="enqueue"
    ),
    path("v2/batch", publish.BatchView.as_view(), name="batch"),
    path("v2/messages", messages.MessagesView.as_view(), name="messages"),
    path("v2/messages/<str:message_id>", messages.MessageView.as_view(), name="message"),
    path("v2/dlq", dlq.DlqListView.as_view(), name="dlq"),
    path("v2/dlq/retry", dlq.DlqRetryView.as_view(), name="dlq-retry-many"),
    path("v2/dlq/retry/<str:dlq_id>", dlq.DlqRetryView.as_view(), name="dlq-retry"),
    path("v2/dlq/<str:dlq_id>", dlq.DlqEntryView.as_view(), name="dlq-entry"),
    path("v2/schedules", schedules.ScheduleListView.as_view(), name="schedules"),
    path(
        "v2/schedules/<str:schedule_id>/pause",
        schedules.SchedulePauseView.as_view(),
        name="schedule-pause",
    ),
    path(
        "v2/schedules/<str:schedule_id>/resume",
        schedules.ScheduleResumeView.as_view(),
        name="schedule-resume",
    ),
    # POST: create, the path being the destination; GET / DELETE: the path is the id.
    path("v2/schedules/<path:destination>", schedules.ScheduleView.as_view(), name="schedule"),
    path("v2/topics", topics.TopicListView.as_view(), name="topics"),
    path(
        "v2/topics/<str:name>/endpoints",
        topics.TopicEndpointsView.as_view(),
        name="topic-endpoints",
    ),
    path("v2/topics/<str:name>", topics.TopicView.as_view(), name="topic"),
    path("v2/queues", queues.QueueListView.as_view(), name="queues"),
    path("v2/queues/<str:name>/pause", queues.QueuePauseView.as_view(), name="queue-pause"),
    path("v2/queues/<str:name>/resume", queues.QueueResumeView.as_view(), name="queue-resume"),
    path("v2/queues/<str:name>", queues.QueueView.as_view(), name="queue"),
    path(
        "v2/flowControl/<str:key>/pause",
        flow_control.FlowControlPauseView.as_view(),
        name="flow-control-pause",
    ),
    path(
        "v2/flowControl/<str:key>/resume",
        flow_control.FlowControlResumeView.as_view(),
        name="flow-control-resume",
    ),
    path(
        "v2/flowControl/<str:key>/pin",
        flow_control.FlowControlPinView.as_view(),
        name="flow-control-pin",
    ),
    path(
        "v2/flowControl/<str:key>/unpin",
        flow_control.FlowControlUnpinView.as_view(),
        name="flow-control-unpin",
    ),
    path(
        "v2/flowControl/<str:key>/resetRate",
        flow_control.FlowControlResetRateView.as_view(),
        name="flow-control-reset-rate",
    ),
    path("v2/flowControl", flow_control.FlowControlListView.as_view(), name="flow-controls"),
    path("v2/flowControl/<str:key>", flow_control.FlowControlView.as_view(), name="flow-control"),
    path(
        "v2/globalParallelism",
        flow_control.GlobalParallelismView.as_view(),
        name="global-parallelism",
    ),
    path("v2/keys", keys.KeysView.as_view(), name="keys"),
    path("v2/keys/rotate", keys.RotateKeysView.as_view(), name="keys-rotate"),
    path("v2/events", events.EventsView.as_view(), name="events"),
    path("v2/logs", events.LogsView.as_view(), name="logs"),
    re_path(
        r"^llm/",
        not_offered.NotOfferedView.as_view(what=not_offered.LLM),
        name="not-offered-llm",
    ),
    path("v2/workflows/runs", workflows.WorkflowRunsView.as_view(), name="workflow-runs"),
    path(
        "v2/workflows/runs/<str:run_id>",
        workflows.WorkflowRunView.as_view(),
        name="workflow-run",
    ),
    path("v2/wait/<str:event_id>", workflows.WaitView.as_view(), name="workflow-wait"),
    path("v2/notify/<str:event_id>", workflows.NotifyView.as_view(), name="workflow-notify"),
    path(
        "v2/notify/<str:run_id>/<str:event_id>",
        workflows.NotifyView.as_view(),
        name="workflow-notify-run",
    ),
    path("v2/waiters/<str:event_id>", workflows.WaitersView.as_view(), name="workflow-waiters"),
    re_path(
        r"^v2/workflows(/|$)",
        not_offered.NotOfferedView.as_view(what=not_offered.WORKFLOW),
        name="not-offered-workflow",
    ),
    re_path(r"^.*$", not_found, name="not-found"),
]
