"""inflight-guard: is this workflow change safe for the executions already in flight?"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("inflight-guard")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+source"
