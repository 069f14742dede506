"""The keys outbound deliveries are signed with: current and next, as QStash has them.

Receivers are configured with both. ``rotate()`` makes next the current key and draws a new
next, the way QStash's "roll keys" does; a receiver that still has the old pair keeps accepting
messages signed with the new current key (its old next). The old current key stays valid for
our own verifiers (``verification_keys()``) during ``DELIVERY_KEY_OVERLAP``, so a message
signed just before the rotation and checked just after is not refused.

The row is made on first use with random keys; ``BGJOBS["DELIVERY_SIGNING_KEYS"]`` (current and
next) seeds it instead, for a project moving from QStash that keeps its receivers' keys.
"""

from __future__ import annotations

import base64
import secrets
import string

from django.db import transaction
from django.utils import timezone

from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.delivery.models import SigningKeys

_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0OIl")


def new_key() -> str:
    """A key in QStash's shape: ``sig_`` and 28 base58 characters (about 164 random bits)."""
    return "sig_" + "".join(secrets.choice(_ALPHABET) for _ in range(28))


def _seed() -> SigningKeys:
    configured = bgjobs_settings.DELIVERY_SIGNING_KEYS or {}
    return SigningKeys(
        pk=1,
        current=configured.get("current") or new_key(),
        next=configured.get("next") or new_key(),
        standard_secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
    )


def signing_keys() -> SigningKeys:
    """The keys now (made on first use; concurrent first uses agree on one row)."""
    keys = SigningKeys.objects.filter(pk=1).first()
    if keys is not None:
        return keys
    SigningKeys.objects.bulk_create([_seed()], ignore_conflicts=True)
    return SigningKeys.objects.get(pk=1)


def rotate() -> SigningKeys:
    """Next becomes current, a new next is drawn, the old current is kept as ``previous``."""
    signing_keys()
    with transaction.atomic():
        keys = SigningKeys.objects.select_for_update().get(pk=1)
        keys.previous, keys.current, keys.next = keys.current, keys.next, new_key()
        keys.rotated_at = timezone.now()
        keys.save(update_fields=["previous", "current", "next", "rotated_at"])
    return keys


def verification_keys() -> tuple[str, ...]:
    """The keys a delivery of ours may be signed with right now: current, next, and the
    previous current key while the overlap after a rotation lasts."""
    keys = signing_keys()
    found = [keys.current, keys.next]
    if (
        keys.previous
        and keys.rotated_at is not None
        and timezone.now() - keys.rotated_at < bgjobs_settings.DELIVERY_KEY_OVERLAP
    ):
        found.append(keys.previous)
    return tuple(found)
