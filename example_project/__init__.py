"""An example Django project using django_bgjobs: signups that send a welcome email and create
a Stripe customer in the background. Run it with ``scripts/demo``."""
