"""The environments the slowest tests need, built from the session's start beside the others.

From nothing (a fresh machine, an empty cache) the real-HA environments take 150-300 s each
and the Debian chroots about a minute: some twelve minutes of building, six two at a time.
Built when their first test asked for them, they kept the whole suite waiting that long.
Instead, once collection is done (conftest):

- `order` moves the tests that need a build to the end, whole modules at a time and
  otherwise in their order, so everything else runs while they are built;
- `start` submits the builds the selected tests need to a pool of BUILDS_AT_ONCE threads, at
  nice NICENESS (Linux keeps a nice value per thread, and the build's processes inherit
  it): the tests running beside them keep the CPU they ask for, the builds take the rest;
- a fixture's `result(key, make)` is that build's outcome, waited for, or `make()` run now
  when nothing started it (a module run on its own with `-p no:...`, or a key not listed).

Every build is idempotent and holds its cache file lock (real_ha_env.ha_env, cached_root):
asking again for a built environment only checks it, and another process's build is waited
for. A test declares what it needs with the marker ``needs_build(key, ...)``, or, for the
real-HA modules, by its ``spec`` parameter (`ha_home.RELEASES`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest

BUILDS_AT_ONCE = 2  # the machines have 2 cores
NICENESS = 10  # CFS weight 110 against the tests' 1024: about a tenth of a busy CPU
ADDON_BASE, DEBIAN_STOCK = "addon-base", "debian-stock"

_pool: ThreadPoolExecutor | None = None
_builds: dict[str, Future[Any]] = {}


def builders() -> dict[str, Callable[[], Any]]:
    """Each build by key, in the order they are started: the add-on's base chroot first (the
    first test module that needs one waits for it), then the longest build beside the
    shorter ones, so that two workers finish together (measured from nothing, one at a time:
    base 42 s, stock 17 s, HA 2026.11 153 s, 2025.12.5 300 s, 2025.4.4 229 s)."""
    # Here, not at the top: ha_home's fixtures import this module.
    import addon_build
    from ha_home import RELEASES
    from real_ha_env import ha_env

    ha = {spec.version: (spec.key, partial(ha_env, spec)) for spec in RELEASES}
    order = [
        (ADDON_BASE, addon_build.base_root),
        ha["2026.11.0"],
        (DEBIAN_STOCK, addon_build.stock_root),
        ha["2025.12.5"],
        ha["2025.4.4"],
    ]
    return dict(order)


def needs(item: pytest.Item) -> list[str]:
    """The build keys ``item`` waits for."""
    keys = [key for marker in item.iter_markers("needs_build") for key in marker.args]
    spec = getattr(getattr(item, "callspec", None), "params", {}).get("spec")
    if spec is not None and hasattr(spec, "key"):
        keys.append(spec.key)
    return keys


def order(items: list[pytest.Item]) -> None:
    """Tests without a build first, then the rest (in place; a stable sort, so each module's
    tests stay together and in order: module-scoped fixtures are set up once)."""
    later = {item.module.__name__ for item in items if needs(item) and item.module is not None}
    items.sort(key=lambda item: item.module is not None and item.module.__name__ in later)


def start(items: Sequence[pytest.Item]) -> None:
    """Start building what the selected tests need (nothing when they need nothing)."""
    global _pool
    wanted = {key for item in items for key in needs(item)}
    if not wanted or _pool is not None:
        return
    _pool = ThreadPoolExecutor(
        max_workers=BUILDS_AT_ONCE, thread_name_prefix="prebuild", initializer=_lower_priority
    )
    for key, make in builders().items():
        if key in wanted:
            _builds[key] = _pool.submit(make)


def result(key: str, make: Callable[[], Any]) -> Any:
    """The build of ``key``: the one started at the session's start, else ``make()`` now.

    Raises whatever the build raised (EnvMissing, EnvError).
    """
    build = _builds.get(key)
    return make() if build is None else build.result()


def stop() -> None:
    """At the session's end: builds not begun are dropped; one under way is let finish
    (stopped halfway, it would only be thrown away and begun again next time)."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
    _builds.clear()


def _lower_priority() -> None:
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
