"""Untrusted text in: strip what GitHub hides, then fence what is left.

Issue bodies, comments and PR text are written by people we may not trust, and what a reader
sees on github.com is not all that is in the text. An HTML comment, a Markdown link reference
definition (``[//]: # (text)``, GitHub renders nothing for it), an element with the ``hidden``
attribute (however its other attributes are quoted: ``<span title=">" hidden>``), a zero-width
space inside ``/orche​strate`` or a right-to-left override can carry instructions that no
reviewer ever saw. ``clean_untrusted`` removes all of that, so the program (command parsing)
and the models (prompts) only see what a human could have seen. ``delimit_untrusted`` then
fences the cleaned text for a prompt so that it cannot close its own fence and pose as
instructions.

The cleaning errs on the side of removing too much: HTML comments and link reference
definitions are stripped even inside Markdown code blocks (where GitHub would show them), and a
definition is recognised at any indent and inside block quotes and list items, because a lost
visible line is harmless and a kept hidden one is not.

Every pattern runs in linear time (possessive quantifiers; a scan that fails is bounded by a
delimiter that a later scan over the same text cannot share). Only constructs nested on purpose
so that removing one assembles the next cost a pass per level (comments settle in cheap
passes of their own).
"""

from __future__ import annotations

import re

# Patterns are compiled when first used (``re.compile`` keeps them) and ``html`` is imported
# only for a text with a tag: the skip path of ``orchestrator plan`` cleans a title or a comment
# of plain text without paying for either (docs/architecture.md, "Start-up time matters").

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


#: ``str.translate`` table: line breaks (``\r``, U+0085, U+2028, U+2029) become ``\n`` (``\r\n``
#: is made ``\n`` first), then every invisible character goes.
_NEWLINES_AND_INVISIBLE: dict[int, str | None] = {
    **dict.fromkeys(map(ord, INVISIBLE_CHARS)),
    **dict.fromkeys(map(ord, "\r\x85\u2028\u2029"), "\n"),
}
# A comment runs to the first "-->"; an unterminated one hides everything after it.
_COMMENT = r"(?s)<!--.*?(?:-->|\Z)"

# A Markdown link reference definition, ``[label]: destination "optional title"``: GitHub renders
# nothing for it, which makes ``[//]: # (text)`` the classic Markdown comment. It takes whole
# lines: the label (may wrap, at most 999 characters, not blank, not a ``[^footnote]``), a
# destination (``<…>`` or one word) on the same or the next line, and an optional title in
# double quotes, single quotes or parentheses on the same or the next line, which may run over
# several lines but not over a blank line; nothing else may follow on its last line. CommonMark
# allows at most three spaces of indent, but a definition is just as invisible inside a block
# quote, a list item or a list item's indented continuation, so any indent and any ``>``/list
# markers before it are accepted: the cost is losing a definition-shaped line of an indented
# code block, which is visible on GitHub; harmless (fenced code is not exempt either).
# Possessive and anchored at line starts; a title never closes scans at most to the end of its
# paragraph, and a later title inside that stretch needs another kind of quote, so the scans
# are linear.
_TITLE_BODY = r"(?:[^{end}\\\n]|\\.|\n(?![ \t]*+$))*+"
_LINK_DEF = (
    r"(?m)^[ \t]*+(?:(?:>|[-+*](?=[ \t])|\d{1,9}[.)](?=[ \t]))[ \t]*+)*+"  # indent, containers
    r"\[(?!\^)(?P<label>(?:[^\\\[\]\n]|\\.|\n(?![ \t]*+$)){1,999}+)\]:"
    r"[ \t]*+(?:\n[ \t]*+)?+"  # at most one line break before the destination
    r"(?:<[^<>\n]*+>|[^\s<]\S*+)"
    r"(?:(?:[ \t]++(?:\n[ \t]*+)?|[ \t]*+\n[ \t]*+)"
    r"(?:\"" + _TITLE_BODY.format(end='"') + r"\"|'" + _TITLE_BODY.format(end="'") + r"'"
    r"|\(" + _TITLE_BODY.format(end="()") + r"\)))?"
    r"[ \t]*+$\n?"
)


def _strip_link_definitions(text: str) -> str:
    # A blank label ("[ ]: x") makes no definition: that text is shown.
    return re.compile(_LINK_DEF).sub(lambda m: m.group(0) if not m["label"].strip() else "", text)


#: Elements whose whole content GitHub's sanitizer drops (never rendered).
HIDDEN_CONTENT_TAGS = frozenset({"script", "style", "template", "noscript", "xmp", "iframe"})
_VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
# One attribute, as a browser's tokenizer reads it: a name, then optionally "=" and a value that
# is double-quoted, single-quoted (either may hold ">", "<" and line breaks, but not a blank
# line, which ends any HTML on GitHub) or unquoted. Names and unquoted values stop at "<" (as in
# CommonMark's grammar): that bounds how far a tag without its ">" is scanned before it is given
# up, so no text makes this quadratic. Possessive throughout: one parse, no backtracking.
_QUOTED = r"""(?:"(?:[^"\n]|\n(?![ \t]*+\n))*+"|'(?:[^'\n]|\n(?![ \t]*+\n))*+')"""
_ATTR = rf"""[^\s/>=<]++(?:\s*+=\s*+(?:{_QUOTED}|[^\s"'<>][^\s<>]*+))?+"""
# Attributes are separated by whitespace or "/" (``<br/>``, ``<a/b>``).
_ATTRS = rf"(?:[\s/]++(?:{_ATTR})?+)*+"
_OPEN_TAG = rf"<([A-Za-z][A-Za-z0-9-]*+)({_ATTRS})>"
_ANY_TAG = rf"<(/?)([A-Za-z][A-Za-z0-9-]*+)({_ATTRS})>"
_ATTR_PARTS = rf"""([^\s/>=<]++)(?:\s*+=\s*+({_QUOTED}|[^\s"'<>][^\s<>]*+))?+"""
_HIDING_STYLE = (
    r"(?i)display\s*:\s*none|visibility\s*:\s*hidden|(?<![-\w])opacity\s*:\s*0(?:\.0*)?(?![.\d])"
    r"|font-size\s*:\s*0(?![.\d])"
)


def strip_invisible(text: str) -> str:
    """Normalise line breaks to ``\\n`` and delete invisible, format and control characters."""
    return text.replace("\r\n", "\n").translate(_NEWLINES_AND_INVISIBLE)


def _hides(tag: str, attrs: str) -> bool:
    if tag.lower() in HIDDEN_CONTENT_TAGS:
        return True
    from html import unescape

    for match in re.compile(_ATTR_PARTS).finditer(attrs):
        name = match.group(1).lower()
        value = unescape((match.group(2) or "").strip("\"'"))  # display&#58;none
        if name == "hidden":
            return True
        if name == "style" and re.search(_HIDING_STYLE, value):
            return True
    return False


def _element_end(text: str, tag: str, start: int) -> int:
    """Index just past the ``</tag>`` closing the element opened before ``start``.

    Counts nested elements of the same name; an unclosed element runs to the end of the text.
    Every tag is stepped over whole, whatever its name, so a ``</div>`` inside a quoted
    attribute value (``<b title="</div>">``) closes nothing.
    """
    depth = 1
    tag = tag.lower()
    for match in re.compile(_ANY_TAG).finditer(text, start):
        if match.group(2).lower() != tag:
            continue
        if match.group(1):
            depth -= 1
            if depth == 0:
                return match.end()
        elif not match.group(0).endswith("/>"):
            depth += 1
    return len(text)


def strip_hidden_html(text: str) -> str:
    """Remove HTML comments, Markdown link reference definitions and hidden HTML elements.

    Hidden elements are those with a ``hidden`` attribute, a ``style`` that hides them
    (``display:none``, ``visibility:hidden``, ``opacity:0``, ``font-size:0``; character
    references decoded) and elements whose content is never rendered (``<script>``,
    ``<style>``, …). The element goes with all its content; an unterminated one takes the rest
    of the text. Attribute values are parsed, so a quoted ``>`` or ``<`` neither ends a tag
    early nor hides a ``hidden`` after it, and a closing tag inside a quoted value closes
    nothing. Link reference definitions (``[//]: # (text)``, ``[x]: <> "text"``) go whole
    line(s). Repeats until nothing changes, so removing one construct cannot assemble another.

    Args:
        text: Untrusted text (Markdown with HTML).

    Returns:
        The text without those constructs.
    """
    if "<" not in text and "]:" not in text:
        return text  # every construct needs one of these (a tag or comment, a definition)
    while True:
        before = text
        text = _strip_link_definitions(_strip_comments(text))
        pos = 0
        parts: list[str] = []
        for match in re.compile(_OPEN_TAG).finditer(text):
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


def _strip_comments(text: str) -> str:
    # Comments nested to assemble one another ("<!<!-- a -->-- b -->") are settled here, in
    # cheap passes of one regex, rather than by the full loop above.
    while True:
        before, text = text, re.sub(_COMMENT, "", text)
        if text == before:
            return text


def clean_untrusted(text: str) -> str:
    """What a reader of github.com could actually see of ``text``.

    Normalises ``\\r\\n``/``\\r`` to ``\\n``; deletes zero-width, bidi, tag and other format or
    control characters (keeping ``\\n`` and ``\\t``); removes HTML comments (an unterminated
    one to the end of the text), Markdown link reference definitions and hidden HTML elements
    (see :func:`strip_hidden_html`). Invisible characters go first, so ``<!\\u200b-- x -->`` is
    treated as the comment it turns into.

    Args:
        text: Untrusted text.

    Returns:
        The visible text.
    """
    return strip_hidden_html(strip_invisible(text))


_TAG_NAME = "untrusted-input"
# Any spelling of the fence tag that a model might read as one: any case, optional "/" and
# spaces, and full-width or small-form "<" look-alikes.
_FENCE = r"(?i)[<\uFF1C\uFE64]\s*(/?)\s*untrusted[-_\s]*input"


def delimit_untrusted(label: str, text: str) -> str:
    """Fence ``text`` for a prompt: ``<untrusted-input source="label">…</untrusted-input>``.

    The text is cleaned first; any opening or closing fence tag inside it has its ``<`` turned
    into ``&lt;``, so the text cannot end the block early or open a fake one. ``label`` is
    attribute-escaped.
    """
    from html import escape

    body = re.sub(_FENCE, lambda m: "&lt;" + m.group(1) + _TAG_NAME, clean_untrusted(text))
    source = escape(clean_untrusted(label), quote=True)
    return f'<{_TAG_NAME} source="{source}">\n{body}\n</{_TAG_NAME}>'
