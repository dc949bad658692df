"""Spend and success metrics computed from the store: what `bzzz-console spend` prints and the console shows.

Costs of calls to unpriced models are unknown: they are counted (``unknown_cost_calls``) and never added as $0.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, time
from statistics import median
from typing import Any

from bzzz_console.config import Settings
from bzzz_console.store.repo import Store
from bzzz_console.store.tables import utc


def _bucket() -> dict[str, Any]:
    return {
        "cost_usd": 0.0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cached_tokens": 0,
        "calls": 0,
        "unknown_cost_calls": 0,
        "estimated_calls": 0,
    }


def _add(bucket: dict[str, Any], row: Any) -> None:
    bucket["calls"] += 1
    bucket["prompt_tokens"] += row.prompt_tokens
    bucket["completion_tokens"] += row.completion_tokens
    bucket["cached_tokens"] += row.cached_tokens
    bucket["estimated_calls"] += bool(row.estimated)  # the server sent no counts: estimated from the text
    if row.cost_usd is None:
        if not row.error:
            bucket["unknown_cost_calls"] += 1
    else:
        bucket["cost_usd"] += row.cost_usd


def _round(bucket: dict[str, Any]) -> dict[str, Any]:
    """Known cost, rounded; ``None`` when no call of the bucket has a known price (unknown, never $0)."""
    priced = bucket["calls"] - bucket["unknown_cost_calls"]
    cost = round(bucket["cost_usd"], 6) if priced > 0 or not bucket["unknown_cost_calls"] else None
    return {**bucket, "cost_usd": cost}


def spend_report(
    store: Store, settings: Settings, agent_budgets: dict[str, float | None], now: datetime | None = None
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    midnight = datetime.combine(now.date(), time(), tzinfo=UTC)
    total, today = _bucket(), _bucket()
    by: dict[str, dict[str, dict[str, Any]]] = {
        k: defaultdict(_bucket) for k in ("agent", "model", "thread", "task", "day")
    }
    latencies: list[float] = []
    full_tokens = sent_tokens = 0
    for row in store.usage():
        at = utc(row.at)
        _add(total, row)
        _add(by["agent"][row.agent_id], row)
        _add(by["model"][row.model], row)
        _add(by["day"][at.date().isoformat()], row)
        if row.thread_id:
            _add(by["thread"][row.thread_id], row)
        if row.task_id:
            _add(by["task"][row.task_id], row)
        if at >= midnight:
            _add(today, row)
        if not row.error:
            latencies.append(row.latency_ms)
        full_tokens += row.context_full_tokens
        sent_tokens += row.context_sent_tokens
    overrides = store.budget_overrides()
    agent_today = store.agent_spend_since(midnight)
    budgets = []
    daily = overrides.get(("global", "*"), settings.budgets.daily_usd)
    if daily is not None:
        budgets.append(
            {
                "scope": "global",
                "key": "*",
                "period": "day",
                "limit_usd": daily,
                "spent_usd": round(today["cost_usd"], 6),
                "share": _share(today["cost_usd"], daily),
            }
        )
    for agent_id, default in sorted(agent_budgets.items()):
        limit = overrides.get(("agent", agent_id), default)
        if limit is not None:
            spent = agent_today.get(agent_id, 0.0)
            budgets.append(
                {
                    "scope": "agent",
                    "key": agent_id,
                    "period": "day",
                    "limit_usd": limit,
                    "spent_usd": round(spent, 6),
                    "share": _share(spent, limit),
                }
            )
    for thread in store.threads():
        if thread.status in ("closed", "stalled"):
            continue
        limit = overrides.get(("thread", thread.id), settings.budgets.thread_usd)
        if limit is not None:
            spent = by["thread"][thread.id]["cost_usd"] if thread.id in by["thread"] else 0.0
            budgets.append(
                {
                    "scope": "thread",
                    "key": thread.id,
                    "period": "life",
                    "limit_usd": limit,
                    "spent_usd": round(spent, 6),
                    "share": _share(spent, limit),
                }
            )
    return {
        **_round(total),
        "today": _round(today),
        "by_agent": {k: _round(v) for k, v in sorted(by["agent"].items())},
        "by_model": {k: _round(v) for k, v in sorted(by["model"].items())},
        "by_thread": {k: _round(v) for k, v in sorted(by["thread"].items())},
        "by_task": {k: _round(v) for k, v in sorted(by["task"].items())},
        "by_day": {k: _round(v) for k, v in sorted(by["day"].items())},
        "budgets": budgets,
        "metrics": success_metrics(store, total, latencies, full_tokens, sent_tokens),
    }


def _share(spent: float, limit: float) -> float | None:
    return round(spent / limit, 4) if limit > 0 else None


def success_metrics(
    store: Store, total: dict[str, Any], latencies: list[float], full_tokens: int, sent_tokens: int
) -> dict[str, Any]:
    """The seed's §8 metrics, each with its target, computed from what is stored."""
    threads = store.threads()
    escalated = {e.thread_id for e in store.escalations() if e.thread_id}
    concluded = [t for t in threads if t.status in ("closed", "stalled")]
    consensus = [t for t in threads if t.outcome == "consensus"]
    tasks_with_work = {t.task_id for t in threads if t.task_id}
    latencies.sort()
    return {
        "threads": len(threads),
        "escalation_rate": _ratio(len([t for t in threads if t.id in escalated]), len(threads)),
        "escalation_rate_target": "< 0.15",
        "consensus_success_rate": _ratio(len(consensus), len(concluded)),
        "consensus_success_rate_target": "> 0.85",
        "cost_per_task_usd": round(total["cost_usd"] / len(tasks_with_work), 6) if tasks_with_work else None,
        "cost_per_task_target": "< 0.50 for routine tasks",
        "agent_response_time_ms_median": round(median(latencies), 1) if latencies else None,
        "agent_response_time_ms_p95": round(
            latencies[math.ceil(0.95 * len(latencies)) - 1], 1
        )  # nearest rank
        if latencies
        else None,
        "agent_response_time_target": "< 30000 ms",
        "context_compression_ratio": _ratio(full_tokens - sent_tokens, full_tokens),
        "context_compression_target": ">= 0.70",
    }


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None
