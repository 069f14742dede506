"""The admin of API tokens (shown once, stored hashed) and of the signing keys (rotate)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from django_bgjobs.admin.widgets import (
    BaseAdmin,
    ReadOnlyAdmin,
    apply_each,
    precise_time,
    time_column,
)
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.delivery.models import (
    ApiToken,
    SigningKeys,
)


@admin.register(ApiToken)
class ApiTokenAdmin(BaseAdmin[ApiToken]):
    """Adding a token shows it once, on the page that follows; only its hash is stored."""

    list_display = ("name", "prefix_display", "user", "is_active", "created", "last_used")
    list_filter = ("is_active",)
    search_fields = ("name", "=prefix")
    raw_id_fields = ("user",)
    actions = ("deactivate",)

    created = time_column("created_at", _("created"))
    last_used = time_column("last_used_at", _("last used"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        return super().get_queryset(request).select_related("user")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["name", "user"]
        return ["name", "prefix_display", "user", "is_active", "created", "last_used"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else ["prefix_display", "created", "last_used"]

    @admin.display(description=_("token starts with"))
    def prefix_display(self, token: ApiToken) -> str:
        return f"{token.prefix}…"

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: Any) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        from django_bgjobs.delivery.api.tokens import create_token

        made, raw = create_token(obj.name, user=obj.user)
        for name in ("pk", "token_hash", "prefix", "created_at", "is_active"):
            setattr(obj, name, getattr(made, name))
        obj._bgjobs_raw_token = raw  # type: ignore[attr-defined]  # for response_add only

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        """The token, on this response only: not in a message (kept in the session or a
        cookie until shown), not in the LogEntry, never again."""
        raw: str = obj._bgjobs_raw_token  # type: ignore[attr-defined]
        response = TemplateResponse(
            request,
            "admin/bgjobs_delivery/apitoken/token_created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "token": obj,
                "raw_token": raw,
                "title": _("API token created"),
                "change_url": reverse("admin:bgjobs_delivery_apitoken_change", args=[obj.pk]),
                "changelist_url": reverse("admin:bgjobs_delivery_apitoken_changelist"),
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Deactivate selected tokens"), permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        def deactivate_one(token: ApiToken) -> str | None:
            if not ApiToken.objects.filter(pk=token.pk, is_active=True).update(is_active=False):
                return None
            return "Deactivated."

        apply_each(
            self,
            request,
            queryset,
            deactivate_one,
            done="{n} token(s) deactivated.",
            skipped="{n} token(s) were inactive already.",
        )


def masked(key: str) -> str:
    return "" if not key else "•" * 8 + key[-4:]


def _key_column(attr: str, label: Any, reveal: bool) -> Any:
    @admin.display(description=label)
    def column(admin_: Any, keys: SigningKeys) -> str:
        key = str(getattr(keys, attr))
        return (key if reveal else masked(key)) or "-"

    return column


@admin.register(SigningKeys)
class SigningKeysAdmin(ReadOnlyAdmin[SigningKeys]):
    # one row, made on first use
    """The keys outbound deliveries are signed with. Shown in full to superusers only; other
    staff see the last four characters (the columns are chosen per request: a ModelAdmin is
    shared by every request). Rotate with its own permission."""

    actions = ("rotate_keys",)

    current_full = _key_column("current", _("current (signs deliveries)"), reveal=True)
    current_masked = _key_column("current", _("current (signs deliveries)"), reveal=False)
    next_full = _key_column("next", _("next"), reveal=True)
    next_masked = _key_column("next", _("next"), reveal=False)
    standard_full = _key_column("standard_secret", _("Standard Webhooks secret"), reveal=True)
    standard_masked = _key_column("standard_secret", _("Standard Webhooks secret"), reveal=False)
    rotated = time_column("rotated_at", _("rotated"))

    @staticmethod
    def _suffix(request: HttpRequest) -> str:
        return "full" if request.user.is_superuser else "masked"

    def get_list_display(self, request: HttpRequest) -> list[str]:  # type: ignore[override]
        end = self._suffix(request)
        return ["__str__", f"current_{end}", f"next_{end}", "rotated"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        end = self._suffix(request)
        return [f"current_{end}", f"next_{end}", "previous_display", "rotated", f"standard_{end}"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return list(self.get_fields(request, obj))

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        from django_bgjobs.delivery.keys import signing_keys

        if self.has_view_permission(request):
            signing_keys()  # made on first use: the list is never empty
        return super().changelist_view(request, extra_context)

    def page_context(self, request: HttpRequest, obj: SigningKeys) -> dict[str, Any]:
        return {
            "can_rotate": self.has_rotate_permission(request),
            "changelist_url": reverse("admin:bgjobs_delivery_signingkeys_changelist"),
            "overlap": int(bgjobs_settings.DELIVERY_KEY_OVERLAP.total_seconds()),
        }

    @admin.display(description=_("previous current key"))
    def previous_display(self, keys: SigningKeys) -> str:
        """Never shown: only whether our own receivers still accept it."""
        if not keys.previous or keys.rotated_at is None:
            return "-"
        left = keys.rotated_at + bgjobs_settings.DELIVERY_KEY_OVERLAP
        if left <= timezone.now():
            return "no longer accepted (the overlap after the last rotation is over)"
        return format_html(
            "…{}: accepted by this project's own receivers until {}",
            keys.previous[-4:],
            precise_time(left),
        )

    def has_rotate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bgjobs_delivery.rotate_signingkeys")

    @admin.action(
        description=_("Rotate keys (next becomes current, a new next is drawn)"),
        permissions=["rotate"],
    )
    def rotate_keys(
        self, request: HttpRequest, queryset: QuerySet[SigningKeys]
    ) -> HttpResponse | None:
        from django_bgjobs.delivery.keys import rotate

        keys = rotate()
        self.log_change(request, keys, "Rotated the signing keys.")
        self.message_user(
            request,
            "Keys rotated: deliveries are now signed with the former "
            "next key. Give receivers the new current and next keys "
            "before rotating again.",
            messages.SUCCESS,
        )
        if request.POST.get("_bgjobs_back"):
            return HttpResponseRedirect(
                reverse("admin:bgjobs_delivery_signingkeys_change", args=[keys.pk])
            )
        return None
