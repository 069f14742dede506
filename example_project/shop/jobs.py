"""The shop's background jobs and durable functions. django_bgjobs imports every installed
app's ``jobs.py``.

``onboarding`` runs when a user signs up (``receivers.py`` sends ``SignedUp`` in the
transaction that creates the user): the Stripe customer, the welcome email, a pause, then a
wait for the user's first login, a nudge if it does not come, and a CRM sync. Each step runs
once; a failed one is retried alone.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.mail import send_mail

from django_bgjobs import (
    Backoff,
    Concurrency,
    FunctionContext,
    JobContext,
    NonRetriable,
    bgjob,
    function,
)
from example_project.shop.events import CrmSync, LoggedIn, SignedUp, UserDeleted

logger = logging.getLogger(__name__)

# A day and three days in a shop; a minute and three in the demo, to watch a run go through.
PAUSE = timedelta(seconds=float(os.environ.get("SHOP_ONBOARDING_PAUSE", 60)))
LOGIN_WAIT = timedelta(seconds=float(os.environ.get("SHOP_ONBOARDING_LOGIN_WAIT", 180)))


def _stripe_transient_errors() -> tuple[type[BaseException], ...]:
    """Stripe errors worth another attempt: the network, rate limits, Stripe's own 5xx.

    Anything else (a bad request, a bad key) would fail the same way again, so it is not
    retried. Without the stripe package the job never calls Stripe: nothing to retry then.
    """
    try:
        import stripe
    except ImportError:
        return (ConnectionError, TimeoutError)
    return (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)


def _user(user_id: int):
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        # Deleted, or its signup rolled back: another attempt would not find it either.
        raise NonRetriable(f"user {user_id} does not exist")
    return user


@bgjob(
    queue="emails",
    max_attempts=4,
    backoff=Backoff(base=2, factor=2, max=600, jitter=True),
    timeout=30,
)
def send_welcome_email(user_id: int) -> dict:
    """Email the new user. SMTP hiccups are retried (2s, 4s, 8s apart at most)."""
    return _email(user_id, "Welcome to the shop!", "thanks for signing up. Happy shopping!")


def _email(user_id: int, subject: str, text: str) -> dict:
    user = _user(user_id)  # raises NonRetriable when the user does not exist
    if not user.email:
        return {"skipped": "the user has no email address"}
    send_mail(
        subject=subject,
        message=f"Hi {user.get_username()},\n\n{text}\n",
        from_email=None,  # settings.DEFAULT_FROM_EMAIL
        recipient_list=[user.email],
    )
    return {"sent_to": user.email}


@bgjob(max_attempts=5, retry_on=_stripe_transient_errors())
def create_stripe_customer(user_id: int) -> dict:
    """Create the user's Stripe customer (when STRIPE_API_KEY is set).

    Stripe's idempotency key makes a retry after a lost response safe: the second request
    returns the customer the first one created instead of creating another.
    """
    api_key = os.environ.get("STRIPE_API_KEY")
    if not api_key:
        return {"skipped": "STRIPE_API_KEY is not set"}
    try:
        import stripe
    except ImportError:
        raise NonRetriable(
            "STRIPE_API_KEY is set but the stripe package is not installed"
        ) from None
    user = _user(user_id)
    customer = stripe.Customer.create(
        api_key=api_key,
        email=user.email,
        metadata={"user_id": str(user_id)},
        idempotency_key=f"customer:{user_id}",
    )
    return {"customer_id": customer.id}


@function(on=SignedUp, cancel_on=[(UserDeleted, "user_id")], max_attempts=4)
def onboarding(ctx: FunctionContext, ev: SignedUp) -> dict:
    """A new user's first days. Watch a run in the admin (Background jobs > Jobs, then its
    page): its steps, the pause and the wait, which hold no worker. Log in as the user (or as
    admin, for the superuser's run) before LOGIN_WAIT to skip the nudge."""
    customer = ctx.step.run("create-stripe-customer", create_stripe_customer.call, ev.user_id)
    ctx.step.run("welcome-email", send_welcome_email.call, ev.user_id)
    ctx.step.sleep("pause", PAUSE)
    login = ctx.step.wait_for_event("first-login", LoggedIn, match="user_id", timeout=LOGIN_WAIT)
    if login is None:
        ctx.step.run("nudge", send_nudge, ev.user_id)
    ctx.step.send_event("crm-sync", CrmSync(user_id=ev.user_id))
    return {"customer": customer, "logged_in": login is not None}


def send_nudge(user_id: int) -> dict:
    """The onboarding's reminder to a user who has not logged in."""
    return _email(user_id, "Your shop is waiting", "you have not logged in yet: have a look!")


@function(on=CrmSync, max_attempts=3)
def crm_sync(ctx: FunctionContext, ev: CrmSync) -> dict:
    """Fan-out: started by the onboarding run's last step (a stand-in for a CRM's API)."""
    return ctx.step.run("upsert-contact", lambda: {"synced": ev.user_id})


@bgjob(takes_context=True, max_attempts=5, backoff=Backoff(base=1, factor=2, max=8, jitter=False))
def flaky_report(ctx: JobContext, fail_times: int) -> str:
    """A demo: fails on its first ``fail_times`` attempts (1s, 2s, 4s... apart), then succeeds.

    Watch it in the admin (Background jobs > Jobs): attempts, errors and progress.
    """
    steps = 5
    for step in range(1, steps + 1):
        time.sleep(0.6)
        ctx.progress(step, steps, f"attempt {ctx.attempt}: step {step} of {steps}")
        if step == 3 and ctx.attempt <= fail_times:
            raise ConnectionError(
                f"the reporting database went away (attempt {ctx.attempt} of {ctx.max_attempts}, "
                f"failing on purpose {fail_times} time(s))"
            )
    ctx.logger.info("report ready after %d attempt(s)", ctx.attempt)
    return f"report ready after {ctx.attempt} attempt(s)"


@bgjob
def record_order_event(receipt_id: int) -> dict:
    """The partner's handler: a delivery of ours arrived, verified, stored as a receipt."""
    from django_bgjobs.models import InboundWebhook

    receipt = InboundWebhook.objects.get(pk=receipt_id)
    event = receipt.json()
    logger.info(
        "partner got %s for order %s (message %s)",
        event.get("event"),
        event.get("order"),
        receipt.message_id,
    )
    return {"message_id": receipt.message_id, "event": event}


@bgjob(cron="*/2 * * * *", tz="Europe/Paris", overlap="skip")
def signup_digest() -> dict[str, int]:
    """A schedule declared in code: every two minutes, count the users (beat fires it; the
    admin's Schedules page shows its next run and the outcome of the last one)."""
    return {"users": get_user_model().objects.count()}


@bgjob(concurrency=Concurrency(limit=1, key="customer_id"))
def sync_customer(customer_id: int) -> dict:
    """Flow control: one sync per customer at a time, on every worker. Enqueue it a few times
    for one customer from ``manage.py shell`` and watch the others wait as *Blocked* in the
    admin, then start one after the other (another customer's sync runs beside them)."""
    time.sleep(2)  # a slow partner API
    return {"customer": customer_id, "synced": True}
