"""What the fake Gemini API checks and simulates: request rules, thought signatures, caching.

* :func:`validate_request` — the structural rules of ``generateContent`` (roles, parts, function
  calls answered one for one, the schema dialect, ``inlineData`` MIME types and base64).
* :class:`SignatureBook` — Gemini 3's thought signatures: the ones the fake handed out, and
  the rule that each step of the current turn sends its first ``functionCall`` back with its
  signature (400 otherwise), and that no signature is made up.
* :class:`ImplicitCache` — implicit caching, deterministically: a request's cached tokens are
  the longest exact prefix (system instruction, tools, then contents part by part) it shares
  with an earlier request to the same model, counted only from ``min_tokens`` on.
  Tokens are characters / 4.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Keys Gemini's ``parameters`` schema accepts.
SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})

#: MIME types the fake takes inline: the image types of the image-understanding guide, plus
#: PDF and plain text (document understanding). ``image/gif`` is refused like the API does.
INLINE_MIME_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/webp",
        "image/heic",
        "image/heif",
        "application/pdf",
        "text/plain",
    }
)

#: Gemini's limit on a request body, inline data included.
MAX_REQUEST_BYTES = 20 * 1024 * 1024

SIGNATURE_DOCS = "https://ai.google.dev/gemini-api/docs/thought-signatures"


def decode_base64(value: object) -> bytes | None:
    """A proto3-JSON ``bytes`` value: standard or URL-safe alphabet, padding optional."""
    if not isinstance(value, str):
        return None
    normalised = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(normalised + "=" * (-len(normalised) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _schema_problem(schema: Any, where: str) -> str | None:
    if not isinstance(schema, Mapping):
        return f"{where}: expected an object"
    for key, value in schema.items():
        if key not in SCHEMA_KEYS:
            return (
                f'Invalid JSON payload received. Unknown name "{key}" at '
                f"'{where}': Cannot find field."
            )
        if key == "type" and (not isinstance(value, str) or value.upper() not in SCHEMA_TYPES):
            return f"{where}.type: invalid value {value!r}"
        if key == "properties":
            if not isinstance(value, Mapping):
                return f"{where}.properties: expected an object"
            for name, sub in value.items():
                problem = _schema_problem(sub, f"{where}.properties[{name}].value")
                if problem:
                    return problem
        if key == "items":
            problem = _schema_problem(value, f"{where}.items")
            if problem:
                return problem
        if key == "enum" and not all(isinstance(v, str) for v in value):
            return f"{where}.enum: enum values must be strings"
    return None


def _tools_problem(body: Mapping[str, Any]) -> str | None:
    for t_index, tool in enumerate(body.get("tools") or []):
        for f_index, function in enumerate(tool.get("functionDeclarations") or []):
            where = f"tools[{t_index}].function_declarations[{f_index}]"
            name = function.get("name")
            if not isinstance(name, str) or not name:
                return f"* GenerateContentRequest.{where}.name: Name cannot be empty."
            if "parameters" in function:
                problem = _schema_problem(function["parameters"], f"{where}.parameters")
                if problem:
                    return problem
    return None


def _inline_data_problem(blob: Any, spot: str) -> str | None:
    if not isinstance(blob, Mapping):
        return f"* GenerateContentRequest.{spot}.inline_data: expected an object"
    # proto3 JSON: the API reads a field under its JSON name or its proto name, and the SDK
    # sends a Blob's fields under their proto names (``mime_type``).
    mime = blob.get("mimeType", blob.get("mime_type"))
    if mime not in INLINE_MIME_TYPES:
        return (
            f"* GenerateContentRequest.{spot}.inline_data.mime_type: Unsupported MIME type: {mime}"
        )
    data = blob.get("data")
    if decode_base64(data) is None:
        shown = str(data)[:16]
        return (
            f"Invalid value at '{spot}.inline_data.data' (TYPE_BYTES), Base64 decoding "
            f'failed for "{shown}"'
        )
    return None


def _part_problem(part: Any, spot: str, role: str) -> str | None:
    if not isinstance(part, Mapping):
        return f"* GenerateContentRequest.{spot}: expected an object"
    if "text" in part and not isinstance(part["text"], str):
        return f"* GenerateContentRequest.{spot}.text: expected a string"
    if "functionCall" in part:
        if role != "model":
            return f"* GenerateContentRequest.{spot}: functionCall is only for role model"
        if not isinstance(part["functionCall"].get("args", {}), Mapping):
            return f"* GenerateContentRequest.{spot}.function_call.args: expected an object"
    if "functionResponse" in part:
        if role != "user":
            return f"* GenerateContentRequest.{spot}: functionResponse is only for role user"
        if not isinstance(part["functionResponse"].get("response"), Mapping):
            return f"* GenerateContentRequest.{spot}.function_response.response: required"
    blob = part.get("inlineData", part.get("inline_data"))
    if blob is not None:
        problem = _inline_data_problem(blob, spot)
        if problem:
            return problem
    if not ({"text", "functionCall", "functionResponse", "inlineData", "inline_data"} & set(part)):
        return (
            f"* GenerateContentRequest.{spot}.data: required oneof field 'data' must "
            "have one initialized field"
        )
    return None


def validate_request(body: Any) -> str | None:
    """The first way ``body`` breaks the generateContent rules, or ``None``."""
    if not isinstance(body, Mapping):
        return "Invalid JSON payload received: expected an object"
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    system = body.get("systemInstruction")
    if system is not None:
        parts = system.get("parts") if isinstance(system, Mapping) else None
        if not isinstance(parts, list) or not parts:
            return "* GenerateContentRequest.system_instruction.parts: must not be empty"
    problem = _tools_problem(body)
    if problem:
        return problem
    pending: list[str] = []
    for index, content in enumerate(contents):
        where = f"contents[{index}]"
        if not isinstance(content, Mapping):
            return f"* GenerateContentRequest.{where}: expected an object"
        role = content.get("role", "user")
        if role not in ("user", "model"):
            return f"* GenerateContentRequest.{where}.role: Please use a valid role: user, model."
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            return f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty."
        for p_index, part in enumerate(parts):
            problem = _part_problem(part, f"{where}.parts[{p_index}]", role)
            if problem:
                return problem
        calls = [str(p["functionCall"].get("name")) for p in parts if "functionCall" in p]
        responses = [
            str(p["functionResponse"].get("name")) for p in parts if "functionResponse" in p
        ]
        if (pending or responses) and sorted(responses) != sorted(pending):
            return (
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
        pending = calls
    return None


class SignatureBook:
    """Thought signatures as Gemini 3 hands them out and checks them.

    The rule checked (Google's thought-signature guide): within the *current turn* — every
    content after the last user content with a text part — the first ``functionCall`` part of
    each model step must carry the signature it came with; and a signature must be one the
    server issued (the fake compares decoded bytes, so either base64 alphabet passes).
    Signatures in earlier turns are not required, but must still be genuine if sent.
    """

    def __init__(self) -> None:
        self.issued: set[bytes] = set()
        self._count = 0
        self._lock = threading.Lock()

    def issue(self) -> str:
        """A new signature (base64, with ``+`` and ``/`` in it, as real ones have)."""
        with self._lock:
            self._count += 1
            raw = b"\xfb\xff\xbf" + f"fake-thought-{self._count}".encode()
            self.issued.add(raw)
        return base64.b64encode(raw).decode()

    def register(self, signature: str) -> None:
        """Accept a scripted signature as one the server issued."""
        raw = decode_base64(signature)
        if raw is not None:
            with self._lock:
                self.issued.add(raw)

    def problem(self, body: Mapping[str, Any]) -> str | None:
        """Why ``body`` breaks the signature rule, or ``None``."""
        contents = body.get("contents")
        contents = contents if isinstance(contents, list) else []
        start = _current_turn_start(contents)
        for index, content in enumerate(contents):
            parts = content.get("parts") if isinstance(content, Mapping) else None
            for part in parts if isinstance(parts, list) else []:
                signature = part.get("thoughtSignature") if isinstance(part, Mapping) else None
                if signature is not None and decode_base64(signature) not in self.issued:
                    return "Corrupted thought signature."
            if index < start or not isinstance(content, Mapping) or content.get("role") != "model":
                continue
            calls = [p for p in parts or [] if isinstance(p, Mapping) and "functionCall" in p]
            if calls and "thoughtSignature" not in calls[0]:
                name = calls[0]["functionCall"].get("name")
                return (
                    "Function call is missing a thought_signature in functionCall parts. This "
                    "is required for tools to work correctly, and missing thought_signature "
                    f"may lead to degraded model performance. Additional data, function call "
                    f"`default_api:{name}`, position {index + 1}. Please refer to "
                    f"{SIGNATURE_DOCS} for more details."
                )
        return None


def _current_turn_start(contents: list[Any]) -> int:
    """Index of the first content after the last user content that has a text part."""
    start = 0
    for index, content in enumerate(contents):
        if not isinstance(content, Mapping) or content.get("role", "user") != "user":
            continue
        parts = content.get("parts")
        if isinstance(parts, list) and any(isinstance(p, Mapping) and "text" in p for p in parts):
            start = index + 1
    return start


@dataclass(frozen=True)
class CacheLookup:
    """One request's visit to the implicit cache."""

    model: str
    prompt_tokens: int
    cached_tokens: int


@dataclass
class CacheStats:
    """Totals over every lookup: ``share`` is cached / prompt tokens."""

    requests: int = 0
    hits: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0

    @property
    def share(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass
class ImplicitCache:
    """Gemini's implicit cache, simulated (see the module docstring).

    Attributes:
        min_tokens: The smallest cacheable prefix (4096 for gemini-3.8-flash per LiteLLM;
            Google does not publish one for 3.x). Settable at any time.
        lookups: Every request served, in order, with its prompt and cached tokens.
    """

    min_tokens: int = 4096
    lookups: list[CacheLookup] = field(default_factory=list)
    _seen: dict[str, list[list[str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def lookup(self, model: str, body: Mapping[str, Any], prompt_tokens: int) -> int:
        """Cached tokens of this request; it is then remembered as a cached prefix."""
        units = prefix_units(body)
        with self._lock:
            shared = max(
                (_common_chars(units, seen) for seen in self._seen.get(model, [])), default=0
            )
            cached = min(shared // 4, prompt_tokens)
            if cached < self.min_tokens:
                cached = 0
            self._seen.setdefault(model, []).append(units)
            self.lookups.append(CacheLookup(model, prompt_tokens, cached))
        return cached

    def stats(self) -> CacheStats:
        """Totals so far."""
        with self._lock:
            return CacheStats(
                requests=len(self.lookups),
                hits=sum(1 for entry in self.lookups if entry.cached_tokens),
                prompt_tokens=sum(entry.prompt_tokens for entry in self.lookups),
                cached_tokens=sum(entry.cached_tokens for entry in self.lookups),
            )

    def clear(self) -> None:
        """Forget every cached prefix and lookup."""
        with self._lock:
            self._seen.clear()
            self.lookups.clear()


def prefix_units(body: Mapping[str, Any]) -> list[str]:
    """A request as the sequence a cache prefix is matched on: system instruction, tools,
    then each part of each content (tagged with its role), as canonical JSON."""
    units = [
        _canonical(["system", body.get("systemInstruction")]),
        _canonical(["tools", body.get("tools")]),
    ]
    for content in body.get("contents") or []:
        if not isinstance(content, Mapping):
            continue
        role = content.get("role", "user")
        for part in content.get("parts") or []:
            units.append(_canonical([role, part]))
    return units


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _common_chars(units: list[str], seen: list[str]) -> int:
    total = 0
    for mine, theirs in zip(units, seen, strict=False):
        if mine != theirs:
            break
        total += len(mine)
    return total
