"""Flow control for jobs and durable functions: concurrency per key, throttle, rate limit,
debounce, singleton and batch, enforced in the database across every worker (``options.py`` is what
a user declares; ``at_enqueue.py`` and ``admission.py`` enforce it)."""
