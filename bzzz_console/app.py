"""The one place that assembles a node: the runtime, plus what it must not know itself — the libp2p network
(when ``p2p.enabled``) and the demo team's scripted model server (when the demo model is chosen).

The console, ``run --headless`` and ``mcp`` all start their node here, so each gets the same parts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bzzz_console.config import Settings
    from bzzz_console.p2p.service import Network
    from bzzz_console.runtime.runtime import Runtime


def make_runtime(settings: Settings, **options: Any) -> Runtime:
    """A runtime wired to the network and the demo server; ``options`` as for :class:`Runtime` (``backend``,
    ``clock``, ``force_demo``, ``store``)."""
    from bzzz_console.runtime.runtime import Runtime

    return Runtime(settings, join_network=_network, demo_server=_demo_server, **options)


def _network(rt: Runtime) -> Network:
    from bzzz_console.p2p.service import Network

    return Network(rt)


def _demo_server(settings: Settings) -> Any:
    from bzzz_console.demo.team import start_demo_server

    return start_demo_server(settings)
