"""Django's own signals, turned into the shop's events (connected in ``ShopConfig.ready``).

A user created anywhere (the signup API, the admin, ``createsuperuser``) sends ``SignedUp`` in
the transaction that creates it: the onboarding run commits with the user, or not at all."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_delete, post_save

from example_project.shop.events import LoggedIn, SignedUp, UserDeleted


def _created(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if created and not raw:  # raw: loaddata, not a signup
        SignedUp(user_id=instance.pk).send()


def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    LoggedIn(user_id=user.pk).send()


def _deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    UserDeleted(user_id=instance.pk).send()


def connect() -> None:
    user_model = get_user_model()
    post_save.connect(_created, sender=user_model, dispatch_uid="shop.signed_up")
    post_delete.connect(_deleted, sender=user_model, dispatch_uid="shop.user_deleted")
    user_logged_in.connect(_logged_in, dispatch_uid="shop.logged_in")
