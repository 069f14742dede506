"""The table (Markdown, so that it pastes into bench/README.md as printed) and the notes."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime

from bench.peers import pg
from bench.peers.measure import Result, Settings
from bench.peers.processes import REPO
from bench.peers.systems import BASELINE
from bench.run import pct


def say(text: str = "") -> None:
    print(text, flush=True)


def environment(results: dict[str, Result]) -> list[str]:
    lines = [f"date (UTC): {datetime.now(UTC):%Y-%m-%d %H:%M}", f"django-bgjobs: {revision()}"]
    pythons = sorted({f"{r.versions.get('python', '?')}" for r in results.values() if r.versions})
    lines.append(f"python: {', '.join(pythons)}")
    versions: dict[str, str] = {}
    for result in results.values():
        versions.update({k: v for k, v in result.versions.items() if k != "python"})
    lines.append(", ".join(f"{name} {version}" for name, version in sorted(versions.items())))
    try:
        facts = pg.server_facts()
        lines.append(
            f"PostgreSQL {facts['server_version']} (synchronous_commit="
            f"{facts['synchronous_commit']}, fsync={facts['fsync']}, "
            f"wal_sync_method={facts['wal_sync_method']})"
        )
    except Exception as exc:  # noqa: BLE001 - the environment is informative only
        lines.append(f"PostgreSQL: ? ({exc})")
    try:
        import redis

        from bench.peers.redis_stats import redis_url

        info = redis.Redis.from_url(redis_url()).info("server")
        lines.append(f"redis-server {info.get('redis_version')}, redis-py {redis.__version__}")
    except Exception as exc:  # noqa: BLE001
        lines.append(f"Redis: ? ({exc})")
    lines.append(f"{os.cpu_count()} cores, {platform.platform()}")
    return lines


def revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        dirty = git("status", "--porcelain", "--", "django_bgjobs")
        return git("rev-parse", "--short", "HEAD") + (
            " + uncommitted changes in django_bgjobs/" if dirty else ""
        )
    except (OSError, subprocess.CalledProcessError):
        return "?"


def table(results: dict[str, Result], s: Settings) -> list[str]:
    base = results.get(BASELINE)
    header = (
        "| system | enqueue p50 µs | enqueue p99 µs | drain jobs/s | enqueue→start p50 ms "
        "| enqueue→start p99 ms | PG commits/job | PG rows written/job | WAL fsyncs/job "
        "| Redis commands/job | drain bgjobs/peer | enqueue p50 bgjobs/peer |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for key, r in results.items():
        if r.error:
            lines.append(f"| {r.system.label} | n/a ({_short(r.error)}) |" + " |" * 10)
            continue
        delta = r.pg_delta

        def per_job(total: float) -> str:
            return f"{total / s.jobs:.2f}"

        cells = [
            r.system.label,
            f"{pct(r.enqueue_us, 0.5):.0f}",
            f"{pct(r.enqueue_us, 0.99):.0f}",
            f"{s.jobs / r.drain_seconds:,.0f}",
            f"{pct(r.latency_ms, 0.5):.2f}",
            f"{pct(r.latency_ms, 0.99):.2f}",
            per_job(delta.commits) if delta and r.database else "– (no PostgreSQL)",
            per_job(delta.rows) if delta and r.database else "–",
            per_job(delta.wal_syncs) if delta else "–",
            per_job(r.redis_delta)
            if r.uses_redis and r.redis_delta is not None
            else "– (no Redis)",
            _ratio(base, r, lambda x: s.jobs / x.drain_seconds, key),
            _ratio(base, r, lambda x: pct(x.enqueue_us, 0.5), key),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ratio(base: Result | None, peer: Result, figure: Callable[[Result], float], key: str) -> str:
    if key == BASELINE:
        return "–"
    if base is None or base.error:
        return "n/a"
    value = figure(base) / figure(peer)
    return f"{value:.2f}×" if math.isfinite(value) else "n/a"


def _short(error: str) -> str:
    return error.replace("|", "/").replace("\n", " ")[:160]


def notes(results: dict[str, Result], s: Settings) -> list[str]:
    out = []
    for r in results.values():
        if r.error:
            out.append(f"{r.system.label}: n/a: {r.error}")
            continue
        delta = r.pg_delta
        line = (
            f"{r.system.label}: {r.describe}; drain preloaded in {r.prepare_seconds:.1f}s, "
            f"first job started {r.startup_seconds:.1f}s after the workers were spawned, last "
            f"recorded {r.wall_seconds:.1f}s after; {r.duplicates} jobs ran twice"
        )
        if delta is not None:
            line += (
                f"; WAL records/job {delta.wal_records / s.jobs:.2f} (cluster-wide); other "
                f"databases committed {delta.other_commits} transactions meanwhile"
            )
        if r.uses_redis:
            line += f"; {r.redis_delta} Redis commands"
        elif r.redis_delta:
            line += f"; Redis served {r.redis_delta} commands meanwhile (not this system's)"
        if r.redis_background >= 1:
            line += f"; Redis served {r.redis_background:.0f} commands/s before it, idle: noise"
        if r.check:
            line += f"; its rows after the drain: {r.check}"
        out.append(line)
    return out
