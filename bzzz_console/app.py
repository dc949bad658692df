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
    from bzzz_console.store.repo import Store


def make_runtime(settings: Settings, **options: Any) -> Runtime:
    """A runtime wired to the network and the demo server; ``options`` as for :class:`Runtime` (``backend``,
    ``clock``, ``force_demo``, ``store``)."""
    from bzzz_console.runtime.runtime import Runtime

    return Runtime(settings, join_network=_network, demo_server=_demo_server, **options)


def open_store(settings: Settings, *, demo_tasks: bool = False) -> Store:
    """The node's store, created and migrated; with ``demo_tasks``, the demo scenario's three tasks are added
    when it holds no task at all. Blocking: the console calls it in a worker thread, after its first paint."""
    from bzzz_console.store.repo import Store

    store = Store.open(settings.database_url())
    try:
        if demo_tasks:
            add_demo_tasks(settings, store)
    except BaseException:
        store.close()
        raise
    return store


def add_demo_tasks(settings: Settings, store: Store) -> int:
    """The demo scenario's three tasks, into a store that holds no task; how many were added."""
    from bzzz_console.demo.team import add_demo_tasks as add

    return 0 if store.count_tasks() else len(add(store, settings.runtime.project))


def _network(rt: Runtime) -> Network:
    from bzzz_console.p2p.service import Network

    return Network(rt)


def _demo_server(settings: Settings) -> Any:
    from bzzz_console.demo.team import start_demo_server

    return start_demo_server(settings)
