"""``/v2/flowControl/{key}`` (get, pause, resume, pin, unpin, resetRate) and
``/v2/globalParallelism``, as the current SDKs call them (``client.flow_control``), over the
flow-control keys admission enforces.

A key's limits are the ones its last publish gave, unless pinned: then publishes leave the
pinned part alone until it is unpinned. Its rate counts the messages let through in the last
period (a sliding window); a reset starts the count again from now.
"""

from __future__ import annotations

from django.db import transaction
from django.http import QueryDict
from django.utils import timezone
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.delivery import admission
from django_bgjobs.delivery.api.errors import BadRequest, NotFound
from django_bgjobs.delivery.api.views.base import QStashView
from django_bgjobs.delivery.limits import MAX_FLOW_PERIOD, MAX_PARALLELISM, MAX_RATE
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
    """Every key (``?search=`` a part of it), with its messages waiting for it."""

    def get(self, request: Request) -> Response:
        waiting = admission.waiting_per_key()
        return Response(
            [
                {"flowControlKey": key, "waitListSize": waiting.get(key, 0)}
                for key in FlowControl.objects.filter(
                    key__icontains=request.query_params.get("search", "")
                )
                .order_by("key")
                .values_list("key", flat=True)
            ]
        )


def _change(key: str, **fields: object) -> Response:
    """Write these fields of the key (only these: a pause and a pin may cross), then let
    through what now fits, after commit."""
    now = timezone.now()
    if not FlowControl.objects.filter(key=key).update(**fields, updated_at=now):
        raise NotFound(f"flow-control key {key} not found")
    transaction.on_commit(lambda: admission.admit_flow(key), robust=True)
    return Response(status=status.HTTP_200_OK)


class FlowControlPauseView(QStashView):
    """New messages of the key wait; those in delivery finish. Resume lets the waiting ones
    through at once."""

    paused = True

    def post(self, request: Request, key: str) -> Response:
        return _change(key, paused=self.paused)


class FlowControlResumeView(FlowControlPauseView):
    paused = False


def _whole(params: QueryDict, name: str, maximum: int) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise BadRequest(f"pin: {name} must be a whole number from 1 to {maximum}, got {raw!r}")
    return int(raw)


class FlowControlPinView(QStashView):
    """``?parallelism=N&rate=N&period=S``: set those and pin them (the rate with its period),
    so that publishes naming the key no longer change them. As in QStash, pinning starts the
    rate's count again; the waiting messages are let through under the new values at once."""

    def post(self, request: Request, key: str) -> Response:
        params = request.query_params
        parallelism = _whole(params, "parallelism", MAX_PARALLELISM)
        rate = _whole(params, "rate", MAX_RATE)
        period = _whole(params, "period", int(MAX_FLOW_PERIOD))
        if parallelism is None and rate is None:
            raise BadRequest("pin needs parallelism, rate (with its period) or both")
        if period is not None and rate is None:
            raise BadRequest("pin: a period needs a rate")
        fields: dict[str, object] = {"rate_reset_at": timezone.now()}
        if parallelism is not None:
            fields.update(parallelism=parallelism, pinned_parallelism=True)
        if rate is not None:
            fields.update(rate=rate, pinned_rate=True)
            if period is not None:
                fields["period"] = period
        return _change(key, **fields)


def _flag(params: QueryDict, name: str) -> bool:
    raw = params.get(name, "false")
    if raw not in ("true", "false"):
        raise BadRequest(f"unpin: {name} must be true or false, got {raw!r}")
    return raw == "true"


class FlowControlUnpinView(QStashView):
    """``?parallelism=true&rate=true``: publishes set those again (the values stay until
    one does)."""

    def post(self, request: Request, key: str) -> Response:
        params = request.query_params
        fields = {
            f"pinned_{name}": False for name in ("parallelism", "rate") if _flag(params, name)
        }
        if not fields:
            raise BadRequest("unpin needs parallelism=true, rate=true or both")
        return _change(key, **fields)


class FlowControlResetRateView(QStashView):
    """The rate's count starts again from now: up to ``rate`` more may go at once."""

    def post(self, request: Request, key: str) -> Response:
        return _change(key, rate_reset_at=timezone.now())


class GlobalParallelismView(QStashView):
    """No limit across keys here (``parallelismMax`` 0); the count is every message in
    delivery now."""

    def get(self, request: Request) -> Response:
        return Response({"parallelismMax": 0, "parallelismCount": admission.in_flight_anywhere()})
