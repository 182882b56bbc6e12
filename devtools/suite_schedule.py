"""How one pytest run spreads the whole suite, campaign included, over xdist workers.

`make test` runs ``pytest -n N --dist loadgroup --no-loadscope-reorder``. Every test gets an
``xdist_group``: the reliability campaign is one group (its scenarios run one after another on one
worker, as they would serially), every other module is a group of its own, so a module's shared app
host starts once, as with ``--dist loadfile`` (loadgroup would otherwise spread unmarked tests one
by one). The campaign is scheduled first, because it is the longest unit: the other workers run the
rest meanwhile.

A worker's terminal output never reaches the console, so a conftest that reports at the end of the
session (the campaign's table) puts its text in ``config.workeroutput[WORKER_SECTIONS]`` and the
controller prints it here.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

RELIABILITY_GROUP = "reliability"
WORKER_SECTIONS = "imgpipe_terminal_sections"  # list of [title, text] a worker hands to the controller

_SECTIONS = pytest.StashKey[list[list[str]]]()


def _grouping(config: pytest.Config) -> bool:
    """True in an xdist worker of a --dist loadgroup run (xdist sets the flag there, and dist to "no")."""
    return bool(getattr(config.option, "loadgroup", False))


def _group_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("xdist_group")
    if marker is not None:
        return str(marker.args[0] if marker.args else marker.kwargs.get("name", "default"))
    return item.nodeid.split("::", 1)[0]


def pytest_itemcollected(item: pytest.Item) -> None:
    # Before xdist's own pytest_collection_modifyitems, which turns the marks into the work units.
    # Only under loadgroup: without xdist the mark is unknown (--strict-markers).
    if not _grouping(item.config) or item.get_closest_marker("xdist_group") is not None:
        return
    if item.get_closest_marker("reliability") is not None:
        item.add_marker(pytest.mark.xdist_group(RELIABILITY_GROUP))
    else:
        item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Campaign first, then the other groups largest first (xdist's own reorder, which only counts tests)."""
    if not _grouping(config):
        return
    groups = [_group_of(item) for item in items]
    sizes = Counter(groups)
    first_seen: dict[str, int] = {}
    for index, group in enumerate(groups):
        first_seen.setdefault(group, index)
    order = sorted(range(len(items)), key=lambda i: (groups[i] != RELIABILITY_GROUP, -sizes[groups[i]],
                                                     first_seen[groups[i]], i))  # fmt: skip
    items[:] = [items[i] for i in order]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    sections = getattr(node, "workeroutput", {}).get(WORKER_SECTIONS, [])
    node.config.stash.setdefault(_SECTIONS, []).extend(sections)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for title, text in terminalreporter.config.stash.get(_SECTIONS, []):
        terminalreporter.write_sep("=", title)
        terminalreporter.write(text)
