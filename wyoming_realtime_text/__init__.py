"""Wyoming server: OpenAI Realtime as STT and conversation agent, text only."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wyoming-realtime-text")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
