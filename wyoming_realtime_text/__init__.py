"""Wyoming server: OpenAI Realtime as STT and conversation agent, text only."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, metadata, version
from pathlib import Path

DISTRIBUTION = "wyoming-realtime-text"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"


def _project_url() -> str:
    """pyproject.toml's [project.urls] Homepage, the one place that holds the project's URL.

    Read from the source tree when running from one (PYTHONPATH, or an editable install whose
    metadata may be older than the file), else from the installed package's metadata.
    """
    source = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        import tomllib

        project = tomllib.loads(source.read_text(encoding="utf-8"))["project"]
        if project.get("name") == DISTRIBUTION:
            return str(project["urls"]["Homepage"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not a source tree (an installed package): its metadata says
    try:
        entries = metadata(DISTRIBUTION).get_all("Project-URL") or []
    except PackageNotFoundError:
        return ""
    urls = dict(entry.split(", ", 1) for entry in entries if ", " in entry)
    return urls.get("Homepage", "")


PROJECT_URL = _project_url()
