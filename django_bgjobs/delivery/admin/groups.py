"""The admin of URL groups (topics) and their endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_bgjobs.admin.widgets import (
    BaseAdmin,
    time_column,
)
from django_bgjobs.delivery.models import (
    Topic,
    TopicEndpoint,
)

if TYPE_CHECKING:  # django-stubs' generics; not subscriptable at run time
    _EndpointInlineBase = admin.TabularInline[TopicEndpoint, Topic]
    _EndpointFormSetBase = BaseInlineFormSet[TopicEndpoint, Topic, forms.ModelForm[TopicEndpoint]]
else:
    _EndpointFormSetBase = BaseInlineFormSet
    _EndpointInlineBase = admin.TabularInline


class EndpointFormSet(_EndpointFormSetBase):
    def clean(self) -> None:
        super().clean()
        urls = [
            form.cleaned_data.get("url")
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        if len(urls) != len(set(urls)):
            raise ValidationError(_("An endpoint URL appears twice in this group."))


class EndpointForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = TopicEndpoint
        fields = ("url", "name")
        widgets = {"url": forms.TextInput(attrs={"size": 70})}

    def clean_url(self) -> str:
        from django_bgjobs.delivery.publish import PublishError, check_destination_url

        url = str(self.cleaned_data["url"]).strip()
        try:
            check_destination_url(url)
        except PublishError as exc:
            raise ValidationError(str(exc)) from None
        return url


class TopicEndpointInline(_EndpointInlineBase):
    model = TopicEndpoint
    form = EndpointForm
    formset = EndpointFormSet
    extra = 1


@admin.register(Topic)
class TopicAdmin(BaseAdmin[Topic]):
    """URL groups are configuration: editable here (publishing to one makes a message per
    endpoint)."""

    list_display = ("name", "endpoint_count", "updated")
    search_fields = ("name",)
    fields = ("name", "headers")
    inlines = (TopicEndpointInline,)

    updated = time_column("updated_at", _("updated"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Topic]:
        return super().get_queryset(request).annotate(endpoint_total=Count("endpoints"))

    @admin.display(description=_("endpoints"), ordering="endpoint_total")
    def endpoint_count(self, topic: Topic) -> int:
        return int(getattr(topic, "endpoint_total", 0))

    def save_model(self, request: HttpRequest, obj: Topic, form: Any, change: Any) -> None:
        obj.updated_at = timezone.now()
        if not change:
            obj.created_at = obj.updated_at
        super().save_model(request, obj, form, change)
