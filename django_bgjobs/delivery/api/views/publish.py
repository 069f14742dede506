"""``POST /v2/publish/{destination}``, ``POST /v2/enqueue/{queue}/{destination}``,
``POST /v2/batch``: requests -> ``delivery.publish.send`` / ``send_many``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.delivery.api import destination as destinations
from django_bgjobs.delivery.api import headers as header_parser
from django_bgjobs.delivery.api.errors import BadRequest
from django_bgjobs.delivery.api.queues import check_name as check_queue_name
from django_bgjobs.delivery.api.views.base import QStashView, json_body
from django_bgjobs.delivery.publish import Publish, Published, send, send_many

MAX_BATCH = 1000


def published_json(results: Sequence[Published], *, to_url: bool) -> Any:
    """A URL's one message as an object; a URL group's as a bare array (what both SDKs
    parse, whatever the openapi says)."""
    items = []
    for result in results:
        item: dict[str, Any] = {"messageId": result.message_id, "url": result.url}
        if result.deduplicated:
            item["deduplicated"] = True
        items.append(item)
    return items[0] if to_url and len(items) == 1 else items


def _status(results: Sequence[Published]) -> int:
    # A duplicate is answered 202 with the first message's id, as QStash does.
    return 202 if results and all(r.deduplicated for r in results) else 201


class PublishView(QStashView):
    def post(self, request: Request, destination: str, queue: str | None = None) -> Response:
        target = destinations.check(destinations.rebuild(request._request, destination))
        fields = header_parser.parse(request.headers)
        if queue is not None:
            fields["queue"] = check_queue_name(queue)
        results = send(
            Publish(
                destination=target, body=request.body, caller_ip=self.caller_ip(request), **fields
            )
        )
        return Response(
            published_json(results, to_url=destinations.is_url(target)), status=_status(results)
        )


class EnqueueView(PublishView):
    """The queue is made on first use (parallelism 1), as QStash's."""

    def post(self, request: Request, destination: str, queue: str | None = None) -> Response:
        return super().post(request, destination, queue=queue)


def _batch_item(index: int, item: Any, caller_ip: str) -> Publish:
    where = f"message {index}"
    if not isinstance(item, dict):
        raise BadRequest(f"{where}: expected an object with 'destination'")
    target = item.get("destination")
    if not isinstance(target, str):
        raise BadRequest(f"{where}: 'destination' must be a string")
    headers = item.get("headers")
    headers = {} if headers is None else headers
    if not isinstance(headers, dict):
        raise BadRequest(f"{where}: 'headers' must be an object")
    body = item.get("body")
    if body is not None and not isinstance(body, str):
        raise BadRequest(f"{where}: 'body' must be a string")
    try:
        fields = header_parser.parse(headers)
        target = destinations.check(target)
        queue = item.get("queue")
        if queue is not None:
            fields["queue"] = check_queue_name(queue)
    except ValueError as exc:
        raise BadRequest(f"{where}: {exc}") from None
    return Publish(destination=target, body=(body or "").encode(), caller_ip=caller_ip, **fields)


class BatchView(QStashView):
    """A JSON array of ``{"destination", "headers", "body", "queue"?}``, published in one
    transaction: all or none."""

    def post(self, request: Request) -> Response:
        data = json_body(request)
        if not isinstance(data, list) or not 0 < len(data) <= MAX_BATCH:
            got = f"{len(data)} messages" if isinstance(data, list) else type(data).__name__
            raise BadRequest(
                f"the body must be a JSON array of 1 to {MAX_BATCH} messages, "
                f"got {got}: split a larger batch into several requests"
            )
        caller_ip = self.caller_ip(request)
        requests = [_batch_item(i, item, caller_ip) for i, item in enumerate(data)]
        results = send_many(requests)
        body = [
            published_json(found, to_url=destinations.is_url(req.destination))
            for req, found in zip(requests, results, strict=True)
        ]
        return Response(body, status=201)
