"""Neutral conversation → a Gemini ``generateContent`` request (SDK types).

Mapping:

* ``system`` messages → ``system_instruction``.
* ``user`` → ``Content(role="user")``: a text part, then one ``inline_data`` part per image
  (vision agents only; see :func:`_image_parts`).
* ``assistant`` → ``Content(role="model")``: the parts Gemini returned, verbatim, when the turn
  carries thought signatures (``provider_data``); otherwise text and ``function_call`` parts
  rebuilt from the neutral message.
* ``tool`` results → ``function_response {id?, name, response: {"output"|"error": text}}``
  parts, consecutive ones in ONE ``user`` content, as the SDK documentation does it.
* ``ToolSpec.parameters`` → Gemini's OpenAPI-subset schema dialect (:func:`gemini_schema`).
* ``json_output`` → ``response_mime_type="application/json"``.

Nothing is sent for ``Message.cache_prefix``: Gemini caches implicitly, on an exact prefix of
system instruction, tools and contents, so keeping the shared part first is all it takes.
The same two builders serve interactive calls and the inlined requests of a batch.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.providers.base import Image, Message, ModelSettings, ToolSpec
from orchestrator.providers.gemini_response import GENERATED_ID_PREFIX, PROVIDER_KEY

if TYPE_CHECKING:
    from google.genai import types

__all__ = [
    "IMAGE_TYPES",
    "INLINE_LIMIT_BYTES",
    "build_config",
    "build_contents",
    "decode_bytes",
    "gemini_schema",
]

#: Image types Gemini accepts inline (image understanding guide); others are left out.
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})

#: Gemini refuses a request larger than this (inline data included); bigger inputs need the
#: File API, which an agent's screenshots do not warrant.
INLINE_LIMIT_BYTES = 20 * 1024 * 1024

#: Room kept for the JSON around the text and the images (keys, tools, config).
_ENVELOPE_BYTES = 256 * 1024

#: Schema keys Gemini's ``parameters`` dialect accepts (an OpenAPI 3.0 subset).
_SCHEMA_KEYS = frozenset(
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


def build_contents(
    messages: list[Message], *, model: str, vision: bool, signatures: Mapping[str, str]
) -> list[types.Content]:
    """The ``contents`` of a request for ``messages`` (system messages excluded).

    Args:
        messages: The conversation so far.
        model: The agent's model: turns carrying another model's signatures are rebuilt.
        vision: Whether images are sent (the loop already strips them for other agents).
        signatures: Call id → thoughtSignature remembered by this model instance, for
            assistant messages that came back without ``provider_data``.
    """
    return _Builder(messages, model=model, vision=vision, signatures=signatures).build()


class _Builder:
    """Builds ``contents`` message by message, merging consecutive parts of one role."""

    def __init__(
        self,
        messages: list[Message],
        *,
        model: str,
        vision: bool,
        signatures: Mapping[str, str],
    ) -> None:
        self.messages = messages
        self.model = model
        self.vision = vision
        self.signatures = signatures
        self.out: list[types.Content] = []
        self.names: dict[str, str] = {}
        self.image_budget = _image_budget(messages)

    def build(self) -> list[types.Content]:
        for message in self.messages:
            if message.role == "user":
                self._add("user", self._user_parts(message))
            elif message.role == "assistant":
                self._add("model", self._assistant_parts(message))
            elif message.role == "tool":
                self._add("user", [self._tool_part(message)])
        return self.out

    def _add(self, role: str, parts: list[types.Part]) -> None:
        from google.genai import types

        if not parts:
            return
        last = self.out[-1] if self.out else None
        if last is not None and last.role == role and last.parts is not None:
            last.parts.extend(parts)
        else:
            self.out.append(types.Content(role=role, parts=parts))

    def _user_parts(self, message: Message) -> list[types.Part]:
        from google.genai import types

        images, notes = self._image_parts(message.images)
        text = "\n".join(t for t in (message.text, *notes) if t.strip())
        if not text and not images:
            text = "(empty message)"
        return ([types.Part(text=text)] if text else []) + images

    def _image_parts(self, images: Iterable[Image]) -> tuple[list[types.Part], list[str]]:
        """Inline parts for the images that can go, and a note for each one that cannot.

        Images go only to vision agents, only in types Gemini reads, and only while the
        request stays under its inline limit (earliest first: the issue's own screenshots).
        """
        from google.genai import types

        parts: list[types.Part] = []
        notes: list[str] = []
        for image in images:
            media_type = image.media_type.lower()
            size = _base64_size(len(image.data))
            if not self.vision:
                notes.append(image.omitted())
            elif media_type not in IMAGE_TYPES:
                notes.append(image.omitted(f"{media_type} is not accepted"))
            elif size > self.image_budget:
                notes.append(image.omitted("over the 20 MB request limit"))
            else:
                self.image_budget -= size
                blob = types.Blob(mime_type=media_type, data=image.data)
                parts.append(types.Part(inline_data=blob))
        return parts, notes

    def _assistant_parts(self, message: Message) -> list[types.Part]:
        from google.genai import types

        for call in message.tool_calls:
            self.names[call.id] = call.name
        replayed = _replayed_parts(message, self.model)
        if replayed is not None:
            return replayed
        parts: list[types.Part] = []
        if message.text.strip():
            parts.append(types.Part(text=message.text))
        for call in message.tool_calls:
            function_call = types.FunctionCall(
                id=_wire_id(call.id), name=call.name, args=call.arguments
            )
            signature = decode_bytes(self.signatures.get(call.id))
            parts.append(types.Part(function_call=function_call, thought_signature=signature))
        return parts

    def _tool_part(self, message: Message) -> types.Part:
        from google.genai import types

        call_id = message.tool_call_id or ""
        name = message.tool_name or self.names.get(call_id, "")
        outcome = "error" if message.is_error else "output"
        response = types.FunctionResponse(
            id=_wire_id(call_id), name=name, response={outcome: message.text}
        )
        return types.Part(function_response=response)


def _replayed_parts(message: Message, model: str) -> list[types.Part] | None:
    """The parts Gemini returned for this turn, when ``provider_data`` kept them for us.

    ``None`` (rebuild from the neutral message) when there is no Gemini state, when it was
    made by another model (its signatures would be refused), or when its calls no longer
    match the message's (someone edited the turn: the neutral message wins).
    """
    state = (message.provider_data or {}).get(PROVIDER_KEY)
    if not isinstance(state, Mapping) or state.get("model") != model:
        return None
    raw = state.get("parts")
    if not isinstance(raw, list):
        return None
    parts = [part for part in map(_part_from_wire, raw) if part is not None]
    names = [p.function_call.name for p in parts if p.function_call is not None]
    if not parts or names != [call.name for call in message.tool_calls]:
        return None
    return parts


def _part_from_wire(raw: object) -> types.Part | None:
    """One response part (wire JSON) as an SDK ``Part``, keeping what a model turn carries:
    text, the thought flag, the signature (bytes again) and the function call.

    A call whose ``args`` was not an object goes back with ``{}``, as the neutral message has
    it (the API would refuse anything else).
    """
    from google.genai import types

    if not isinstance(raw, Mapping):
        return None
    fields: dict[str, Any] = {}
    if isinstance(raw.get("text"), str):
        fields["text"] = raw["text"]
    if raw.get("thought") is True:
        fields["thought"] = True
    call = raw.get("functionCall")
    if isinstance(call, Mapping) and isinstance(call.get("name"), str):
        args = call.get("args")
        fields["function_call"] = types.FunctionCall(
            id=call["id"] if isinstance(call.get("id"), str) else None,
            name=call["name"],
            args=dict(args) if isinstance(args, Mapping) else {},
        )
    if not fields:
        return None  # a part of a kind we never asked for; an empty part would be refused
    signature = decode_bytes(raw.get("thoughtSignature"))
    if signature is not None:
        fields["thought_signature"] = signature
    return types.Part(**fields)


def build_config(
    messages: list[Message], tools: list[ToolSpec], settings: ModelSettings
) -> types.GenerateContentConfig:
    """System instruction, tools and generation settings of a request."""
    from google.genai import types

    system = "\n\n".join(m.text for m in messages if m.role == "system" and m.text.strip())
    declarations = [
        types.FunctionDeclaration(
            name=tool.name,
            description=tool.description,
            parameters=types.Schema.model_validate(gemini_schema(tool.parameters)),
        )
        for tool in tools
    ]
    return types.GenerateContentConfig(
        system_instruction=system or None,
        max_output_tokens=settings.max_tokens,
        tools=[types.Tool(function_declarations=declarations)] if declarations else None,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        response_mime_type="application/json" if settings.json_output else None,
    )


def gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON Schema rewritten into Gemini's ``parameters`` dialect.

    Unknown keys are dropped (``additionalProperties``, ``$schema``, ``$id``, ``$ref``,
    ``$defs``, ``examples``, ``oneOf``/``allOf`` …) since the API answers 400 to an unknown
    key; ``type: [T, "null"]`` becomes ``type: T, nullable: true``; ``const`` becomes a
    one-value ``enum``; enum values become strings; ``required`` keeps only properties that
    exist.
    """
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, list):
        concrete = [t for t in kind if t != "null"]
        if len(concrete) < len(kind):
            out["nullable"] = True
        kind = concrete[0] if concrete else None
    if isinstance(kind, str):
        out["type"] = kind.upper()
    if "const" in schema and "enum" not in schema:
        out["enum"] = [_enum_value(schema["const"])]
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS or key in out:
            continue
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {
                name: gemini_schema(sub) for name, sub in value.items() if isinstance(sub, Mapping)
            }
        elif key == "items" and isinstance(value, Mapping):
            out[key] = gemini_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [gemini_schema(sub) for sub in value if isinstance(sub, Mapping)]
        elif key == "enum" and isinstance(value, list):
            out[key] = [_enum_value(v) for v in value]
            out.setdefault("type", "STRING")
        elif key == "required" and isinstance(value, list):
            known = schema.get("properties")
            out[key] = [n for n in value if not isinstance(known, Mapping) or n in known]
        elif key != "type":
            out[key] = value
    return out


def _enum_value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _wire_id(call_id: str) -> str | None:
    """The id to send Gemini: its own ids go back, ids we generated do not."""
    return None if not call_id or call_id.startswith(GENERATED_ID_PREFIX) else call_id


def decode_bytes(value: object) -> bytes | None:
    """A base64 ``bytes`` field of the wire format → bytes (standard or URL-safe alphabet,
    padding optional, as proto3 JSON allows); ``None`` when absent or not base64."""
    if not isinstance(value, str) or not value:
        return None
    normalised = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(normalised + "=" * (-len(normalised) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _base64_size(raw: int) -> int:
    return 4 * math.ceil(raw / 3)


def _image_budget(messages: list[Message]) -> int:
    """Bytes of base64 image data a request may carry besides its text."""
    text = sum(len(m.text.encode()) for m in messages)
    return INLINE_LIMIT_BYTES - _ENVELOPE_BYTES - text
