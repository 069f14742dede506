"""QStash capabilities this server does not have, answered 501 with what to use instead (the
README and docs/howto/qstash-api.md list them), rather than the 404 of a path that names
nothing: an SDK user learns it is the capability that is missing, not a typo."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from django_bgjobs.delivery.api.errors import LLM, WORKFLOW, NotOffered
from django_bgjobs.delivery.api.views.base import QStashView

__all__ = ["LLM", "WORKFLOW", "NotOfferedView"]


class NotOfferedView(QStashView):
    """Every method of the paths of one capability: 501, naming it."""

    what = ""

    def _refuse(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise NotOffered(self.what)

    get = post = put = patch = delete = _refuse
