"""The delivery signing keys: rotation, the overlap our own receivers allow after it
(``"secrets": "bgjobs"`` on a qstash endpoint), and ``manage.py bgjobs keys / rotate-keys``."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone
from qstash import Receiver as QStashReceiver

from django_bgjobs.checks import check_webhooks
from django_bgjobs.delivery.keys import rotate, signing_keys, verification_keys
from django_bgjobs.delivery.models import SigningKeys
from django_bgjobs.models import InboundWebhook
from django_bgjobs.webhooks.endpoints import endpoint
from django_bgjobs.webhooks.sign import qstash_signature

pytestmark = pytest.mark.django_db(transaction=True)

OWN_URL = f"{settings.PUBLIC_URL}/webhooks/own/"
KEY = re.compile(r"sig_[1-9A-HJ-NP-Za-km-z]{28}")


def own_endpoint(**extra: object):  # type: ignore[no-untyped-def]
    """A project receiving its own deliveries: verified with its own delivery keys."""
    return override_settings(
        BGJOBS={
            **settings.BGJOBS,
            **extra,
            "WEBHOOKS": {
                **settings.BGJOBS["WEBHOOKS"],
                "own": {"scheme": "qstash", "url": OWN_URL, "secrets": "bgjobs"},
            },
        }
    )


def deliver(body: bytes, key: str, message_id: str) -> int:
    token = qstash_signature(body, OWN_URL, key, time.time())
    return (
        Client()
        .post(
            "/webhooks/own/",
            body,
            content_type="application/json",
            headers={"Upstash-Signature": token, "Upstash-Message-Id": message_id},
        )
        .status_code
    )


def run(*args: str) -> str:
    out = StringIO()
    call_command("bgjobs", *args, stdout=out)
    return out.getvalue()


def test_keys_are_made_once_in_qstash_shape():
    keys = signing_keys()
    assert KEY.fullmatch(keys.current) and KEY.fullmatch(keys.next)
    assert keys.current != keys.next and keys.standard_secret.startswith("whsec_")
    assert signing_keys().current == keys.current and SigningKeys.objects.count() == 1
    assert verification_keys() == (keys.current, keys.next)


def test_rotate_makes_next_current_and_keeps_the_old_current_for_the_overlap():
    before = signing_keys()
    after = rotate()
    assert (after.previous, after.current) == (before.current, before.next)
    assert KEY.fullmatch(after.next) and after.next not in (before.current, before.next)
    assert verification_keys() == (after.current, after.next, before.current)
    SigningKeys.objects.update(rotated_at=timezone.now() - timedelta(hours=2))  # overlap: 1 h
    assert verification_keys() == (after.current, after.next)


def test_a_receiver_with_the_old_pair_accepts_deliveries_signed_after_one_rotation():
    """QStash's contract: after a roll, the new current key is the receivers' old next key."""
    old = signing_keys()
    new = rotate()
    body = b'{"after": "rotation"}'
    token = qstash_signature(body, OWN_URL, new.current, time.time())
    QStashReceiver(current_signing_key=old.current, next_signing_key=old.next).verify(
        signature=token, body=body.decode(), url=OWN_URL
    )


def test_own_keys_endpoint_accepts_current_and_next():
    keys = signing_keys()
    with own_endpoint():
        assert deliver(b"{}", keys.current, "m-current") == 202
        assert deliver(b"{}", keys.next, "m-next") == 202
        assert deliver(b"{}", "sig_" + "x" * 28, "m-forged") == 401
    assert set(
        InboundWebhook.objects.filter(verified=True).values_list("message_id", flat=True)
    ) == {"m-current", "m-next"}


def test_the_old_current_key_is_accepted_within_the_overlap_and_refused_after():
    old = signing_keys()
    rotate()
    with own_endpoint(DELIVERY_KEY_OVERLAP=timedelta(minutes=5)):
        # Signed just before the rotation, checked just after: still accepted.
        assert deliver(b'{"n": 1}', old.current, "m1") == 202
        SigningKeys.objects.update(rotated_at=timezone.now() - timedelta(minutes=6))
        assert deliver(b'{"n": 2}', old.current, "m2") == 401
        # The pair receivers were given at the rotation still works.
        assert deliver(b'{"n": 3}', signing_keys().current, "m3") == 202


def test_the_overlap_setting_is_read_at_each_request():
    old = signing_keys()
    rotate()
    with own_endpoint(DELIVERY_KEY_OVERLAP=0):
        assert deliver(b"{}", old.current, "m0") == 401
    with own_endpoint(DELIVERY_KEY_OVERLAP=3600):
        assert deliver(b"{}", old.current, "m1") == 202


def test_own_keys_are_for_qstash_endpoints_only():
    config = {**settings.BGJOBS, "WEBHOOKS": {"std": {"scheme": "standard", "secrets": "bgjobs"}}}
    with override_settings(BGJOBS=config):
        with pytest.raises(ImproperlyConfigured, match="goes with scheme 'qstash'"):
            endpoint("std")
        assert [e.id for e in check_webhooks()] == ["django_bgjobs.E007"]
    with own_endpoint():
        found = endpoint("own")
        assert found is not None and found.key_source == "bgjobs" and found.secrets == ()
        assert check_webhooks() == []


def test_the_keys_command_prints_the_pair_for_receivers():
    keys = signing_keys()
    out = run("keys")
    assert f"QSTASH_CURRENT_SIGNING_KEY={keys.current}\n" in out
    assert f"QSTASH_NEXT_SIGNING_KEY={keys.next}\n" in out
    assert "rotated" not in out


def test_the_rotate_keys_command_rotates_and_explains_the_overlap():
    before = signing_keys()
    out = run("rotate-keys")
    after = signing_keys()
    assert after.current == before.next and after.previous == before.current
    assert f"QSTASH_CURRENT_SIGNING_KEY={after.current}\n" in out
    assert f"QSTASH_NEXT_SIGNING_KEY={after.next}\n" in out
    assert "before rotating again" in out and "for 3600 s (DELIVERY_KEY_OVERLAP)" in out
    assert before.current not in out  # the retired key is not printed
    assert "last rotated" in run("keys")
