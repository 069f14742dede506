"""URL groups (QStash "topics"): a name and its endpoints. Publishing to one is the engine's
(``delivery.publish.send`` makes a message per endpoint); this is their upkeep."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from django_bgjobs.delivery.api.destination import DestinationError, check, is_url
from django_bgjobs.delivery.api.errors import InputError
from django_bgjobs.delivery.models import Topic, TopicEndpoint

NAME = re.compile(r"[A-Za-z0-9._\-]{1,255}")
MAX_ENDPOINTS = 1000  # per request: a bound on one transaction's work


class TopicError(InputError):
    pass


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise TopicError(f"invalid URL group name {name!r} (letters, digits, '.', '_', '-')")
    return name


def _endpoints(items: Any, *, need_url: bool) -> list[tuple[str, str]]:
    """``[{"url", "name"?}]`` -> [(url or "", name or "")], checked."""
    if not isinstance(items, list) or not items or len(items) > MAX_ENDPOINTS:
        raise TopicError(f"'endpoints' must be a list of 1 to {MAX_ENDPOINTS} objects")
    found = []
    for item in items:
        if not isinstance(item, Mapping):
            raise TopicError("each endpoint must be an object with 'url' (and 'name')")
        url, name = item.get("url") or "", item.get("name") or ""
        if not isinstance(url, str) or not isinstance(name, str) or len(name) > 255:
            raise TopicError("an endpoint's 'url' and 'name' must be strings")
        if url:
            if not is_url(url):
                raise TopicError(f"endpoint URL {url!r} is not an http(s) URL")
            try:
                check(url)
            except DestinationError as exc:
                raise TopicError(str(exc)) from None
        if need_url and not url:
            raise TopicError("each endpoint needs a 'url'")
        if not url and not name:
            raise TopicError("each endpoint needs a 'url' or a 'name'")
        found.append((url, name))
    return found


def with_endpoints() -> QuerySet[Topic]:
    return Topic.objects.prefetch_related("endpoints")


def upsert_endpoints(name: str, items: Any) -> Topic:
    """Add endpoints to the group (made if new). An endpoint with the same name, or else the
    same URL, as one the group has is updated rather than added twice."""
    check_name(name)
    endpoints = _endpoints(items, need_url=True)
    now = timezone.now()
    with transaction.atomic():
        topic, created = Topic.objects.select_for_update().get_or_create(
            name=name, defaults={"created_at": now, "updated_at": now}
        )
        existing = list(topic.endpoints.all())
        for url, endpoint_name in endpoints:
            match = next(
                (e for e in existing if endpoint_name and e.name == endpoint_name), None
            ) or next((e for e in existing if e.url == url), None)
            if match is None:
                existing.append(
                    TopicEndpoint.objects.create(topic=topic, url=url, name=endpoint_name)
                )
            elif (match.url, match.name) != (url, endpoint_name or match.name):
                match.url, match.name = url, endpoint_name or match.name
                match.save(update_fields=["url", "name"])
        if not created:
            Topic.objects.filter(pk=topic.pk).update(updated_at=now)
    return with_endpoints().get(pk=topic.pk)


def remove_endpoints(name: str, items: Any) -> bool:
    """Remove the endpoints named (by URL or by name); the group goes with its last one.
    False if there is no such group."""
    endpoints = _endpoints(items, need_url=False)
    with transaction.atomic():
        topic = Topic.objects.select_for_update().filter(name=name).first()
        if topic is None:
            return False
        for url, endpoint_name in endpoints:
            matching = topic.endpoints.all()
            matching = matching.filter(url=url) if url else matching
            matching = matching.filter(name=endpoint_name) if endpoint_name else matching
            matching.delete()
        if not topic.endpoints.exists():
            topic.delete()
        else:
            Topic.objects.filter(pk=topic.pk).update(updated_at=timezone.now())
    return True


def delete(name: str) -> bool:
    deleted, _ = Topic.objects.filter(name=name).delete()
    return deleted > 0
