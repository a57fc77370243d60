"""GitHub Actions-native multi-agent orchestrator: plan, fan out to agents, merge, account.

``from orchestrator import Coordinator`` is the Python API; it is imported lazily so that the
command line (which imports this package first) starts fast: this file imports nothing, not
even ``typing`` (the skip path of ``orchestrator plan`` counts milliseconds).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Coordinator", "__version__"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads it as True)
if TYPE_CHECKING:
    from orchestrator.coordinator import Coordinator


def __getattr__(name: str) -> object:
    if name == "Coordinator":
        from orchestrator.coordinator import Coordinator

        return Coordinator
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
