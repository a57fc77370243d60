"""The agent: a sandboxed copy-on-write workspace, the contract tools, and the tool loop."""

from orchestrator.agent.loop import LoopOutcome, run_agent
from orchestrator.agent.tools import ToolBox, ToolOutcome
from orchestrator.agent.transcript import Transcript
from orchestrator.agent.workspace import ToolError, Workspace

__all__ = [
    "LoopOutcome",
    "ToolBox",
    "ToolError",
    "ToolOutcome",
    "Transcript",
    "Workspace",
    "run_agent",
]
