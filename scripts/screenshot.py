"""Regenerate docs/console.svg: the dashboard with the demo team waiting on an escalation (Textual's screenshot)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from bzzz_console.cli.headless import seed_demo_tasks
from bzzz_console.config import Settings
from bzzz_console.tui.app import BzzzApp

OUT = Path(__file__).resolve().parents[1] / "docs"


async def main() -> None:
    tmp = tempfile.mkdtemp()
    settings = Settings.model_validate(
        {
            "data_dir": tmp,
            "store": {"url": f"sqlite:///{tmp}/bzzz.db"},
            "demo": {"latency_ms": 0},
            "console": {"bell": False},
        }
    )
    seed_demo_tasks(settings)
    app = BzzzApp(settings, demo=True)
    async with app.run_test(size=(160, 40)) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            settled = all(t.status != "active" for t in app.view.threads.values())
            if app.view.open_escalations() and settled:
                break
        await pilot.pause(0.5)
        app.save_screenshot("console.svg", str(OUT))
        await pilot.press("enter")
        await pilot.pause(0.5)
        app.save_screenshot("escalation.svg", str(OUT))
    print(f"wrote {OUT}/console.svg and {OUT}/escalation.svg", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
