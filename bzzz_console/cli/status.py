"""``bzzz-console spend`` and ``bzzz-console status``: what the fleet costs and whether the node is healthy, read
from the store (opened read-only) and, for ``status``, the model provider."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import typer

from bzzz_console.cli.common import ConfigOption, DbOption, JsonOption

if TYPE_CHECKING:
    from bzzz_console.domain.specs import AgentSpec
    from bzzz_console.store.tables import AgentRow


def _agent_budgets(specs: Mapping[str, AgentSpec], agents: Sequence[AgentRow]) -> dict[str, float | None]:
    """Each agent's daily budget, from its role's spec (None when the role has none)."""
    return {a.id: specs[a.role].budget_usd if a.role in specs else None for a in agents}


def spend(
    as_json: JsonOption = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Token spend and cost: totals, per agent and model, budgets, and the seed's success metrics."""
    from bzzz_console.cli import common
    from bzzz_console.domain.specs import load_specs
    from bzzz_console.domain.text import usd
    from bzzz_console.resources import agents_dir
    from bzzz_console.store.repo import Store
    from bzzz_console.views.spend import spend_report

    with common.errors():
        settings = common.read_settings(config, db)
        specs = load_specs(settings.runtime.agents_dir or agents_dir())
        store = Store.open_readonly(settings.database_url())
        report = spend_report(store, settings, _agent_budgets(specs, store.agents()))
        store.close()
        if as_json:
            sys.stdout.write(json.dumps(report, indent=2) + "\n")
            return
        unknown = (
            f" (+{report['unknown_cost_calls']} calls of unpriced models: cost unknown)"
            if report["unknown_cost_calls"]
            else ""
        )
        if report["estimated_calls"]:
            unknown += f" (tokens of {report['estimated_calls']} calls estimated: the server sent no counts)"
        typer.echo(
            f"total {usd(report['cost_usd'], 4)}{unknown} · today {usd(report['today']['cost_usd'], 4)} · "
            f"{report['prompt_tokens']} prompt ({report['cached_tokens']} cached) + "
            f"{report['completion_tokens']} completion tokens in {report['calls']} calls"
        )
        common.table(
            [{"agent": k, **v} for k, v in report["by_agent"].items()],
            ["agent", "calls", "prompt_tokens", "completion_tokens", "cost_usd"],
        )
        common.table(
            [{"model": k, **v} for k, v in report["by_model"].items()],
            ["model", "calls", "prompt_tokens", "cached_tokens", "cost_usd"],
        )
        common.table(report["budgets"], ["scope", "key", "period", "spent_usd", "limit_usd", "share"])
        common.table([{"metric": k, "value": v} for k, v in report["metrics"].items()], ["metric", "value"])


def _provider_health(settings: Any) -> dict[str, Any]:
    """Is the model provider reachable? The demo model always is (it starts in-process with the node)."""
    from bzzz_console.runtime.llm.provider import choose_provider

    choice = choose_provider(settings)
    health: dict[str, Any] = {"kind": choice.kind, "label": choice.label, "base_url": choice.base_url}
    if choice.is_demo:
        return {**health, "reachable": True, "detail": "scripted demo model, started in-process by the node"}
    import asyncio

    import openai

    async def probe() -> str:
        client = openai.AsyncOpenAI(
            base_url=choice.base_url, api_key=choice.api_key or "", max_retries=0, timeout=5
        )
        try:
            models = await client.models.list()
            return f"{len(models.data)} models listed"
        finally:
            await client.close()

    try:
        return {**health, "reachable": True, "detail": asyncio.run(probe())}
    except Exception as exc:  # any failure is the answer: unreachable, and why
        return {**health, "reachable": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}


def _model_checks(settings: Any, specs: Any) -> list[dict[str, Any]]:
    """Each model the fleet will run: listed by the server, and taking tool calls (one tiny probe call)."""
    import asyncio
    from dataclasses import asdict

    from bzzz_console.runtime.llm.model_check import check_models, fleet_models
    from bzzz_console.runtime.llm.provider import choose_provider

    checks = asyncio.run(check_models(choose_provider(settings), fleet_models(settings, specs)))
    return [{**asdict(c), "ok": c.ok} for c in checks]


def status(
    as_json: JsonOption = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """One-shot health report: database, model provider, agents by state, open escalations, spend vs budget."""
    from collections import Counter

    from bzzz_console.cli import common
    from bzzz_console.domain.specs import load_specs
    from bzzz_console.resources import agents_dir
    from bzzz_console.store.access import schema_head
    from bzzz_console.store.errors import BadDatabaseURL, DatabaseError, NoDatabase, redact_url
    from bzzz_console.store.repo import Store
    from bzzz_console.views.spend import spend_report

    with common.errors():
        settings = common.read_settings(config, db)
        url = settings.database_url()
        report: dict[str, Any] = {"database": {"url": redact_url(url), "reachable": False}}
        healthy = True
        store: Store | None = None
        try:  # read-only: a health check never creates, migrates or writes the database it looks at
            store = Store.open_readonly(url)
            report["database"].update(reachable=True, revision=schema_head(), backend=store.backend)
        except (NoDatabase, BadDatabaseURL):
            raise  # nothing there to report on (a typo?): one line, exit 2
        except DatabaseError as exc:
            report["database"]["error"] = exc.args[0]
            healthy = False
        report["model_provider"] = _provider_health(settings)
        healthy &= bool(report["model_provider"]["reachable"])
        specs = load_specs(settings.runtime.agents_dir or agents_dir())
        if report["model_provider"]["reachable"] and report["model_provider"]["kind"] != "demo":
            report["models"] = _model_checks(settings, specs)
            healthy &= all(m["ok"] for m in report["models"])
        if store is not None:
            agents = store.agents()
            report["agents"] = {"total": len(agents), "by_state": dict(Counter(a.state for a in agents))}
            from bzzz_console.views.reports import escalation_summary

            report["open_escalations"] = [escalation_summary(e) for e in store.escalations("open")]
            spend = spend_report(store, settings, _agent_budgets(specs, agents))
            report["spend"] = {
                "today_usd": spend["today"]["cost_usd"],
                "total_usd": spend["cost_usd"],
                "unknown_cost_calls": spend["unknown_cost_calls"],
                "budgets_over_80pct": [b for b in spend["budgets"] if (b["share"] or 0) >= 0.8],
            }
            threads = Counter(t.status for t in store.threads())
            report["threads"] = dict(threads)
            store.close()
        report["healthy"] = healthy
        if as_json:
            sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
        else:
            _print_status(report)
        raise typer.Exit(0 if healthy else 1)


def _print_status(report: dict[str, Any]) -> None:
    from bzzz_console.domain.text import inert_line, usd

    def one(value: object) -> str:  # escalations and budgets name agents, rules and reasons: data
        return inert_line(str(value))

    ok = {True: "ok", False: "FAIL"}
    database, provider = report["database"], report["model_provider"]
    lines = [
        f"database        {ok[database['reachable']]}  {database['url']}"
        + (
            f"  (revision {database.get('revision')})"
            if database["reachable"]
            else f"  {one(database.get('error'))}"
        ),
        f"model provider  {ok[provider['reachable']]}  {provider['label']}  {one(provider['detail'])}",
    ]
    for check in report.get("models", []):
        roles = ", ".join(check["roles"])
        lines.append(
            f"model           {ok[check['ok']]}  {one(check['model'])} ({roles})  {one(check['detail'])}"
        )
    if "agents" in report:
        states = (
            ", ".join(f"{n} {one(s)}" for s, n in sorted(report["agents"]["by_state"].items())) or "none yet"
        )
        lines.append(f"agents          {report['agents']['total']}: {states}")
        lines.append(
            f"threads         {', '.join(f'{n} {one(s)}' for s, n in sorted(report['threads'].items())) or 'none'}"
        )
        waiting = report["open_escalations"]
        lines.append(
            f"escalations     {len(waiting)} open"
            + "".join(
                f"\n  [{one(e['priority'])}] {one(e['id'])} {one(e['agent_id'] or '')} {one(e['rule'])}: "
                + inert_line(e["reason"], 90)
                for e in waiting
            )
        )
        spend = report["spend"]
        lines.append(
            f"spend           {usd(spend['today_usd'], 4)} today, {usd(spend['total_usd'], 4)} in all"
            + (
                f", {spend['unknown_cost_calls']} calls of unpriced models"
                if spend["unknown_cost_calls"]
                else ""
            )
        )
        for budget in spend["budgets_over_80pct"]:
            lines.append(
                f"  ⚠ {one(budget['scope'])} {one(budget['key'])}: {usd(budget['spent_usd'], 4)} of "
                f"{usd(budget['limit_usd'])}"
            )
    lines.append("healthy" if report["healthy"] else "NOT healthy")
    typer.echo("\n".join(lines))
