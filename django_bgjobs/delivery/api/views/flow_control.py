"""``/v2/flowControl/{key}`` (get, pause, resume) and ``/v2/globalParallelism``, as the current
SDKs call them (``client.flow_control``), over the flow-control keys admission enforces.

Pinning a key's configuration and resetting its rate are answered 501: a key's limits are the
ones its last publish gave (there is nothing to pin them against), and its rate counts the
messages let through in the last period, a sliding window with no period to end.
"""

from __future__ import annotations

from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.delivery import admission
from django_bgjobs.delivery.api.errors import NotFound, NotOffered
from django_bgjobs.delivery.api.views.base import QStashView, done
from django_bgjobs.delivery.models import FlowControl


def _key(key: str) -> FlowControl:
    flow = FlowControl.objects.filter(key=key).first()
    if flow is None:
        raise NotFound(f"flow-control key {key} not found")
    return flow


class FlowControlView(QStashView):
    def get(self, request: Request, key: str) -> Response:
        flow = _key(key)
        now = timezone.now()
        waiting, in_flight, started = admission.key_figures(flow, now)
        return Response(
            {
                "flowControlKey": flow.key,
                "waitListSize": waiting,
                "parallelismMax": flow.parallelism or 0,  # 0: no limit
                "parallelismCount": in_flight,
                "rateMax": flow.rate or 0,
                "rateCount": started,
                "ratePeriod": round(flow.period),
                # The window the rate counts over ends now (milliseconds, as QStash's times).
                "ratePeriodStart": int((now.timestamp() - flow.period) * 1000),
                "isPaused": flow.paused,
                "isPinnedParallelism": False,
                "isPinnedRate": False,
            }
        )


class FlowControlPauseView(QStashView):
    """New messages of the key wait; those in delivery finish. Resume lets them through at the
    dispatcher's next pass."""

    paused = True

    def post(self, request: Request, key: str) -> Response:
        updated = FlowControl.objects.filter(key=key).update(
            paused=self.paused, updated_at=timezone.now()
        )
        return done(updated > 0, f"flow-control key {key}")


class FlowControlResumeView(FlowControlPauseView):
    paused = False


class FlowControlNotOfferedView(QStashView):
    """``pin``, ``unpin``, ``resetRate``: see the module's docstring."""

    def post(self, request: Request, key: str, action: str) -> Response:
        _key(key)
        if action == "resetRate":
            raise NotOffered(
                "resetRate is not offered by this server: a key's rate counts the messages let "
                "through in the last period (a sliding window), so there is no period to end"
            )
        raise NotOffered(
            f"{action} is not offered by this server: a key's parallelism and rate are the ones "
            "its last publish gave (Upstash-Flow-Control-Value); publish with the values to use"
        )


class GlobalParallelismView(QStashView):
    """No limit across keys here (``parallelismMax`` 0); the count is every message in
    delivery now."""

    def get(self, request: Request) -> Response:
        return Response({"parallelismMax": 0, "parallelismCount": admission.in_flight_anywhere()})
