"""QStash's retry rules: the default backoff, the Upstash-Retry-Delay evaluator (never eval),
Retry-After and friends, and the 489 non-retryable rule."""

from __future__ import annotations

import math
import time
from email.utils import formatdate

import pytest

from django_bgjobs.delivery.retry_delay import (
    DAY,
    MAX_EXPRESSION_LENGTH,
    RetryDelayError,
    classify,
    default_backoff,
    evaluate,
    next_delay,
    parse,
    parse_retry_after,
)


def test_default_backoff_is_qstash_schedule() -> None:
    # 12 s, 2m28s, 30m8s, 6h7m6s, then a day (webhook-wire.md 2.5)
    assert [int(default_backoff(n)) for n in range(1, 7)] == [
        12,
        2 * 60 + 28,
        30 * 60 + 8,
        6 * 3600 + 7 * 60 + 6,
        86_400,
        86_400,
    ]
    assert default_backoff(10_000) == DAY
    with pytest.raises(ValueError):
        default_backoff(0)


@pytest.mark.parametrize(
    ("expr", "retried", "expected"),
    [
        ("pow(2, retried) * 1000", 0, 1000),
        ("pow(2, retried) * 1000", 3, 8000),
        ("1000", 5, 1000),
        ("1.5e3", 0, 1500),
        ("(retried + 1) * 500", 2, 1500),
        ("-retried + 10", 3, 7),
        ("+retried", 4, 4),
        ("retried ** 2 * 100", 3, 900),
        ("10 % 3", 0, 1),
        ("-7 % 3 + 5", 0, 4),  # the sign of the dividend, as Go and JavaScript: -1 + 5
        ("7 / 2", 0, 3.5),
        ("sqrt(16) * 1000", 0, 4000),
        ("abs(-5)", 0, 5),
        ("floor(exp(retried))", 1, 2),
        ("ceil(2.1)", 0, 3),
        ("round(2.5)", 0, 3),
        ("round(2.4)", 0, 2),
        ("min(1000 * retried, 5000)", 9, 5000),
        ("max(100, 200, 300)", 0, 300),
        ("  1000  ", 0, 1000),
        ("(" * 100 + "1" + ")" * 100, 0, 1),  # parentheses make no nodes: harmless
        ("0 - 5000", 0, 0),  # clamped at 0
        ("pow(10, 12)", 0, DAY * 1000),  # clamped at one day
        ("exp(50)", 0, DAY * 1000),
    ],
)
def test_valid_expressions(expr: str, retried: int, expected: float) -> None:
    assert evaluate(expr, retried) == pytest.approx(expected)


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os').system('true')",
        "__import__",
        "().__class__.__bases__[0].__subclasses__()",
        "retried.__class__",
        "retried.real",
        "(1).real",
        "math.pi",
        "open('/etc/passwd')",
        "eval('1')",
        "exec('1')",
        "getattr(retried, 'x')",
        "lambda: 1",
        "[1, 2]",
        "(1, 2)",
        "{'a': 1}",
        "'1000'",
        "b'1000'",
        "True",
        "None",
        "1j",
        "...",
        "x",
        "retried if 1 else 2",
        "1 < 2",
        "1 and 2",
        "not 1",
        "~1",
        "1 << 60",
        "1 ^ 2",
        "1 | 2",
        "7 // 2",
        "pow(2, 3, 5)",
        "pow(2)",
        "min()",
        "sqrt(x=4)",
        "max(*[1, 2])",
        "f'{retried}'",
        "(x := 1)",
        "[i for i in range(10**9)]",
        "retried[0]",
        "",
        "   ",
        "1 +",
        "1\x00",
        "9 ** 9 ** 9",
        "pow(10, 400)",
        "pow(9, pow(9, 9))",
        "exp(1000)",
        "exp(exp(exp(10)))",
        "1 / 0",
        "5 % 0",
        "sqrt(-1)",
        "pow(-8, 0.5)",
        "floor(pow(10, 308) * 10)",
        "1" * (MAX_EXPRESSION_LENGTH + 1),
        "+".join(["1"] * 100),
        "(" * 200 + "1" + ")" * 200,
        "-" * 200 + "1",
        "abs(" * 30 + "1" + ")" * 30,
    ],
)
def test_refused_expressions(expr: str) -> None:
    with pytest.raises(RetryDelayError):
        evaluate(expr, 1)


def test_refusal_is_quick_for_pathological_input() -> None:
    started = time.monotonic()
    for expr in ("9 ** 9 ** 9 ** 9", "pow(99999, 99999)", "(" * 10_000, "1+" * 50_000 + "1"):
        with pytest.raises(RetryDelayError):
            evaluate(expr, 3)
    assert time.monotonic() - started < 1


def test_parse_validates_without_evaluating() -> None:
    parse("pow(2, retried) * 1000")
    with pytest.raises(RetryDelayError, match="only 'retried'"):
        parse("retries * 1000")
    with pytest.raises(RetryDelayError, match="Attribute"):
        parse("retried.real")
    with pytest.raises(RetryDelayError, match="may be called"):
        parse("retried.bit_length()")
    with pytest.raises(RetryDelayError, match="may be called"):
        parse("__import__('os')")


def test_retry_after_formats() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 0 ") == 0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("6m5s") == 365
    assert parse_retry_after("1h30m") == 5400
    assert parse_retry_after("1.5h") == 5400
    assert parse_retry_after("250ms") == 0.25
    assert parse_retry_after("2h3m4.5s") == pytest.approx(7384.5)
    assert parse_retry_after(formatdate(now + 90, usegmt=True), now=now) == 90
    assert parse_retry_after(formatdate(now - 90, usegmt=True), now=now) == 0  # past: now
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60
    # over a day: ignored, the default backoff applies
    assert parse_retry_after("86401") is None
    assert parse_retry_after("25h") is None
    assert parse_retry_after(formatdate(now + 2 * 86_400, usegmt=True), now=now) is None
    assert parse_retry_after("86400") == 86_400
    for junk in (
        "",
        "soon",
        "-5",
        "5x",
        "1e3",
        "inf",
        "nan",
        "m5s",
        "5 s",
        "x" * 100,
        "Wed, 21 Oct 2015 07:28:00",
    ):
        assert parse_retry_after(junk, now=now) is None, junk


def test_classify_success() -> None:
    for status in (200, 201, 204, 299):
        decision = classify(status, {}, retried=0)
        assert (decision.outcome, decision.delay) == ("success", None)


def test_classify_489_non_retryable() -> None:
    decision = classify(489, {"Upstash-NonRetryable-Error": "true"}, retried=0)
    assert decision.outcome == "dead"
    assert classify(489, {"upstash-nonretryable-error": " TRUE "}, retried=2).outcome == "dead"
    # 489 without the header, or the header on another status, is an ordinary failure
    assert classify(489, {}, retried=0).outcome == "retry"
    assert classify(489, {"Upstash-NonRetryable-Error": "false"}, retried=0).outcome == "retry"
    assert classify(500, {"Upstash-NonRetryable-Error": "true"}, retried=0).outcome == "retry"


def test_classify_retry_uses_retry_after_then_expression_then_default() -> None:
    decision = classify(503, {"retry-after": "30"}, retried=0, retry_delay="5000")
    assert (decision.outcome, decision.delay) == ("retry", 30)
    assert "Retry-After" in decision.reason
    assert classify(429, {"X-RateLimit-Reset-Tokens": "6m5s"}, retried=0).delay == 365
    decision = classify(500, {}, retried=2, retry_delay="pow(2, retried) * 1000")
    assert decision.delay == 4 and "retry_delay" in decision.reason
    assert classify(500, {}, retried=0).delay == pytest.approx(math.exp(2.5))
    assert classify(500, {}, retried=1).delay == pytest.approx(math.exp(5))
    # an unusable Retry-After (over a day, junk) falls through
    assert classify(503, {"Retry-After": "999999"}, retried=0).delay == pytest.approx(math.exp(2.5))
    assert classify(503, {"Retry-After": "later"}, retried=0, retry_delay="7000").delay == 7
    # an expression that fails at this retry falls back to the default backoff
    assert next_delay(3, retry_delay="1 / (retried - 3)")[1] == "default backoff"


def test_classify_no_response_and_redirects_retry() -> None:
    decision = classify(None, retried=1)
    assert decision.outcome == "retry" and decision.reason.startswith("no response")
    assert classify(302, {"Location": "http://10.0.0.1/"}, retried=0).outcome == "retry"
    assert classify(404, {}, retried=0).outcome == "retry"
