"""Anthropic's prompt cache, simulated as the prompt-caching guide documents it.

* A request is a sequence of blocks in prefix order: ``tools`` → ``system`` → ``messages``
  (each content block of each message). A block with ``cache_control`` is a breakpoint: the
  prefix up to and including it is cached, keyed by the model and the exact blocks (with
  ``cache_control`` itself left out, so moving a breakpoint keeps what is cached).
* A hit is looked for at each breakpoint and at the block boundaries up to 20 blocks before it
  (the documented look-back), so the previous turn's rolling breakpoint is found again.
* The longest hit is a cache read; the tokens from there up to the last breakpoint are a cache
  write, split by each breakpoint's TTL (``5m`` default, ``1h``); the rest is ``input_tokens``,
  "the uncached tokens after the last breakpoint".
* A prefix shorter than the model's minimum cacheable length is not cached, without error.
* Entries live 5 minutes (or 1 hour) on an injectable clock; a hit refreshes them.

Tokens are approximated deterministically: ``ceil(characters / 4)`` of each block's canonical
JSON, and ``ceil(bytes / 750)`` for an image (the docs' ``width × height / 750`` with the
byte size standing in for the pixel count). Requests are processed one at a time, so an entry
written by one request is there for the next even when they were sent concurrently (the real
API only serves an entry once the first response has begun).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_MIN_CACHEABLE_TOKENS",
    "LOOKBACK_BLOCKS",
    "MIN_CACHEABLE_TOKENS",
    "CacheCall",
    "CacheStats",
    "PromptCache",
    "block_tokens",
    "min_cacheable_tokens",
]

#: Minimum cacheable prompt length by model id (prompt-caching guide).
MIN_CACHEABLE_TOKENS: dict[str, int] = {
    **dict.fromkeys(
        (
            "claude-fable-5-1",
            "claude-mythos-5-1",
            "claude-opus-5-5",
            "claude-opus-5",
            "claude-sonnet-5-5",
            "claude-fable-5",
            "claude-mythos-5",
            "claude-haiku-5-5",
        ),
        512,
    ),
    **dict.fromkeys(
        (
            "claude-opus-4-8",
            "claude-sonnet-5",
            "claude-sonnet-4-6",
            "claude-sonnet-4-5",
            "claude-opus-4-1",
            "claude-opus-4-0",
            "claude-opus-4",
        ),
        1024,
    ),
    **dict.fromkeys(("claude-mythos-preview", "claude-opus-4-7", "claude-3-5-haiku"), 2048),
    **dict.fromkeys(("claude-opus-4-6", "claude-opus-4-5", "claude-haiku-4-5"), 4096),
    # The fake's own model id (``AnthropicFake.spec``): small scripted tests see the cache.
    "claude-fake-1": 1,
}
#: For model ids the table does not know (such as the fake's own ``claude-fake-1``).
DEFAULT_MIN_CACHEABLE_TOKENS = 1024
#: Block boundaries before a breakpoint that are checked for a hit.
LOOKBACK_BLOCKS = 20
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
_SNAPSHOT = re.compile(r"-\d{8}$")


def min_cacheable_tokens(model: str) -> int:
    """The model's minimum cacheable prefix (dated snapshots count as their model)."""
    return MIN_CACHEABLE_TOKENS.get(_SNAPSHOT.sub("", model), DEFAULT_MIN_CACHEABLE_TOKENS)


def block_tokens(block: Any) -> int:
    """Approximate tokens of one block (``cache_control`` excluded), at least 1."""
    if isinstance(block, Mapping) and block.get("type") == "image":
        source = block.get("source")
        data = source.get("data", "") if isinstance(source, Mapping) else ""
        return max(1, math.ceil(len(str(data)) * 3 / 4 / 750))
    return max(1, math.ceil(len(_canonical(block)) / 4))


@dataclass(frozen=True)
class CacheCall:
    """What one request did with the cache: exactly the usage it reported.

    ``input_tokens`` is the API's meaning (uncached remainder); ``total_input_tokens`` is
    every input token of the request.
    """

    model: str
    input_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int

    @property
    def total_input_tokens(self) -> int:
        """Uncached + read + written."""
        return self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens


@dataclass(frozen=True)
class CacheStats:
    """Totals over the simulated calls (``AnthropicFake.cache_stats``)."""

    calls: int
    input_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens neither read from nor written to the cache."""
        return self.input_tokens - self.cache_read_input_tokens - self.cache_creation_input_tokens

    @property
    def cached_share(self) -> float:
        """Share of all input tokens read from the cache (0.0 without calls)."""
        return self.cache_read_input_tokens / self.input_tokens if self.input_tokens else 0.0


@dataclass
class _Element:
    key: str  # SHA-256 of the model and every block up to and including this one
    tokens: int  # cumulative
    ttl: str | None  # the breakpoint's TTL, None when the block is no breakpoint


@dataclass
class PromptCache:
    """The cache of one fake server.

    Args:
        clock: Seconds, monotonic; tests pass their own to step over the TTL.
        min_tokens: Override the per-model minimum cacheable length (``None``: the table).
    """

    clock: Callable[[], float] = time.monotonic
    min_tokens: int | None = None
    entries: dict[str, tuple[float, str]] = field(default_factory=dict)  # key → (expiry, ttl)
    calls: list[CacheCall] = field(default_factory=list)

    def account(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one request to the cache; return its documented ``usage`` input fields."""
        model = str(body.get("model", ""))
        elements = _elements(model, body)
        now = self.clock()
        self.entries = {k: v for k, v in self.entries.items() if v[0] > now}
        minimum = self.min_tokens if self.min_tokens is not None else min_cacheable_tokens(model)
        breakpoints = [i for i, e in enumerate(elements) if e.ttl is not None]
        hit = self._longest_hit(elements, breakpoints, now)
        read = elements[hit].tokens if hit >= 0 else 0
        written = {"5m": 0, "1h": 0}
        covered = read
        for index in breakpoints:
            element = elements[index]
            if element.tokens < minimum:
                continue  # documented: too short to cache, and no error
            ttl = element.ttl or "5m"
            if element.tokens > covered:
                written[ttl] += element.tokens - covered
                covered = element.tokens
            self.entries[element.key] = (now + TTL_SECONDS[ttl], ttl)
        total = elements[-1].tokens if elements else 0
        creation = written["5m"] + written["1h"]
        call = CacheCall(
            model=model,
            input_tokens=total - read - creation,
            cache_read_input_tokens=read,
            cache_creation_input_tokens=creation,
            ephemeral_5m_input_tokens=written["5m"],
            ephemeral_1h_input_tokens=written["1h"],
        )
        self.calls.append(call)
        return {
            "input_tokens": call.input_tokens,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": written["5m"],
                "ephemeral_1h_input_tokens": written["1h"],
            },
        }

    def _longest_hit(self, elements: list[_Element], breakpoints: list[int], now: float) -> int:
        """Index of the longest live cached prefix reachable from a breakpoint (-1: none)."""
        best = -1
        for index in breakpoints:
            for candidate in range(index, max(-1, index - LOOKBACK_BLOCKS), -1):
                entry = self.entries.get(elements[candidate].key)
                if entry is not None:
                    if candidate > best:
                        best = candidate
                    break
        if best >= 0:  # a hit refreshes the entry's lifetime
            _, ttl = self.entries[elements[best].key]
            self.entries[elements[best].key] = (now + TTL_SECONDS[ttl], ttl)
        return best

    def stats(self) -> CacheStats:
        """Totals over every simulated call so far."""
        return CacheStats(
            calls=len(self.calls),
            input_tokens=sum(c.total_input_tokens for c in self.calls),
            cache_read_input_tokens=sum(c.cache_read_input_tokens for c in self.calls),
            cache_creation_input_tokens=sum(c.cache_creation_input_tokens for c in self.calls),
        )

    def live_entries(self) -> int:
        """Entries not expired at the clock's current time."""
        now = self.clock()
        return sum(1 for expiry, _ in self.entries.values() if expiry > now)


def _elements(model: str, body: Mapping[str, Any]) -> list[_Element]:
    """The request's blocks in prefix order, each with its cumulative key and tokens."""
    pieces: list[tuple[Any, Any]] = []  # (identity of the block, the block)
    for tool in _list(body.get("tools")):
        pieces.append((("tools", _strip(tool)), tool))
    system = body.get("system")
    if isinstance(system, str):
        pieces.append((("system", system), {"type": "text", "text": system}))
    for block in _list(system):
        pieces.append((("system", _strip(block)), block))
    for number, message in enumerate(_list(body.get("messages"))):
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for block in _list(blocks):
            identity = ("message", number, message.get("role"), _strip(block))
            pieces.append((identity, block))
    digest = hashlib.sha256(model.encode())
    elements: list[_Element] = []
    tokens = 0
    for identity, block in pieces:
        digest.update(_canonical(identity).encode())
        tokens += block_tokens(_strip(block))
        elements.append(_Element(digest.copy().hexdigest(), tokens, _ttl(block)))
    return elements


def _ttl(block: Any) -> str | None:
    if not isinstance(block, Mapping) or not isinstance(block.get("cache_control"), Mapping):
        return None
    ttl = block["cache_control"].get("ttl", "5m")
    return ttl if ttl in TTL_SECONDS else "5m"


def _strip(block: Any) -> Any:
    if isinstance(block, Mapping):
        return {k: v for k, v in block.items() if k != "cache_control"}
    return block


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
