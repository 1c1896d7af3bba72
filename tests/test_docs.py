"""The docs match the code: every setting is in the configuration table (docs/configuration.md)
and the packaged config, with the default the code has (the add-on's options:
tests/test_addon.py); and every link between the docs leads somewhere.

A setting added to `config.py` without a row, a default changed in one place only, or a
section moved without its links, fails here rather than misleading a user who reads them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_type_hints

import pytest
import yaml
from addon_files import REPO

from wyoming_realtime_text.config import Settings, default_config_text, load_settings

CONFIGURATION = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
# The configuration table's rows: | `section.key` | `default` | what it does |
ROWS = dict(re.findall(r"^\| `([a-z_]+(?:\.[a-z_]+)?)` \| ([^|]*) \|", CONFIGURATION, re.MULTILINE))
# The Markdown a user reads: the README, its docs pages, the bench's, the add-on's.
PAGES = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "bench" / "README.md",
    REPO / "addon" / "wyoming_realtime_text" / "DOCS.md",
]
LINK = re.compile(r"\]\(([^)\s]+)\)")
SECRETS = {"realtime.api_key", "homeassistant.token"}  # shown as how to set them, not a value


def leaves(cls: type, prefix: str = "") -> Iterator[str]:
    """Every setting's dotted key (`turn_detection.ha_turns`); a list of records, once."""
    hints = get_type_hints(cls)
    for item in dataclasses.fields(cls):
        kind = hints[item.name]
        if dataclasses.is_dataclass(kind):
            yield from leaves(kind, f"{prefix}{item.name}.")
        else:
            yield prefix + item.name


KEYS = list(leaves(Settings))
DEFAULTS = load_settings(need_key=False)


def value_of(key: str) -> Any:
    value: Any = DEFAULTS
    for part in key.split("."):
        value = getattr(value, part)
    return value


def test_every_setting_has_a_row_in_the_table() -> None:
    missing = [key for key in KEYS if key not in ROWS and key != "satellites"]
    assert missing == [], f"add a row to docs/configuration.md's table for {missing}"
    assert "`satellites[].uri`" in CONFIGURATION, "the satellites' keys are documented as such"


def test_every_setting_is_in_the_packaged_config() -> None:
    """The packaged config.yaml, the commented file users copy, names every setting."""

    def keys(mapping: dict[str, Any], prefix: str = "") -> Iterator[str]:
        for key, value in mapping.items():
            if isinstance(value, dict):
                yield from keys(value, f"{prefix}{key}.")
            else:
                yield prefix + key

    packaged = set(keys(yaml.safe_load(default_config_text())))
    assert [key for key in KEYS if key not in packaged] == []
    assert sorted(packaged - set(KEYS)) == [], "keys the server does not know"


def shown_default(key: str) -> str | None:
    """A row's default cell, where it is a `value` (not words, not a list)."""
    shown = re.match(r"\s*`([^`]*)`", ROWS.get(key, ""))
    if key in SECRETS or shown is None or isinstance(value_of(key), (list, dict)):
        return None
    return shown.group(1)


@pytest.mark.parametrize("key", [k for k in KEYS if shown_default(k) is not None])
def test_the_table_shows_the_default_the_server_has(key: str) -> None:
    """A row's default cell, where it is a `value`, is what the server runs with."""
    text, value = shown_default(key), value_of(key)
    assert text is not None
    if isinstance(value, bool):
        assert text == str(value).lower(), (key, text)
    elif isinstance(value, (int, float)):
        assert float(text) == value, (key, text)
    elif value is None:
        assert text in ("null", "none"), (key, text)
    else:
        assert text.strip('"') == value, (key, text)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces -."""
    headings = re.findall(r"^#{1,6} (.+)$", page.read_text(encoding="utf-8"), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_link_leads_somewhere(page: Path) -> None:
    """Relative links name a file of the repository, and #anchors a heading in it."""
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (
            anchor and linked.suffix == ".md" and anchor not in anchors(linked)
        ):
            broken.append(target)
    assert broken == []


def test_docs_tests_read_real_files() -> None:
    """The tables above were found (a regex that matched nothing would pass everything)."""
    assert len(ROWS) > 40 and all(page.is_file() for page in PAGES)
    assert len(LINK.findall((REPO / "README.md").read_text(encoding="utf-8"))) > 30
