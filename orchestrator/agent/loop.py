"""The provider-neutral tool loop: ask the model, run its tool calls, repeat until ``finish``.

Budgets are checked before every model call, so a task stops *before* spending past a limit;
whatever the agent already changed stays in its workspace (a partial result is still a result).
A model failure ends the loop with ``failed`` and the provider's ``retryable`` verdict; the
caller decides whether to fall back to the next agent of the chain.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

from orchestrator.agent.tools import ToolBox
from orchestrator.agent.transcript import Transcript
from orchestrator.contracts import AgentSpec, Limits, Usage
from orchestrator.pricing import add_costs, cost_usd
from orchestrator.providers.base import (
    Image,
    Message,
    Model,
    ModelError,
    ModelSettings,
    ToolSpec,
    image_notes,
)

LoopStatus = Literal["succeeded", "failed", "budget_exceeded"]

NUDGE = (
    "Please continue by calling the tools: make the changes the task asks for (or leave review "
    "comments), then call finish(summary) with a short summary. If the task is already done, "
    "call finish now."
)


@dataclass
class LoopOutcome:
    """How one agent's run of the loop ended.

    ``turns`` counts model responses received, ``calls`` model requests made (a failed request
    counts as a call, not a turn), ``tool_calls`` the tool calls executed.
    """

    status: LoopStatus
    summary: str
    turns: int
    calls: int
    usage: Usage
    cost_usd: float | None
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    tool_calls: int = 0
    warnings: list[str] = field(default_factory=list)


def agent_error(agent: str, message: str) -> str:
    """``message`` naming ``agent`` once, at the start: ``claude: …`` or ``claude (…): …``.

    Providers phrase their errors ``agent NAME (provider model): …`` or ``NAME: …``; the loop
    used to prefix the name again (``claude: agent claude (…)``).
    """
    if message.startswith(f"agent {agent}:") or message.startswith(f"agent {agent} ("):
        return message.removeprefix("agent ")
    if message.startswith(f"{agent}:") or message.startswith(f"{agent} ("):
        return message
    return f"{agent}: {message}"


async def run_agent(
    model: Model,
    toolbox: ToolBox,
    *,
    system: str,
    prompt: str,
    limits: Limits,
    transcript: Transcript,
    spent_usd: Callable[[], float] | None = None,
    images: tuple[Image, ...] = (),
    cache_key: str | None = None,
    context: str = "",
) -> LoopOutcome:
    """Run ``model`` with ``toolbox`` until it calls ``finish``, fails, or a budget runs out.

    Args:
        model: The conversation partner (any provider, replay included).
        toolbox: The task's tools; its workspace keeps the changes.
        system: System prompt (trusted rules only).
        prompt: The task, as a user message.
        limits: ``max_turns``, ``max_tokens``, ``max_usd`` (this task) and ``run_max_usd``.
        transcript: Receives every event.
        spent_usd: Run-wide spend *of everything but this loop* so far (other tasks, earlier
            attempts); the loop adds its own cost before comparing with ``run_max_usd``.
        images: Images of the first message: sent to an agent with ``vision: true``, named
            as ``[image omitted: …]`` to the others.
        cache_key: The providers' prompt-cache routing hint (the run id: its tasks share the
            system prompt and the context, which are marked as the cacheable prefix).
        context: A user message before the task, the same for every task of the run (the
            request and the repository map, fenced as data): the end of the shared prefix.
    """
    specs = toolbox.specs()
    settings = ModelSettings(max_tokens=model.spec.max_tokens, cache_key=cache_key)
    if images and not model.spec.vision:
        prompt, images = f"{prompt}\n\n{image_notes(images)}", ()
    messages: list[Message] = [Message(role="system", text=system, cache_prefix=True)]
    if context:
        messages.append(Message(role="user", text=context, cache_prefix=True))
    messages.append(Message(role="user", text=prompt, images=images))
    transcript.record(
        "start",
        agent=model.agent,
        provider=model.spec.provider,
        model=model.spec.model,
        tools=[spec.name for spec in specs],
        limits=limits,
    )
    transcript.record("system", text=system)
    if context:
        transcript.record("user", text=context, run_context=True)
    transcript.record("user", text=prompt, images=[image.name for image in images])

    usage = Usage()
    cost: float | None = 0.0
    turns = calls = tool_calls = 0
    text_only = 0
    last_text = ""
    warnings: list[str] = []
    unpriced = False

    def end(
        status: LoopStatus,
        summary: str,
        error: str | None = None,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> LoopOutcome:
        transcript.record(
            "end",
            status=status,
            summary=summary,
            error=error,
            turns=turns,
            calls=calls,
            tool_calls=tool_calls,
            usage=usage,
            cost_usd=cost,
        )
        return LoopOutcome(
            status=status,
            summary=summary,
            turns=turns,
            calls=calls,
            usage=usage,
            cost_usd=cost,
            error=error,
            retryable=retryable,
            retry_after=retry_after,
            tool_calls=tool_calls,
            warnings=warnings,
        )

    last_turn_usd = _first_call_usd(model.spec, messages, specs)
    while True:
        reason = _over_budget(limits, turns, usage, cost, spent_usd, last_turn_usd)
        if reason:
            transcript.record("budget", reason=reason)
            return end("budget_exceeded", last_text, reason)

        calls += 1
        try:
            response = await model.request(list(messages), specs, settings)
        except ModelError as exc:
            transcript.record(
                "error", error=str(exc), retryable=exc.retryable, retry_after=exc.retry_after
            )
            return end(
                "failed",
                last_text,
                agent_error(model.agent, str(exc)),
                retryable=exc.retryable,
                retry_after=exc.retry_after,
            )
        turns += 1
        usage = usage + response.usage
        # Priced turn by turn: a batched turn costs less than an interactive one.
        turn_usd = cost_usd(model.spec, response.usage, batched=response.batched)
        cost = add_costs(cost, turn_usd)
        last_turn_usd = turn_usd or 0.0
        if cost is None and not unpriced and (limits.max_usd, limits.run_max_usd) != (None, None):
            unpriced = True
            warnings.append(
                f"agent {model.agent} has no prices, so its cost is unknown and the max_usd/"
                "run_max_usd budgets cannot count it"
            )
            transcript.record("warning", text=warnings[-1])
        transcript.record(
            "assistant",
            text=response.text,
            tool_calls=[
                {
                    "id": call.id,
                    "name": call.name,
                    "arguments": call.arguments,
                    "arguments_error": call.arguments_error,
                }
                for call in response.tool_calls
            ],
            usage=response.usage,
            stop_reason=response.stop_reason,
        )
        messages.append(
            Message(
                role="assistant",
                text=response.text,
                tool_calls=response.tool_calls,
                provider_data=response.provider_data,
            )
        )
        if response.text.strip():
            last_text = response.text.strip()

        if response.tool_calls:
            text_only = 0
            for call in response.tool_calls:
                result = await toolbox.acall(call)
                tool_calls += 1
                transcript.record(
                    "tool",
                    id=call.id,
                    name=call.name,
                    args=call.arguments,
                    arguments_error=call.arguments_error,
                    result=result.text,
                    is_error=result.is_error,
                )
                messages.append(
                    Message(
                        role="tool",
                        text=result.text,
                        tool_call_id=call.id,
                        tool_name=call.name,
                        is_error=result.is_error,
                    )
                )
            if toolbox.finished is not None:
                return end("succeeded", toolbox.finished)
            continue

        text_only += 1
        if text_only >= 2:
            return end("succeeded", response.text.strip())
        messages.append(Message(role="user", text=NUDGE))
        transcript.record("user", text=NUDGE, nudge=True)


def _first_call_usd(spec: AgentSpec, messages: list[Message], tools: list[ToolSpec]) -> float:
    """What the first call is expected to cost, before there is a previous call to go by: its
    input at about four characters a token (output unknown yet); 0 when unpriced."""
    size = sum(len(m.text) for m in messages) + len(json.dumps([asdict(t) for t in tools]))
    return cost_usd(spec, Usage(input_tokens=size // 4)) or 0.0


def _over_budget(
    limits: Limits,
    turns: int,
    usage: Usage,
    cost: float | None,
    spent_usd: Callable[[], float] | None,
    next_usd: float,
) -> str | None:
    """Why no further model call may be made, or ``None`` when one may.

    A call is not started when what is left cannot cover it; ``next_usd`` estimates it from
    the previous call (``_first_call_usd`` for the first), so a limit is passed by at most
    the estimate's error.
    """
    if turns >= limits.max_turns:
        return f"max_turns budget reached: {turns} turns used without finish"
    if limits.max_tokens is not None and usage.total >= limits.max_tokens:
        return f"max_tokens budget reached: {usage.total} tokens used (limit {limits.max_tokens})"
    limit = limits.max_usd
    if limit is not None and cost is not None and (cost >= limit or cost + next_usd > limit):
        return (
            f"max_usd budget reached: ${cost:.4f} spent, the next call (≈${next_usd:.4f}) "
            f"would pass the limit ${limit:.4f}"
        )
    if limits.run_max_usd is not None and spent_usd is not None:
        total = spent_usd() + (cost or 0.0)
        if total >= limits.run_max_usd or total + next_usd > limits.run_max_usd:
            return (
                f"run_max_usd budget reached: ${total:.4f} spent by the run, the next call "
                f"(≈${next_usd:.4f}) would pass the limit ${limits.run_max_usd:.4f}"
            )
    return None
