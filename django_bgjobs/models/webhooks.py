"""Webhooks received: each delivery's raw body, kept before its handler job runs."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from django_bgjobs.models.jobs import Job


class InboundWebhook(models.Model):
    """A webhook delivery received on a BGJOBS["WEBHOOKS"] endpoint: its raw body and the
    headers that matter, kept so the handler job (and a replay) reads exactly what arrived.

    One verified receipt per (endpoint, provider message id): a redelivery of the same message
    is acknowledged and not processed again. Rejected deliveries are kept only when
    ``WEBHOOK_STORE_REJECTED`` is on, without their body.
    """

    id = models.BigAutoField(primary_key=True)
    endpoint = models.CharField(max_length=100, help_text=_("The BGJOBS['WEBHOOKS'] entry."))
    scheme = models.CharField(max_length=20)
    message_id = models.CharField(
        max_length=255,
        blank=True,
        help_text=_(
            "The provider's id of the delivery (Upstash-Message-Id, webhook-id, the Stripe event "
            "id, X-GitHub-Delivery): the same on every retry."
        ),
    )
    received_at = models.DateTimeField()
    body = models.BinaryField(blank=True)
    headers = models.JSONField(default=dict)
    verified = models.BooleanField()
    failed_check = models.CharField(max_length=40, blank=True)
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_receipts"
    )

    class Meta:
        verbose_name = _("webhook receipt")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "message_id"],
                condition=Q(verified=True) & ~Q(message_id=""),
                name="bgjobs_inboundwebhook_unique_message",
            ),
        ]
        permissions = [("replay_inboundwebhook", "Can replay webhook receipts")]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.message_id or self.pk}"

    def text(self) -> str:
        return bytes(self.body).decode("utf-8", errors="replace")

    def json(self) -> object:
        """The body parsed as JSON (``ValueError`` if it is not JSON)."""
        import json

        return json.loads(bytes(self.body))
