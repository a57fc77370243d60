"""The one escaping every text the bot posts goes through (comments, PR bodies, summaries).

Task titles, errors, summaries, review comments, conflict paths and notes are model or user
text. Posted raw, they could carry HTML comments (the tracking comment's hidden markers),
``<details>``/``<img>`` markup, or Markdown that breaks a table or a diagram. Three shapes:

* ``md_text``: one inline line, HTML-escaped and with Markdown specials escaped (tables, lists);
* ``md_block``: multi-line Markdown an agent wrote for people (a review comment): its Markdown
  is kept, but ``<``, ``>`` and ``&`` become entities, so no HTML, hidden comment or marker
  survives;
* ``mermaid_text``: a quoted Mermaid label, anything unusual as an entity code.
"""

from __future__ import annotations

import html
import re

__all__ = ["md_block", "md_text", "mermaid_text", "one_line"]

_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 .,:/+=!?@_-]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]+")
_BLOCK_CONTROL = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]"
)


def one_line(text: str, limit: int = 200) -> str:
    """Collapse whitespace and control characters to single spaces; cut at ``limit``."""
    flat = " ".join(_CONTROL.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def md_text(text: str, limit: int = 200) -> str:
    """Untrusted text as inline Markdown: one line, HTML-escaped, Markdown specials escaped."""
    escaped = html.escape(one_line(text, limit), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", escaped)


def md_block(text: str, limit: int = 5000) -> str:
    """Untrusted multi-line Markdown for people: Markdown kept, every HTML tag, comment and
    entity neutralised (``<`` ``>`` ``&`` as entities), control characters dropped."""
    clean = _BLOCK_CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if len(clean) > limit:
        clean = clean[: limit - 1].rstrip() + "…"
    return html.escape(clean, quote=False)


def mermaid_text(text: str, limit: int = 60) -> str:
    """Untrusted text for a quoted Mermaid label: anything unusual becomes an entity code."""
    return "".join(
        ch if _MERMAID_SAFE.fullmatch(ch) else f"#{ord(ch)};" for ch in one_line(text, limit)
    )
