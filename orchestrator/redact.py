"""Secrets out: replace every secret with ``[REDACTED]`` before the program writes anything.

Secrets come from the environment only (DESIGN.md), so the environment says what to hide:
the value of every variable whose *name* looks secret (``*_TOKEN``, ``*_API_KEY``, ``*SECRET*``,
passwords, credentials, private keys) and at least :data:`MIN_ENV_SECRET_LEN` characters long.
On top of that come explicit extra values and the shapes of well-known credentials (GitHub,
OpenAI, Anthropic, Google and AWS keys, ``Authorization``/``Bearer`` headers, PEM private key
blocks), which catch a secret that leaked in from elsewhere, e.g. pasted by a model.

Everything is one compiled alternation regex, literal values longest first, so redacting a
megabyte transcript is one pass over the text, not one pass per secret.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, cast
from urllib.parse import quote

__all__ = [
    "MIN_ENV_SECRET_LEN",
    "MIN_EXTRA_SECRET_LEN",
    "PLACEHOLDER",
    "RedactingFilter",
    "Redactor",
    "default_redactor",
    "is_secret_name",
    "redact",
    "reset_default_redactor",
]

PLACEHOLDER = "[REDACTED]"
#: Shorter environment values are not treated as secrets ("true", "1", "main" …).
MIN_ENV_SECRET_LEN = 8
#: Shorter explicit values are ignored: redacting them would shred ordinary text.
MIN_EXTRA_SECRET_LEN = 4

_SECRET_NAME_RE = re.compile(
    r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|AUTH(?!OR)|(?:^|_)PAT(?:$|_)",
    re.IGNORECASE,
)
#: Secret names that the name rule alone would miss.
_SECRET_NAMES = frozenset({"GITHUB_TOKEN", "ACTIONS_RUNTIME_TOKEN", "GH_TOKEN", "GITHUB_PAT"})

# Well-known credential shapes. A pattern with a group named ``keep`` keeps that prefix
# (``Bearer ``, ``Authorization: ``) and redacts the rest of the match.
_PATTERNS: tuple[str, ...] = (
    # PEM private key blocks; an unterminated block loses the rest of its paragraph.
    r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----"
    r"(?:[\s\S]{0,30000}?-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----"
    r"|(?:[A-Za-z0-9+/=:,. \t-]|\\[nr]|\r?\n(?!\r?\n))*)",
    # GitHub tokens: classic/OAuth/user-to-server/server-to-server/refresh, fine-grained PATs.
    r"\bgh[pousr]_[A-Za-z0-9]{20,255}\b",
    r"\bgithub_pat_[A-Za-z0-9_]{20,255}",
    # OpenAI (sk-…, sk-proj-…, sk-svcacct-…) and Anthropic (sk-ant-…) keys.
    r"\bsk-[A-Za-z0-9_\-]{20,}",
    # Google API keys.
    r"\bAIza[0-9A-Za-z_\-]{30,}",
    # AWS access key ids.
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    # Authorization headers, any scheme: keep the header name, drop the credential.
    r"(?P<keep>\b(?i:authorization)[\"']?\s*[:=]\s*[\"']?(?:(?i:bearer|token|basic)\s+)?)"
    r"[^\s\"',;]{6,}",
    # Bearer credentials anywhere (curl -H, logs): at least 12 token characters, one a digit,
    # so that prose such as "Bearer authentication" survives.
    r"(?P<keep2>\b(?i:bearer)\s+)(?=[A-Za-z0-9\-._~+/]*\d)[A-Za-z0-9\-._~+/]{12,}=*",
    # Passwords in URLs: scheme://user:password@host.
    r"(?P<keep3>[a-z][a-z0-9+.\-]*://[^/\s:@]+:)[^/\s@]+(?=@)",
)

T = TypeVar("T")


def is_secret_name(name: str) -> bool:
    """Whether an environment variable of this name holds a secret (by name alone)."""
    upper = name.upper()
    return upper in _SECRET_NAMES or bool(_SECRET_NAME_RE.search(upper))


def _variants(value: str) -> set[str]:
    """The spellings a value takes in our output: raw, JSON-escaped, URL-encoded."""
    found = {value, json.dumps(value)[1:-1], quote(value, safe="")}
    return {v for v in found if v}


class Redactor:
    """Replaces known secret values and well-known credential shapes with ``[REDACTED]``.

    Args:
        values: Literal secrets to hide (empty and very short values are ignored).
        patterns: Also hide credentials by shape (tokens, keys, auth headers, PEM blocks).
    """

    def __init__(self, values: Iterable[str] = (), *, patterns: bool = True) -> None:
        secrets: set[str] = set()
        for value in values:
            stripped = value.strip()
            for candidate in (value, stripped):
                if len(candidate) >= MIN_EXTRA_SECRET_LEN:
                    secrets |= _variants(candidate)
        self._values = frozenset(secrets)
        self._patterns = patterns
        # Longest first, so a secret containing another is removed whole.
        literals = [re.escape(v) for v in sorted(secrets, key=lambda v: (-len(v), v))]
        alternatives = literals + (list(_PATTERNS) if patterns else [])
        self._regex = re.compile("|".join(alternatives)) if alternatives else None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()
    ) -> Redactor:
        """A redactor for the secrets in ``environ`` (default ``os.environ``) plus ``extra``."""
        env = os.environ if environ is None else environ
        values = [
            value
            for name, value in env.items()
            if is_secret_name(name) and len(value.strip()) >= MIN_ENV_SECRET_LEN
        ]
        return cls([*values, *extra])

    @property
    def values(self) -> frozenset[str]:
        """The literal strings this redactor hides (for diagnostics and tests; never log it)."""
        return self._values

    def with_values(self, *values: str) -> Redactor:
        """A new redactor that also hides ``values``."""
        return Redactor([*self._values, *values], patterns=self._patterns)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``[REDACTED]``."""
        if self._regex is None or not text:
            return text
        return self._regex.sub(_replacement, text)

    def redact_obj(self, obj: T) -> T:
        """Redact every string (keys included) in JSON-ready data: dicts, lists, tuples, str.

        Other values (numbers, booleans, ``None``) are returned as they are.
        """
        return cast(T, self._walk(obj))

    def _walk(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            return {self._walk(k): self._walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._walk(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self._walk(v) for v in obj)
        return obj


def _replacement(match: re.Match[str]) -> str:
    groups = match.groupdict()
    for name in ("keep", "keep2", "keep3"):
        if groups.get(name) is not None:
            return groups[name] + PLACEHOLDER
    return PLACEHOLDER


@functools.lru_cache(maxsize=1)
def default_redactor() -> Redactor:
    """The process-wide redactor built from ``os.environ`` (cached; see ``reset``)."""
    return Redactor.from_env()


def reset_default_redactor() -> None:
    """Forget the cached default redactor (after the environment changed, and in tests)."""
    default_redactor.cache_clear()


def redact(text: str) -> str:
    """``default_redactor().redact(text)``."""
    return default_redactor().redact(text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's formatted message (and exception text)."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self._redactor or default_redactor()
        record.msg = redactor.redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            formatter = logging.Formatter()
            record.exc_text = redactor.redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True
