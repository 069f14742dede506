"""How the dashboard's figures are shown: durations and rates as text, and the attempt charts as
inline SVG (no JavaScript library, nothing from a CDN)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from django_bgjobs.figures.rows import Bucket, total


def duration(seconds: float | None) -> str:
    """3 ms, 1.25 s, 4 min 10 s, 2 h 5 min."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def rate(value: float | None) -> str:
    if value is None:
        return "-"
    percent = value * 100
    if 0 < percent < 0.1:
        return "< 0.1%"
    if 99.9 < percent < 100:
        return "> 99.9%"
    return f"{percent:.1f}%"


SUCCEEDED_COLOUR = "#146c43"
FAILED_COLOUR = "#b02a37"
OTHER_COLOUR = "#6c757d"


def bar_chart(
    buckets: Sequence[Bucket], label: str, span: timedelta, tick_every: int, tick_format: str
) -> SafeString:
    """A stacked bar chart (succeeded, failed, other attempts per bucket) as inline SVG, with
    a tooltip per bar. Its size is set by the viewBox: it scales to its container."""
    width, height = 720, 190
    left, right, top, bottom = 40, 8, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((b.outcomes.ended for b in buckets), default=0)
    scale_max = _nice_ceiling(peak)
    slot = plot_w / max(len(buckets), 1)
    bar_w = max(slot * 0.78, 1.0)

    def y(value: float) -> float:
        return top + plot_h - (value / scale_max) * plot_h if scale_max else top + plot_h

    parts: list[SafeString] = []
    for fraction in (0, 0.5, 1):  # grid lines and their values
        value = scale_max * fraction
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" class="bgjobs-grid"/>'
                '<text x="{}" y="{}" class="bgjobs-axis" text-anchor="end">{}</text>',
                left,
                width - right,
                _f(y(value)),
                _f(y(value)),
                left - 5,
                _f(y(value) + 4),
                _count(value),
            )
        )
    for index, bucket in enumerate(buckets):
        x = left + index * slot + (slot - bar_w) / 2
        o = bucket.outcomes
        local = timezone.localtime(bucket.start)
        title = format_html(
            "{}–{}: {} succeeded, {} failed{}",
            local.strftime("%H:%M"),
            timezone.localtime(bucket.start + span).strftime("%H:%M"),
            o.succeeded,
            o.failed,
            format_html(", {} other", o.other) if o.other else "",
        )
        base = 0
        rects: list[SafeString] = []
        for value, colour, kind in (
            (o.succeeded, SUCCEEDED_COLOUR, "succeeded"),
            (o.failed, FAILED_COLOUR, "failed"),
            (o.other, OTHER_COLOUR, "other"),
        ):
            if value:
                rects.append(
                    format_html(
                        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" class="bgjobs-{}"/>',
                        _f(x),
                        _f(y(base + value)),
                        _f(bar_w),
                        _f(max(y(base) - y(base + value), 0.5)),
                        colour,
                        kind,
                    )
                )
                base += value
        # A transparent full-height target, so that an empty bucket has its tooltip too.
        parts.append(
            format_html(
                '<g class="bgjobs-bar" data-start="{}" data-succeeded="{}" data-failed="{}" '
                'data-other="{}"><title>{}</title><rect x="{}" y="{}" width="{}" height="{}" '
                'fill="transparent"/>{}</g>',
                bucket.start.isoformat(),
                o.succeeded,
                o.failed,
                o.other,
                title,
                _f(x),
                top,
                _f(bar_w),
                plot_h,
                format_html_join("", "{}", ((r,) for r in rects)),
            )
        )
        if index % tick_every == 0 or index == len(buckets) - 1:
            parts.append(
                format_html(
                    '<text x="{}" y="{}" class="bgjobs-axis" text-anchor="middle">{}</text>',
                    _f(x + bar_w / 2),
                    height - 8,
                    local.strftime(tick_format),
                )
            )
    ended = total(b.outcomes for b in buckets)
    return format_html(
        '<svg class="bgjobs-chart" viewBox="0 0 {} {}" role="img" aria-label="{}: {} '
        'succeeded, {} failed, {} other attempts" preserveAspectRatio="xMidYMid meet">{}</svg>',
        width,
        height,
        label,
        ended.succeeded,
        ended.failed,
        ended.other,
        format_html_join("", "{}", ((p,) for p in parts)),
    )


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= value (0 stays 0)."""
    if value <= 0:
        return 0.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power:
            return step * power
    return 10.0 * power


def _f(value: float) -> str:
    return f"{value:.1f}"


def _count(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"
