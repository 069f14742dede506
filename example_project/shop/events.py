"""The shop's events: what happened, typed. Sending one starts the functions that listen to it
(``jobs.onboarding`` for ``SignedUp``) and wakes the runs waiting for it."""

from __future__ import annotations

from django_bgjobs import Event, event


@event("shop/user.signed_up")
class SignedUp(Event):
    user_id: int


@event("shop/user.logged_in")
class LoggedIn(Event):
    user_id: int


@event("shop/user.deleted")
class UserDeleted(Event):
    user_id: int


@event("shop/crm.sync")
class CrmSync(Event):
    user_id: int
