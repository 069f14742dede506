"""When to try a delivery again, the way QStash decides (webhook-wire.md 2.2, 2.5, pitfall 10).

* ``default_backoff(n)``: the n-th retry (n >= 1) waits ``min(86400, e^(2.5 n))`` seconds:
  12 s, 2m28s, 30m8s, 6h7m6s, then a day.
* ``evaluate(expr, retried)``: an ``Upstash-Retry-Delay`` expression (milliseconds; ``retried``
  is 0 for the first retry) through a whitelist of AST nodes, never ``eval``: numbers,
  ``retried``, ``+ - * / %``, ``**``, parentheses, unary minus, and ``pow sqrt abs exp floor
  ceil round min max``. Floats throughout (no huge integers), overflow and domain errors
  refused, the result clamped to [0, 1 day].
* ``parse_retry_after(value)``: seconds, an RFC 1123 date or a Go duration (``6m5s``);
  more than a day is ignored (the default backoff applies, as QStash does).
* ``classify(status, headers, retried=...)``: success (2xx), dead (489 with
  ``Upstash-NonRetryable-Error: true``) or retry after a delay.
"""

from __future__ import annotations

import ast
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

DAY = 86_400.0  # seconds
MAX_EXPRESSION_LENGTH = 256
MAX_NODES = 64
MAX_DEPTH = 16
MAX_EXP_ARGUMENT = 100.0  # e^100 ms is far beyond a day already

# Headers whose value sets the next retry, in the order they are looked at.
RETRY_AFTER_HEADERS = (
    "Retry-After",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-Requests",
    "X-RateLimit-Reset-Tokens",
)


class RetryDelayError(ValueError):
    """The expression is not allowed or cannot be evaluated."""


def default_backoff(n: int) -> float:
    """Seconds before the n-th retry (n >= 1), QStash's default: min(1 day, e^(2.5 n))."""
    if n < 1:
        raise ValueError("retries are numbered from 1")
    return DAY if n * 2.5 > math.log(DAY) else min(DAY, math.exp(2.5 * n))


def _pow(base: float, exponent: float) -> float:
    return math.pow(base, exponent)  # floats: overflow raises at once, no huge integers


def _exp(x: float) -> float:
    if x > MAX_EXP_ARGUMENT:
        raise RetryDelayError(f"exp({x:g}) is too large")
    return math.exp(x)


def _round(x: float) -> float:
    return float(math.floor(x + 0.5))  # half up, as JavaScript's Math.round and QStash


_FUNCTIONS: dict[str, tuple[Callable[..., float], int, int]] = {
    # name: (implementation, minimum arguments, maximum arguments)
    "pow": (_pow, 2, 2),
    "sqrt": (math.sqrt, 1, 1),
    "abs": (abs, 1, 1),
    "exp": (_exp, 1, 1),
    "floor": (lambda x: float(math.floor(x)), 1, 1),
    "ceil": (lambda x: float(math.ceil(x)), 1, 1),
    "round": (_round, 1, 1),
    "min": (min, 1, 16),
    "max": (max, 1, 16),
}

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Mod: math.fmod,  # the sign of the dividend, as Go and JavaScript
    ast.Pow: _pow,
}


def parse(expr: str) -> ast.Expression:
    """Parse and check an expression without evaluating it (for validating at publish time)."""
    if not isinstance(expr, str):
        raise RetryDelayError("the expression must be a string")
    if len(expr) > MAX_EXPRESSION_LENGTH:
        raise RetryDelayError(f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    if not expr.strip():
        raise RetryDelayError("the expression is empty")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise RetryDelayError("the expression does not parse") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise RetryDelayError("the expression is too complex")
    _check(tree.body, 0)
    return tree


def _check(node: ast.AST, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise RetryDelayError("the expression is nested too deeply")
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float):
            raise RetryDelayError(f"constant {node.value!r} is not a number")
    elif isinstance(node, ast.Name):
        if node.id != "retried":
            raise RetryDelayError(f"unknown name {node.id!r} (only 'retried' is defined)")
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise RetryDelayError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.left, depth + 1)
        _check(node.right, depth + 1)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.USub | ast.UAdd):
            raise RetryDelayError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.operand, depth + 1)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise RetryDelayError(
                "only pow, sqrt, abs, exp, floor, ceil, round, min and max may be called"
            )
        if node.keywords:
            raise RetryDelayError("keyword arguments are not allowed")
        _, low, high = _FUNCTIONS[node.func.id]
        if not low <= len(node.args) <= high:
            raise RetryDelayError(f"{node.func.id}() takes {low} to {high} arguments")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise RetryDelayError("argument unpacking is not allowed")
            _check(arg, depth + 1)
    else:
        raise RetryDelayError(f"{type(node).__name__} is not allowed in a retry delay")


def _eval(node: ast.AST, retried: float) -> float:
    # Only the nodes _check let through reach here.
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        return retried
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, retried), _eval(node.right, retried))
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, retried)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        function = _FUNCTIONS[node.func.id][0]
        return float(function(*(_eval(arg, retried) for arg in node.args)))
    raise RetryDelayError(f"{type(node).__name__} is not allowed")  # pragma: no cover


def evaluate(expr: str, retried: int) -> float:
    """The delay in milliseconds, clamped to [0, 1 day]. Raises ``RetryDelayError``."""
    tree = parse(expr)
    try:
        value = _eval(tree.body, float(retried))
    except ZeroDivisionError:
        raise RetryDelayError("division by zero") from None
    except OverflowError:
        raise RetryDelayError("the result overflows") from None
    except ValueError as exc:  # math domain errors (sqrt(-1), fmod(x, 0), pow(-8, 0.5))
        if isinstance(exc, RetryDelayError):
            raise
        raise RetryDelayError(f"math error: {exc}") from None
    if math.isnan(value):
        raise RetryDelayError("the result is not a number")
    return min(max(value, 0.0), DAY * 1000)


_GO_DURATION = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def _go_duration(value: str) -> float | None:
    rest, total = value, 0.0
    while rest:
        match = _GO_DURATION.match(rest)
        if match is None:
            return None
        token = match.group(0)
        number = token.rstrip("nsuµμmh")
        total += float(number) * _GO_UNITS[token[len(number) :]]
        rest = rest[len(token) :]
    return total


def parse_retry_after(value: str, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After``-style value, None if unparseable or over a day."""
    value = value.strip()
    if not value or len(value) > 64:
        return None
    seconds: float | None
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)
    elif re.fullmatch(
        r"[0-9.]+(?:ns|us|µs|μs|ms|s|m|h)(?:[0-9.]+(?:ns|us|µs|μs|ms|s|m|h))*", value
    ):
        seconds = _go_duration(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None  # RFC 1123 dates are GMT; a date without a zone is not one
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds is None or not math.isfinite(seconds) or seconds > DAY:
        return None
    return max(seconds, 0.0)


@dataclass(frozen=True)
class Decision:
    outcome: Literal["success", "retry", "dead"]
    delay: float | None  # seconds before the next attempt ("retry" only)
    reason: str


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def next_delay(
    retried: int,
    *,
    retry_delay: str | None = None,
    headers: Mapping[str, str] | None = None,
    now: float | None = None,
) -> tuple[float, str]:
    """Seconds before the next attempt after an attempt that carried ``Upstash-Retried:
    retried`` failed, and where the figure came from. A ``Retry-After``-style response header
    wins, then the message's ``retry_delay`` expression, then the default backoff. An
    expression that fails to evaluate falls back to the default backoff."""
    for name in RETRY_AFTER_HEADERS:
        raw = _header(headers or {}, name)
        if raw is not None:
            seconds = parse_retry_after(raw, now=now)
            if seconds is not None:
                return seconds, name
    if retry_delay is not None:
        try:
            return evaluate(retry_delay, retried) / 1000, "retry_delay"
        except RetryDelayError:
            pass
    return default_backoff(retried + 1), "default backoff"


def classify(
    status: int | None,
    headers: Mapping[str, str] | None = None,
    *,
    retried: int,
    retry_delay: str | None = None,
    now: float | None = None,
) -> Decision:
    """What to do after an attempt: ``status`` None means no response (timeout, connection
    error). Whether retries are exhausted is the caller's business."""
    headers = headers or {}
    if status is not None and 200 <= status < 300:
        return Decision("success", None, f"HTTP {status}")
    if (
        status == 489
        and (_header(headers, "Upstash-NonRetryable-Error") or "").strip().lower() == "true"
    ):
        return Decision("dead", None, "HTTP 489 with Upstash-NonRetryable-Error: true")
    delay, source = next_delay(retried, retry_delay=retry_delay, headers=headers, now=now)
    what = "no response" if status is None else f"HTTP {status}"
    return Decision("retry", delay, f"{what}; next attempt in {delay:g} s ({source})")
