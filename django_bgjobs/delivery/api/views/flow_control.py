"""``/v2/flowControl/{key}`` (get, pause, resume, pin, unpin, resetRate) and
``/v2/globalParallelism``, as the current SDKs call them (``client.flow_control``), over the
flow-control keys admission enforces.

A key's limits are the ones its last publish gave, unless pinned: then publishes leave the
pinned part alone until it is unpinned. Its rate counts the messages let through in the last
period (a sliding window); a reset starts the count again from now.
"""

from __future__ import annotations

from django.utils import timezone
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.delivery import admission
from django_bgjobs.delivery.api.errors import BadRequest, NotFound
from django_bgjobs.delivery.api.headers import parse_flow_value
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
                # Unix seconds, as QStash's API reference has it.
                "ratePeriodStart": int(flow.rate_counted_since(now).timestamp()),
                "isPaused": flow.paused,
                "isPinnedParallelism": flow.pinned_parallelism,
                "isPinnedRate": flow.pinned_rate,
            }
        )


class FlowControlListView(QStashView):
    """Every key, with its messages waiting for it."""

    def get(self, request: Request) -> Response:
        waiting = admission.waiting_per_key()
        return Response(
            [
                {"flowControlKey": key, "waitListSize": waiting.get(key, 0)}
                for key in FlowControl.objects.order_by("key").values_list("key", flat=True)
            ]
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


class FlowControlPinView(QStashView):
    """``?parallelism=N&rate=N&period=S``: set those and pin them (the rate with its period),
    so that publishes naming the key no longer change them. The messages already waiting are
    let through under the new values at the next admission."""

    def post(self, request: Request, key: str) -> Response:
        flow = _key(key)
        params = request.query_params
        given = [f"{name}={params[name]}" for name in ("parallelism", "rate") if params.get(name)]
        if not given:
            raise BadRequest("pin needs parallelism, rate (with period) or both")
        parallelism, rate, period = parse_flow_value(
            "pin", ", ".join([*given, f"period={params.get('period') or flow.period}"])
        )
        if parallelism is not None:
            flow.parallelism, flow.pinned_parallelism = parallelism, True
        if rate is not None:
            flow.rate, flow.period, flow.pinned_rate = rate, period, True
        flow.updated_at = timezone.now()
        flow.save()
        return Response(status=status.HTTP_200_OK)


class FlowControlUnpinView(QStashView):
    """``?parallelism=true&rate=true``: publishes set those again (the values stay until
    one does)."""

    def post(self, request: Request, key: str) -> Response:
        flow = _key(key)
        params = request.query_params
        if params.get("parallelism") == "true":
            flow.pinned_parallelism = False
        if params.get("rate") == "true":
            flow.pinned_rate = False
        flow.updated_at = timezone.now()
        flow.save()
        return Response(status=status.HTTP_200_OK)


class FlowControlResetRateView(QStashView):
    """The rate's count starts again from now: up to ``rate`` more may go at once."""

    def post(self, request: Request, key: str) -> Response:
        now = timezone.now()
        updated = FlowControl.objects.filter(key=key).update(rate_reset_at=now, updated_at=now)
        return done(updated > 0, f"flow-control key {key}")


class GlobalParallelismView(QStashView):
    """No limit across keys here (``parallelismMax`` 0); the count is every message in
    delivery now."""

    def get(self, request: Request) -> Response:
        return Response({"parallelismMax": 0, "parallelismCount": admission.in_flight_anywhere()})
