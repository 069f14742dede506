"""A message's labels: the SDKs send several as ``Upstash-Label: l1,l2`` (the JS SDK joins
an array with commas), so a label never holds a comma. They are stored in one column, joined
by commas, and a label filter matches a message that has any of the labels asked for."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db.models import Q


def split(stored: str) -> list[str]:
    return [label for label in stored.split(",") if label]


def joined(labels: str | Sequence[str]) -> str:
    """One label, several comma-separated, or a list: stored form, in order, once each."""
    parts = labels.split(",") if isinstance(labels, str) else labels
    return ",".join(dict.fromkeys(p.strip() for p in parts if p.strip()))


def having_any(labels: Iterable[str], field: str = "label") -> Q:
    """Messages with any of ``labels`` among theirs."""
    found = Q()
    for label in labels:
        found |= (
            Q(**{field: label})
            | Q(**{f"{field}__startswith": f"{label},"})
            | Q(**{f"{field}__endswith": f",{label}"})
            | Q(**{f"{field}__contains": f",{label},"})
        )
    return found
