#!/usr/bin/env python3
"""Pack this checkout's source into the add-on folder, so the add-on builds without a release.

    python3 addon/pack.py

The Supervisor builds an add-on with its own folder as the Docker context: nothing outside
addon/wyoming_realtime_text/ reaches the image. This script writes the project's source there
as an sdist-like archive (pyproject.toml, README.md and the package: what pip needs to build
and install it), packed/wyoming_realtime_text-VERSION.tar.gz, which the add-on's install.sh
installs with pip (the folder's .gitignore keeps it out of git). Run it again after changing
the source; then copy the add-on folder to Home Assistant's /addons (or commit it, archive
included, to a published add-on repository).

It also copies the project's URL, [project.urls] Homepage in pyproject.toml (the one place
that holds it), into the add-on's config.yaml and repository.yaml.

Only Python's standard library is used (Python >= 3.11, for tomllib): no pip, build tools or
git needed. The archive is reproducible: the same source gives the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import io
import re
import sys
import tarfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ADDON = REPO / "addon" / "wyoming_realtime_text"
PACKED = ADDON / "packed"
PACKAGE = "wyoming_realtime_text"
TOP_FILES = ("pyproject.toml", "README.md")
SKIPPED_DIRS = {"__pycache__"}
SKIPPED_SUFFIXES = {".pyc", ".pyo"}
MTIME = 1577836800  # 2020-01-01: a fixed time (zip, hence wheels, needs one after 1980)
URL_FILES = (ADDON / "config.yaml", REPO / "addon" / "repository.yaml")
URL_LINE = re.compile(r"^url: .*$", re.MULTILINE)


def project(repo: Path = REPO) -> dict:
    """The [project] table of pyproject.toml."""
    return tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def project_url(repo: Path = REPO) -> str:
    return project(repo)["urls"]["Homepage"]


def archive_name(version: str) -> str:
    return f"{PACKAGE}-{version}.tar.gz"


def source_files(repo: Path = REPO) -> Iterator[Path]:
    """What the archive holds, relative to the repository, in a fixed order."""
    for name in TOP_FILES:
        yield Path(name)
    for path in sorted((repo / PACKAGE).rglob("*")):
        relative = path.relative_to(repo)
        if SKIPPED_DIRS & set(relative.parts) or path.suffix in SKIPPED_SUFFIXES:
            continue
        if path.is_file():
            yield relative


def pack(repo: Path = REPO, folder: Path = PACKED) -> Path:
    """Write packed/wyoming_realtime_text-VERSION.tar.gz (replacing any older one); its path."""
    version = project(repo)["version"]
    top = f"{PACKAGE}-{version}"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative in source_files(repo):
            data = (repo / relative).read_bytes()
            info = tarfile.TarInfo(f"{top}/{relative.as_posix()}")
            info.size, info.mtime, info.mode = len(data), MTIME, 0o644
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{PACKAGE}-*.tar.gz"):
        old.unlink()
    target = folder / archive_name(version)
    with open(target, "wb") as file, gzip.GzipFile("", "wb", 9, file, mtime=0) as gz:
        gz.write(buffer.getvalue())
    return target


def sync_url(url: str, files: tuple[Path, ...] = URL_FILES) -> list[Path]:
    """Set each file's top-level `url:` line to ``url``; the files that changed."""
    changed = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        if len(URL_LINE.findall(text)) != 1:
            raise SystemExit(f"error: {path} must have exactly one top-level 'url:' line")
        new = URL_LINE.sub(f"url: {url}", text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 addon/pack.py",
        description="Pack this checkout's source into the add-on folder (see its docstring).",
    )
    parser.parse_args(argv)
    target = pack()
    for path in sync_url(project_url()):
        print(f"Set the project URL in {path.relative_to(REPO)}")
    print(f"Packed the source into {target.relative_to(REPO)} ({target.stat().st_size} bytes).")
    print(f"Next: copy {ADDON.relative_to(REPO)}/ into Home Assistant's /addons folder.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
