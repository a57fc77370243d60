"""Untrusted text in: strip what GitHub hides, then fence what is left.

Issue bodies, comments and PR text are written by people we may not trust, and what a reader
sees on github.com is not all that is in the text. An HTML comment, an element with the
``hidden`` attribute, a zero-width space inside ``/orche​strate`` or a right-to-left override
can carry instructions that no reviewer ever saw. ``clean_untrusted`` removes all of that, so
the program (command parsing) and the models (prompts) only see what a human could have seen.
``delimit_untrusted`` then fences the cleaned text for a prompt so that it cannot close its own
fence and pose as instructions.

The cleaning errs on the side of removing too much: HTML comments are stripped even inside
Markdown code blocks (where GitHub would show them), because a lost visible comment is
harmless and a kept hidden one is not.
"""

from __future__ import annotations

import re
from html import escape

__all__ = [
    "BIDI_CONTROLS",
    "HIDDEN_CONTENT_TAGS",
    "INVISIBLE_CHARS",
    "clean_untrusted",
    "delimit_untrusted",
    "strip_hidden_html",
    "strip_invisible",
]

#: Bidirectional embedding, override and isolate controls ("Trojan Source").
BIDI_CONTROLS = frozenset(
    chr(cp) for cp in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)
)

# Format (Cf) characters as of Unicode 15, hard-coded so that the result does not depend on the
# unicodedata version of the running Python (and to avoid scanning 1.1M code points at import).
# Includes zero-width space/joiners, word joiner and invisible operators, BOM, soft hyphen,
# bidi controls and the tag characters U+E0000–U+E007F (used to smuggle invisible ASCII).
_FORMAT_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE007F),
)
# Invisible characters that are not Cf: Hangul fillers render as blank, the combining grapheme
# joiner has no glyph. Variation selectors (U+FE00–U+FE0F) are kept: emoji need them.
_OTHER_INVISIBLE: tuple[int, ...] = (0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0)
# C0/C1 controls except tab and newline (carriage returns are normalised before this runs).
_CONTROL_RANGES: tuple[tuple[int, int], ...] = ((0x00, 0x08), (0x0B, 0x1F), (0x7F, 0x9F))

#: Every character ``clean_untrusted`` deletes outright.
INVISIBLE_CHARS = frozenset(
    chr(cp)
    for low, high in (*_FORMAT_RANGES, *_CONTROL_RANGES, *((c, c) for c in _OTHER_INVISIBLE))
    for cp in range(low, high + 1)
)


def _char_class(chars: frozenset[str]) -> str:
    return "[" + "".join(sorted(f"\\U{ord(c):08x}" for c in chars)) + "]"


_INVISIBLE_RE = re.compile(_char_class(INVISIBLE_CHARS) + "+")
_NEWLINES_RE = re.compile("\r\n?|[\u2028\u2029\x85]")
# A comment runs to the first "-->"; an unterminated one hides everything after it.
_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)

#: Elements whose whole content GitHub's sanitizer drops (never rendered).
HIDDEN_CONTENT_TAGS = frozenset({"script", "style", "template", "noscript", "xmp", "iframe"})
_VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_OPEN_TAG_RE = re.compile(r"<([A-Za-z][A-Za-z0-9-]*)((?:\s[^<>]*)?)>")
_ATTR_RE = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")
_HIDING_STYLE_RE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden|(?<![-\w])opacity\s*:\s*0(?:\.0*)?(?![.\d])"
    r"|font-size\s*:\s*0(?![.\d])",
    re.IGNORECASE,
)


def strip_invisible(text: str) -> str:
    """Normalise line breaks to ``\\n`` and delete invisible, format and control characters."""
    return _INVISIBLE_RE.sub("", _NEWLINES_RE.sub("\n", text))


def _hides(tag: str, attrs: str) -> bool:
    if tag.lower() in HIDDEN_CONTENT_TAGS:
        return True
    for match in _ATTR_RE.finditer(attrs):
        name = match.group(1).lower()
        value = (match.group(2) or "").strip("\"'")
        if name == "hidden":
            return True
        if name == "style" and _HIDING_STYLE_RE.search(value):
            return True
    return False


def _element_end(text: str, tag: str, start: int) -> int:
    """Index just past the ``</tag>`` closing the element opened before ``start``.

    Counts nested elements of the same name; an unclosed element runs to the end of the text.
    """
    pattern = re.compile(rf"<(/?){re.escape(tag)}(?=[\s/>])[^<>]*>", re.IGNORECASE)
    depth = 1
    for match in pattern.finditer(text, start):
        if match.group(1):
            depth -= 1
            if depth == 0:
                return match.end()
        elif not match.group(0).endswith("/>"):
            depth += 1
    return len(text)


def strip_hidden_html(text: str) -> str:
    """Remove HTML comments and elements a browser would not show.

    Hidden elements are those with a ``hidden`` attribute, a ``style`` that hides them
    (``display:none``, ``visibility:hidden``, ``opacity:0``, ``font-size:0``) and elements whose
    content is never rendered (``<script>``, ``<style>``, …). The element goes with all its
    content; an unterminated one takes the rest of the text. Repeats until nothing changes,
    so removing one construct cannot assemble another.
    """
    while True:
        before = text
        text = _COMMENT_RE.sub("", text)
        pos = 0
        parts: list[str] = []
        for match in _OPEN_TAG_RE.finditer(text):
            if match.start() < pos:
                continue
            tag, attrs = match.group(1), match.group(2)
            if not _hides(tag, attrs):
                continue
            parts.append(text[pos : match.start()])
            self_closing = attrs.rstrip().endswith("/") or tag.lower() in _VOID_TAGS
            pos = match.end() if self_closing else _element_end(text, tag, match.end())
        parts.append(text[pos:])
        text = "".join(parts)
        if text == before:
            return text


def clean_untrusted(text: str) -> str:
    """What a reader of github.com could actually see of ``text``.

    Normalises ``\\r\\n``/``\\r`` to ``\\n``; deletes zero-width, bidi, tag and other format or
    control characters (keeping ``\\n`` and ``\\t``); removes HTML comments (an unterminated
    one to the end of the text) and hidden HTML elements. Invisible characters go first, so
    ``<!\\u200b-- x -->`` is treated as the comment it turns into.
    """
    return strip_hidden_html(strip_invisible(text))


_TAG_NAME = "untrusted-input"
# Any spelling of the fence tag that a model might read as one: any case, optional "/" and
# spaces, and full-width or small-form "<" look-alikes.
_FENCE_RE = re.compile(r"[<\uFF1C\uFE64]\s*(/?)\s*untrusted[-_\s]*input", re.IGNORECASE)


def delimit_untrusted(label: str, text: str) -> str:
    """Fence ``text`` for a prompt: ``<untrusted-input source="label">…</untrusted-input>``.

    The text is cleaned first; any opening or closing fence tag inside it has its ``<`` turned
    into ``&lt;``, so the text cannot end the block early or open a fake one. ``label`` is
    attribute-escaped.
    """
    body = _FENCE_RE.sub(lambda m: "&lt;" + m.group(1) + _TAG_NAME, clean_untrusted(text))
    source = escape(clean_untrusted(label), quote=True)
    return f'<{_TAG_NAME} source="{source}">\n{body}\n</{_TAG_NAME}>'
