"""The durable functions bench/functions.py measures (loaded with bench/jobs.py)."""

from datetime import timedelta

from django_bgjobs import Event, FunctionContext, event, function

STEPS = 20


@event("bench/heard")
class Heard(Event):
    n: int


@event("bench/unheard")
class Unheard(Event):
    """An event no function listens to: stored, nothing started."""

    n: int


def nothing(n: int) -> int:
    return n


@function(name="bench.steps", on=Heard)
def steps(ctx: FunctionContext, ev: Heard) -> int:
    """STEPS no-op steps: each stored once."""
    for n in range(STEPS):
        ctx.step.run(f"step-{n}", nothing, n)
    return STEPS


@function(name="bench.no_steps")
def no_steps(ctx: FunctionContext) -> int:
    """The same run without its steps: what a run costs without them."""
    return 0


@function(name="bench.sleeper")
def sleeper(ctx: FunctionContext) -> int:
    ctx.step.sleep("nap", timedelta(seconds=1))
    return ctx.step.run("after", nothing, 1)
