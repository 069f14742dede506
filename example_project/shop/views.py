from html import escape

from django.contrib.auth import authenticate, login
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from rest_framework import generics, status
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from django_bgjobs.models import Job
from django_bgjobs.webhooks.views import verify_webhook
from example_project.shop.jobs import flaky_report, onboarding, send_welcome_email
from example_project.shop.serializers import (
    FlakySerializer,
    JobSerializer,
    JobSummarySerializer,
    SignupSerializer,
)
from example_project.shop.tasks import count_words


class SignupView(APIView):
    """Create a user. Its ``SignedUp`` event starts the onboarding run (receivers.py)."""

    authentication_classes: list = []  # an anonymous API call: no session, so no CSRF check
    permission_classes = [AllowAny]

    def post(self, request):
        serializer = SignupSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            # The user, its SignedUp event and the onboarding run commit together (or not at
            # all); the run reaches the broker once this block commits.
            with transaction.atomic():
                user = serializer.save()
        except IntegrityError:  # a concurrent signup took the username first
            return Response(
                {"username": ["A user with that username already exists."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        jobs = Job.objects.filter(name=onboarding.name, kwargs__event__data__user_id=user.pk)
        return Response(
            {
                "id": user.pk,
                "username": user.get_username(),
                "email": user.email,
                "jobs": JobSummarySerializer(jobs, many=True).data,
            },
            status=status.HTTP_201_CREATED,
        )


@verify_webhook("qstash")
def welcome_consumer(request: HttpRequest) -> HttpResponse:
    """The seed's QStash consumer, POST /api/jobs/welcome {"user_id": 1}: only requests QStash
    signed for this URL get here. The message id is the idempotency key: QStash retries a
    message with the same id, and it enqueues one job."""
    import json

    from django.http import JsonResponse

    try:
        user_id = int(json.loads(request.body)["user_id"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": 'the body must be JSON like {"user_id": 1}'}, status=400)
    key = f"qstash:{request.webhook.message_id}" if request.webhook.message_id else None
    job = send_welcome_email.using(idempotency_key=key).enqueue(user_id)
    return JsonResponse({"job": str(job.pk), "status": job.status}, status=202)


class JobDetailView(generics.RetrieveAPIView):
    """A job's status, attempts, result and error (staff only)."""

    queryset = Job.objects.all()
    serializer_class = JobSerializer
    permission_classes = [IsAdminUser]


class LoginView(APIView):
    """Sign in with a username and password (a session): Django's ``user_logged_in`` is sent,
    and with it the shop's ``LoggedIn`` event, which the user's onboarding run waits for."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request):
        user = authenticate(
            request,
            username=request.data.get("username", ""),
            password=request.data.get("password", ""),
        )
        if user is None:
            return Response(
                {"detail": "Unknown username, or wrong password."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        login(request, user)
        return Response({"id": user.pk, "username": user.get_username()})


class FlakyDemoView(APIView):
    """Enqueue a job that fails its first ``fail_times`` attempts, to watch retries happen."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request):
        serializer = FlakySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = flaky_report.enqueue(serializer.validated_data["fail_times"])
        admin_url = request.build_absolute_uri(
            reverse("admin:django_bgjobs_job_change", args=[job.pk])
        )
        return Response(
            {
                "id": str(job.pk),
                "name": job.name,
                "status": job.status,
                "max_attempts": job.max_attempts,
                "admin_url": admin_url,
            },
            status=status.HTTP_202_ACCEPTED,
        )


class DjangoTaskDemoView(APIView):
    """A Django ``@task`` (shop/tasks.py) on the django-bgjobs backend: POST {"text": ...}
    enqueues it; GET .../<id> reads its TaskResult."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request):
        result = count_words.enqueue(str(request.data.get("text", "")))
        return Response(_task_result(result), status=status.HTTP_202_ACCEPTED)

    def get(self, request, result_id):
        return Response(_task_result(count_words.get_result(str(result_id))))


def _task_result(result) -> dict:
    return {
        "id": result.id,
        "status": result.status,
        "attempts": result.attempts,
        "return_value": result.return_value if result.status == "SUCCESSFUL" else None,
    }


class DeliverDemoView(APIView):
    """Publish an "order.paid" event to the partner's URL (this shop's own receiver): a signed
    delivery, retried, deduplicated per order, visible under Messages in the admin."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request):
        from django.conf import settings

        from django_bgjobs.delivery.publish import publish

        order = int(request.data.get("order", 1))
        message_id = publish(
            f"{settings.PUBLIC_URL}/webhooks/partner/",
            json={"event": "order.paid", "order": order},
            deduplication_id=f"order-paid-{order}",
            retries=3,
        )
        admin_url = request.build_absolute_uri(
            reverse("admin:bgjobs_delivery_message_change", args=[message_id])
        )
        return Response(
            {"message_id": message_id, "admin_url": admin_url}, status=status.HTTP_202_ACCEPTED
        )


INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>django_bgjobs example shop</title>
<style>body{{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;
line-height:1.5}}pre{{background:#f4f4f4;padding:.8rem;overflow-x:auto}}</style></head>
<body>
<h1>django_bgjobs example shop</h1>
<p>Signing up creates a user and sends its <code>SignedUp</code> event, which starts the
<code>onboarding</code> durable function: a Stripe customer, a welcome email, a pause, a wait
for the user's first login (a nudge if it does not come), a CRM sync. django_bgjobs stores
each step's result in the database and Celery runs them.</p>

<h2>1. Sign up</h2>
<pre>curl -s -X POST {base}api/signup -H 'Content-Type: application/json' \\
  -d '{{"username": "alice", "email": "alice@example.com",
       "password": "correct-horse-battery"}}'</pre>
<p>The answer lists the onboarding run the signup started. The welcome email is printed on
the demo's console (the worker's output). Without <code>STRIPE_API_KEY</code> the Stripe step
succeeds with <code>{{"skipped": ...}}</code>; set a test-mode key to create real customers.
The run then sleeps a minute and waits three for a login, holding no worker: open its page in
the admin to see its steps, and log in as that user to end the wait.</p>

<h2>2. Look at a job</h2>
<pre>curl -s -u admin:admin {base}api/jobs/&lt;job id&gt;</pre>
<p>Or in the admin: <a href="{admin}">{admin}</a> (admin / admin), <em>Background jobs</em>.
From a shell: <code>.venv/bin/python manage.py bgjobs status</code>.</p>

<h2>3. Watch retries</h2>
<pre>curl -s -X POST {base}api/demo/flaky -H 'Content-Type: application/json' \\
  -d '{{"fail_times": 2}}'</pre>
<p>That job fails on its first two attempts (ConnectionError), is retried after 1s then 2s,
and succeeds on the third. Its attempts, errors and progress are in the admin. With
<code>"fail_times": 5</code> it runs out of attempts and goes <em>dead</em>: retry it from the
admin, or with <code>manage.py bgjobs retry</code>.</p>

<h2>4. Deliver a signed webhook (self-hosted QStash)</h2>
<pre>curl -s -X POST {base}api/demo/deliver -H 'Content-Type: application/json' \\
  -d '{{"order": 42}}'</pre>
<p>The shop publishes an <code>order.paid</code> event to a partner's URL, here its own
<code>/webhooks/partner/</code>: signed like QStash, verified there with the live keys, stored
as a webhook receipt and handled by a job. Publishing order 42 again within ten minutes
returns the same message id. See <em>Messages</em> in the admin for the attempts. The
QStash SDKs can publish too: <code>manage.py bgjobs create-token demo</code>, then
<code>QStash(token, base_url="{base}qstash")</code>.</p>
</body></html>
"""


def index(request: HttpRequest) -> HttpResponse:
    base = escape(request.build_absolute_uri("/"))
    admin = escape(request.build_absolute_uri(reverse("admin:index")))
    return HttpResponse(INDEX.format(base=base, admin=admin))
