"""Reliability report: fuzzed bad input, kill -9 of a real demo run, and LLM faults injected into scripted runs.

    python tests/benchmarks/reliability.py [--quick] [--json-only] [--cases N] [--trials N] [--seed N]

Prints a table (check, figure) and then one JSON document with the same figures; ``--json-only`` prints only
the JSON. Nothing here asserts: a crash, a lost message or an unfinished run shows in the figures, and the
exit status is 1 when any of them is not zero (0 otherwise). Every database lives in a temporary folder.

1. Fuzzing: the Hypothesis strategies and checks of ``tests/test_fuzz.py`` (addresses, address fields, tool
   arguments through ``run_tool`` on a started demo Runtime, config files as text, as TOML tables and as
   ``BZZZ_*`` environments, database URLs, opening a store from one, and P2P wire messages through
   ``wire.decode``), N generated cases each. A crash is a check that raised: an exception other than the
   module's own error, or a rejection that does not say what is wrong.
2. kill -9: ``bzzz-console run --headless --demo`` as a real process, SIGKILLed after a random number
   (seeded) of ``message_posted`` lines; then restarted on the same database until idle. Lost: a message
   published before the kill that is missing or different on disk, or that the restart lost. Duplicated: a
   message posted twice in a thread, a gap or repeat in a thread's sequence, or a restart re-publishing a
   stored message. Resumed: the final state equals an uninterrupted run's (same threads, outcomes, turns).
3. LLM faults: each fault kind of ``tests/test_faults.py`` injected mid-run into a Runtime with a scripted
   team (two tasks, architect and reviewer) over real HTTP; completed = every thread closed by consensus with
   no internal error and no call that failed for good. Plus persistent failures of every kind: completed =
   the Error Rate rule escalated and nothing crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

import test_faults as tf  # noqa: E402
import test_fuzz as fz  # noqa: E402
from helpers import cli_env as make_env  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from sqlalchemy.exc import SAWarning  # noqa: E402
from test_crash import LineReader, Snapshot, read_db  # noqa: E402

from bzzz_console.app import make_runtime  # noqa: E402
from bzzz_console.demo.scripted_server import Fault, ScriptedServer  # noqa: E402
from bzzz_console.domain import events as ev  # noqa: E402
from bzzz_console.runtime.llm.client import OpenAIBackend, RetryPolicy  # noqa: E402

warnings.filterwarnings("ignore", category=SAWarning)  # the URL fuzzer's "query option ignored" notices

BIN = Path(sys.executable).with_name("bzzz-console")
LATENCY_MS = "30"  # the demo model's think time: quick, and the kill still lands mid-conversation
RUN_TIMEOUT = 120.0


# -- 1. fuzzing ---------------------------------------------------------------------------------------------


def _fuzz_one(
    family: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], None], cases: int, rng_seed: int
) -> dict[str, Any]:
    crashes: list[str] = []

    @seed(rng_seed)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(value: Any) -> None:
        try:
            check(value)
        except Exception as exc:
            crashes.append(f"{type(exc).__name__}: {exc} <- {value!r}"[:400])

    before = fz.CASES[family]
    started = time.perf_counter()
    run()
    return {
        "family": family,
        "cases": fz.CASES[family] - before,
        "crashes": len(crashes),
        "seconds": round(time.perf_counter() - started, 2),
        "first_crashes": crashes[:3],
    }


def fuzz_section(cases: int, rng_seed: int, scratch: Path) -> dict[str, Any]:
    results = []
    folder = scratch / "fuzz"
    folder.mkdir()
    os.chdir(folder)  # relative SQLite paths of the URL fuzzer land here
    plain: list[tuple[str, st.SearchStrategy[Any], Callable[[Any], None], int]] = [
        ("address", fz.address_inputs, fz.check_address, cases),
        ("address", fz.address_fields, fz.check_address_fields, cases // 2),
        ("config_text", fz.config_texts, lambda t: fz.check_config_text(folder, t), cases),
        ("config_table", fz.config_tables(), lambda d: fz.check_config_table(folder, d), cases),
        ("config_env", fz.config_environs, lambda e: fz.check_config_env(folder, e), cases),
        ("db_url", fz.db_urls, fz.check_db_url, cases),
        ("db_open", fz.sqlite_urls, lambda u: fz.check_db_url(u, open_store=True), max(cases // 10, 10)),
        ("wire", fz.wire_inputs, fz.check_wire, cases),
    ]
    for family, strategy, check, n in plain:
        counted = "db_url" if family == "db_open" else family
        result = _fuzz_one(counted, strategy, check, n, rng_seed)
        result["family"] = family
        results.append(result)
    with fz.demo_runtime(scratch / "tools") as (loop, rt):
        events = rt.bus.subscribe(maxsize=1_000_000)
        ids = fz.KnownIds.of(rt)

        def check_call(call: tuple[str, Any, Any]) -> None:
            loop.run_until_complete(fz.check_tool_call(rt, *call))

        result = _fuzz_one("tool", fz.tool_calls(ids), check_call, cases, rng_seed)
        # deliberately lets time pass: what the calls set off runs a moment, so a late internal error shows
        loop.run_until_complete(asyncio.sleep(0.05))
        internal = [e for e in events.drain() if isinstance(e, ev.ErrorRaised)]
        result["crashes"] += len(internal)
        result["first_crashes"] += [f"runtime error event: {e.where}: {e.message}" for e in internal[:3]]
        results.append(result)
    os.chdir(scratch)
    merged: dict[str, dict[str, Any]] = {}
    for r in results:
        m = merged.setdefault(r["family"], {"cases": 0, "crashes": 0, "seconds": 0.0, "first_crashes": []})
        m["cases"] += r["cases"]
        m["crashes"] += r["crashes"]
        m["seconds"] = round(m["seconds"] + r["seconds"], 2)
        m["first_crashes"] += r["first_crashes"]
    return {
        "cases": sum(r["cases"] for r in results),
        "crashes": sum(r["crashes"] for r in results),
        "by_family": merged,
    }


# -- 2. kill -9 ---------------------------------------------------------------------------------------------


def _run_to_idle(args: list[str], env: dict[str, str], cwd: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(BIN), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    if done.returncode != 0 or "Traceback" in done.stderr:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr[-1000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _duplicates(db: Snapshot) -> int:
    """Messages posted twice in a thread, and gaps or repeats in its sequence numbers."""
    count = 0
    for tid, messages in db.by_thread().items():
        seqs = [m["seq"] for m in messages]
        count += sum(1 for a, b in zip(seqs, range(1, len(seqs) + 1), strict=False) if a != b)
        count += abs(db.threads[tid]["message_count"] - len(seqs))
        said = Counter((m["author"], m["type"], m["content"], m["reply_to"]) for m in messages)
        count += sum(n - 1 for n in said.values() if n > 1)
    return count


def _kill_trial(root: Path, kill_after: int, reference: Snapshot) -> dict[str, Any]:
    path = root / "x.db"
    url = f"sqlite:///{path}"
    env = make_env(root, BZZZ_DEMO__LATENCY_MS=LATENCY_MS)
    proc = subprocess.Popen(
        [str(BIN), "run", "--headless", "--demo", "--db", url],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        reader = LineReader(proc)
        seen: list[dict[str, Any]] = []
        while sum(1 for e in seen if e["kind"] == "message_posted") < kill_after:
            event = reader.next_event(timeout=RUN_TIMEOUT)
            if event is None:
                raise RuntimeError(f"the run ended before {kill_after} messages")
            seen.append(event)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        seen += reader.rest(timeout=30)  # lines already in the pipe were published before the kill
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    posted = [e for e in seen if e["kind"] == "message_posted"]
    crashed = read_db(path)

    def same(stored: dict[str, Any] | None, e: dict[str, Any]) -> bool:
        return stored is not None and (
            stored["id"],
            stored["author"],
            stored["type"],
            stored["content"],
            stored["reply_to"],
        ) == (e["message_id"], e["author"], e["message_type"], e["content"], e["reply_to"])

    lost = sum(1 for e in posted if not same(crashed.messages.get((e["thread_id"], e["seq"])), e))
    duplicated = _duplicates(crashed)

    events = _run_to_idle(["run", "--headless", "--exit-when-idle", "--db", url], env, root)
    republished = sum(
        1 for e in events if e["kind"] == "message_posted" and (e["thread_id"], e["seq"]) in crashed.messages
    )
    final = read_db(path)
    lost += sum(1 for key, m in crashed.messages.items() if final.messages.get(key) != m)
    duplicated += republished + _duplicates(final)
    errors = [e for e in events if e["kind"] == "error"]
    return {
        "kill_after": kill_after,
        "published_before_kill": len(posted),
        "stored_at_kill": len(crashed.messages),
        "posted_after_restart": sum(1 for e in events if e["kind"] == "message_posted"),
        "lost": lost,
        "duplicated": duplicated,
        "errors": len(errors),
        "resumed": final.story() == reference.story() and not errors,
    }


def kill_section(trials: int, rng: random.Random, scratch: Path) -> dict[str, Any]:
    ref_root = scratch / "kill-reference"
    ref_root.mkdir()
    ref_env = make_env(ref_root, BZZZ_DEMO__LATENCY_MS=LATENCY_MS)
    ref_events = _run_to_idle(
        ["run", "--headless", "--demo", "--exit-when-idle", "--db", f"sqlite:///{ref_root / 'x.db'}"],
        ref_env,
        ref_root,
    )
    reference = read_db(ref_root / "x.db")
    total = sum(1 for e in ref_events if e["kind"] == "message_posted")
    results = []
    for i in range(trials):
        root = scratch / f"kill-{i}"
        root.mkdir()
        kill_after = rng.randint(1, max(total - 1, 1))
        try:
            results.append(_kill_trial(root, kill_after, reference))
        except Exception as exc:
            results.append(
                {
                    "kill_after": kill_after,
                    "failed": f"{type(exc).__name__}: {exc}",
                    "lost": 0,
                    "duplicated": 0,
                }
            )
    return {
        "trials": trials,
        "messages_in_a_full_run": total,
        "messages_published_before_kill": sum(r.get("published_before_kill", 0) for r in results),
        "lost": sum(r["lost"] for r in results),
        "duplicated": sum(r["duplicated"] for r in results),
        "resumed": sum(1 for r in results if r.get("resumed")),
        "failed_trials": sum(1 for r in results if "failed" in r),
        "by_trial": results,
    }


# -- 3. LLM faults ------------------------------------------------------------------------------------------


async def _scripted_run(
    folder: Path, faults: tuple[Fault, ...], *, max_attempts: int, max_delay_s: float, persistent: bool
) -> dict[str, Any]:
    team = tf.Team(faults=() if persistent else faults, inject_after=1)
    server = ScriptedServer(team).start()
    team.server = server
    if persistent:
        server.inject(*faults)
    backend = OpenAIBackend(
        base_url=server.base_url,
        api_key="test",
        policy=RetryPolicy(
            max_attempts=max_attempts,
            base_delay_s=tf.BASE_DELAY_S,
            max_delay_s=max_delay_s,
            timeout_s=tf.TIMEOUT_S,
        ),
    )
    run = tf.Run(make_runtime(tf.make_settings(folder), backend=backend), server, team, [])
    try:
        await tf.play(run, tasks=1 if persistent else 2)
    finally:
        server.stop()
    # Faults a request actually got (the persistent run escalates before it has used them all).
    served = len(faults) - len(server._faults)
    retries, failed, errors = run.of(ev.LLMRetry), run.of(ev.LLMFailed), run.of(ev.ErrorRaised)
    if persistent:
        completed = not errors and [e.rule for e in run.escalations] == ["Error Rate"]
    else:
        completed = (
            not errors
            and not failed
            and len(run.threads) == 2
            and all((t.status, t.outcome) == ("closed", "consensus") for t in run.threads)
        )
    return {
        "faults_served": served,
        "retries": len(retries),
        "failed_calls": len(failed),
        "errors": len(errors),
        "completed": completed,
    }


def fault_section(runs_per_kind: int, scratch: Path) -> dict[str, Any]:
    kinds: dict[str, dict[str, Any]] = {}
    n = 0
    for name, case in tf.FAULT_CASES.items():
        stats = {"runs": 0, "completed": 0, "faults_injected": 0, "retries": 0, "errors": 0}
        for _ in range(runs_per_kind):
            n += 1
            folder = scratch / f"fault-{n}"
            folder.mkdir()
            try:
                result = asyncio.run(
                    _scripted_run(
                        folder,
                        case.faults,
                        max_attempts=case.max_attempts,
                        max_delay_s=case.max_delay_s,
                        persistent=False,
                    )
                )
            except Exception:
                result = {
                    "retries": 0,
                    "errors": 1,
                    "completed": False,
                    "crash": traceback.format_exc(limit=3),
                }
            stats["runs"] += 1
            stats["completed"] += int(result["completed"])
            stats["faults_injected"] += result.get("faults_served", 0)
            stats["retries"] += result["retries"]
            stats["errors"] += result["errors"]
        kinds[name] = stats
    every_kind = (
        Fault.rate_limit(0),
        Fault.server_error(500),
        Fault.malformed_json(),
        Fault.stream_cut(),
        Fault.server_error(503),
        Fault.timeout(5.0),
    ) * 4
    folder = scratch / "fault-persistent"
    folder.mkdir()
    try:
        persistent = asyncio.run(
            _scripted_run(folder, every_kind, max_attempts=2, max_delay_s=20.0, persistent=True)
        )
    except Exception:
        persistent = {"retries": 0, "errors": 1, "completed": False, "crash": traceback.format_exc(limit=3)}
    persistent_stats = {
        "runs": 1,
        "completed": int(persistent["completed"]),
        "faults_injected": persistent.get("faults_served", 0),
        "retries": persistent["retries"],
        "errors": persistent["errors"],
        "failed_calls": persistent.get("failed_calls", 0),
        "escalated_by": "Error Rate" if persistent["completed"] else None,
    }
    kinds["persistent (every kind, until escalated)"] = persistent_stats
    return {
        "runs": sum(k["runs"] for k in kinds.values()),
        "completed": sum(k["completed"] for k in kinds.values()),
        "faults_injected": sum(k["faults_injected"] for k in kinds.values()),
        "retries": sum(k["retries"] for k in kinds.values()),
        "internal_errors": sum(k["errors"] for k in kinds.values()),
        "by_kind": kinds,
    }


# -- report -------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100 cases, 2 kill trials, 1 run per fault")
    parser.add_argument("--json-only", action="store_true")
    parser.add_argument("--cases", type=int, default=None, help="fuzz cases per family (default 500)")
    parser.add_argument("--trials", type=int, default=None, help="kill -9 trials (default 10)")
    parser.add_argument("--runs", type=int, default=None, help="scripted runs per fault kind (default 2)")
    parser.add_argument("--seed", type=int, default=20240607)
    args = parser.parse_args()
    cases = args.cases or (100 if args.quick else 500)
    trials = args.trials if args.trials is not None else (2 if args.quick else 10)
    runs = args.runs or (1 if args.quick else 2)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    home = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="bzzz-reliability-") as tmp:
        scratch = Path(tmp)
        os.environ["XDG_DATA_HOME"] = str(scratch / "xdg-data")
        os.environ["XDG_CONFIG_HOME"] = str(scratch / "xdg-config")
        seconds: dict[str, float] = {}
        try:
            t = time.perf_counter()
            fuzz = fuzz_section(cases, args.seed, scratch)
            seconds["fuzz"], t = round(time.perf_counter() - t, 1), time.perf_counter()
            kill = kill_section(trials, rng, scratch)
            seconds["kill_9"], t = round(time.perf_counter() - t, 1), time.perf_counter()
            faults = fault_section(runs, scratch)
            seconds["faults"] = round(time.perf_counter() - t, 1)
        finally:
            os.chdir(home)
    report = {
        "fuzz": fuzz,
        "kill_9": kill,
        "faults": faults,
        "seed": args.seed,
        "wall_s": round(time.perf_counter() - started, 1),
        "section_s": seconds,
        "python": sys.version.split()[0],
    }
    if not args.json_only:
        rows = [
            ("fuzz cases tried", fuzz["cases"]),
            ("fuzz crashes", fuzz["crashes"]),
            *[
                (f"  {name}: cases / crashes", f"{r['cases']} / {r['crashes']}")
                for name, r in fuzz["by_family"].items()
            ],
            ("kill -9 trials", kill["trials"]),
            ("  messages published before the kill", kill["messages_published_before_kill"]),
            ("  messages lost", kill["lost"]),
            ("  messages duplicated", kill["duplicated"]),
            ("  restarts that resumed to the reference end state", f"{kill['resumed']} / {kill['trials']}"),
            ("LLM faults injected", faults["faults_injected"]),
            ("  retries observed", faults["retries"]),
            ("  runs completed", f"{faults['completed']} / {faults['runs']}"),
            *[
                (f"  {name}: completed / runs", f"{k['completed']} / {k['runs']}")
                for name, k in faults["by_kind"].items()
            ],
            ("  internal errors", faults["internal_errors"]),
            (
                "wall time (s)",
                f"{report['wall_s']} (" + ", ".join(f"{k} {v}" for k, v in seconds.items()) + ")",
            ),
        ]
        width = max(len(name) for name, _ in rows)
        print(f"{'check'.ljust(width)}  figure")
        for name, value in rows:
            print(f"{name.ljust(width)}  {value}")
        print()
    print(json.dumps(report, indent=2, default=str))
    bad = (
        fuzz["crashes"]
        or kill["lost"]
        or kill["duplicated"]
        or kill["failed_trials"]
        or kill["resumed"] != kill["trials"]
        or faults["completed"] != faults["runs"]
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
