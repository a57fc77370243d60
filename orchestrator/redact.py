"""Secrets out: replace every secret with ``[REDACTED]`` before the program writes anything.

Secrets come from the environment only (DESIGN.md), so the environment says what to hide:

* the value of every variable whose *name* looks secret (:func:`is_secret_name`: ``*_TOKEN``,
  ``*_API_KEY``, ``*SECRET*``, passwords and pass phrases, ``*_PASS``/``*_PW``/``*_PWD``,
  credentials, private keys, cookies, webhooks, ``*_DSN``, ``DATABASE_URL`` and connection
  strings) that is at least :data:`MIN_ENV_SECRET_LEN` characters long;
* whatever the name, a value holding a credential: a URL with a password
  (``redis://user:pw@host``, ``HTTPS_PROXY``) or a connection string with ``Password=``; both the
  whole value and the password alone are hidden.

Each secret is hidden in every spelling it takes in our output: raw, JSON-escaped, URL-encoded,
hexadecimal (lower and upper case) and base64 (standard and URL-safe, padded or not). Base64 of a
secret embedded in a longer payload depends on where the secret starts, so the three byte
offsets are covered and, for each, the characters that depend on the secret alone (the stable
middle) are hidden. The raw value may be broken by whitespace between any two characters (a
line wrapped in a terminal, a value split by a line break and indented), and its standard
base64 from offset 0 (what ``base64`` or ``openssl base64`` print for it) where those tools wrap,
every 76 or 64 characters: a wrapped secret is hidden too, whitespace included. The other
spellings must be on one line: a gap costs the regex compiler about ten times a plain
character, and they are rarely wrapped. Encoded
spellings are only made for secrets of at least :data:`MIN_ENV_SECRET_LEN` characters: shorter
ones would be a handful of characters that ordinary text contains by chance.

On top of that come explicit extra values and the shapes of well-known credentials, which catch
a secret that leaked in from elsewhere, e.g. pasted by a model: GitHub, OpenAI, Anthropic,
Google and AWS keys; ``Authorization``, ``X-Api-Key``, ``Api-Key``, ``X-Goog-Api-Key``,
``X-Auth-Token`` and ``Private-Token`` headers (the header name is kept); ``Bearer`` credentials
that look like one (see below); passwords in URLs; credentials in query parameters
(``?access_token=``, ``&token=``, ``api_key=``, ``key=``, ``sig=`` …, the name is kept); PEM and
PGP private key blocks.

A word after ``Bearer`` is taken for a credential when it has at least 20 token characters, or
at least 12 with a digit or an upper-case letter after its first character. Prose such as
"Bearer authentication", "Bearer Authentication" or "Bearer tokens are …" survives; a random
token of 12+ characters almost always has a digit or an inner capital.

Everything is one compiled alternation regex, so redacting a megabyte transcript is one pass
over the text, not one pass per secret. The literal spellings come first, factored into a trie
(one branch per distinct next character; a longer spelling is preferred to a shorter one at the
same position, i.e. longest first), then the patterns. Every part is linear in the length of
the text: quantifiers are bounded or possessive, and a pattern can only scan far ahead when it
is bound to match what it scanned (that text is then consumed), so no input makes the engine
rescan the same characters from every position. A literal costs at most its own length per
position, and secrets come from the environment, not from the text.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, cast
from urllib.parse import quote, unquote

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
#: Shorter environment values are not treated as secrets ("true", "1", "main" …); shorter
#: secrets get no encoded (hex, base64) spellings either.
MIN_ENV_SECRET_LEN = 8
#: Shorter explicit values are ignored: redacting them would shred ordinary text.
MIN_EXTRA_SECRET_LEN = 4

_SECRET_NAME_RE = re.compile(
    r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|PRIVATE|AUTH(?!OR)|COOKIE|WEBHOOK"
    r"|DATABASE_URL|CONNECTION_?STRING|CONN_?STR"
    # Whole words only: PATH, BYPASS_CACHE and PASSENGER_ENV are not secrets.
    r"|(?:^|_)(?:PAT|PASS|PW|DSN|DB_URL)(?:$|_)"
    # MYSQL_PWD, DB_PWD; but not PWD and OLDPWD, the working directories.
    r"|_PWD(?:$|_)",
    re.IGNORECASE,
)
#: Secret names that the name rule alone would miss.
_SECRET_NAMES = frozenset({"GITHUB_TOKEN", "ACTIONS_RUNTIME_TOKEN", "GH_TOKEN", "GITHUB_PAT"})

# Credentials inside an environment value, whatever the variable's name: the password of a URL
# (scheme://user:password@host) and the Password= of an ADO/ODBC-style connection string.
_URL_PASSWORD_RE = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9+.\-]{0,31}+://[^/\s:@]*+:([^/\s@]++)@"
)
_CONN_PASSWORD_RE = re.compile(r"(?:^|;)[ \t]*+(?i:password|pwd)[ \t]*+=[ \t]*+([^;]++)")

# Characters of an RFC 6750 token (token68), for the Bearer pattern.
_T = r"[A-Za-z0-9\-._~+/]"
# After the first character of a pattern: that character starts a word (a cheap ``\b``).
_WORD_START = r"(?<!\w.)"
# The tail of a credential header: separator, optional scheme, then the credential (group).
_HEADER_VALUE = (
    r"[\"']?\s{0,16}[:=]\s{0,16}[\"']?(?:(?i:bearer|token|basic)\s{1,16})?([^\s\"',;]{6,}+)"
)

# Well-known credential shapes. A pattern may have one capturing group: then only that group
# (which ends the match) is redacted and what precedes it (``Bearer ``, ``Authorization: ``,
# ``?token=``) is kept.
#
# Linear time: an unbounded quantifier is possessive and ends the pattern (or is followed by a
# character it cannot match), so a scan that went far is always a match and its text is
# consumed; everything else is bounded.
#
# Speed: every pattern starts with a literal character or a character set, never with ``\b``,
# a lookbehind or a group. The engine's alternation then skips a pattern after one character
# comparison at each position, instead of entering it; the word-boundary check comes right
# after that first character (``_WORD_START``).
_PATTERNS: tuple[str, ...] = (
    # PEM/PGP private key blocks: the body (base64 lines, "Proc-Type:"-style headers, escaped
    # "\n" of JSON) up to the END line; a blank line continues the block only when base64
    # follows (encrypted PEM, PGP armour). An unterminated block loses the rest of its
    # paragraph.
    r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[A-Za-z0-9+/=:,. \t]|-(?!----END)|\\[nr]|\r?\n(?![ \t]*+\r?\n)"
    r"|(?:\r?\n[ \t]*+){2,3}(?=[A-Za-z0-9+/]{16}))*+"
    r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)?",
    # GitHub tokens: classic/OAuth/user-to-server/server-to-server/refresh, fine-grained PATs.
    rf"g{_WORD_START}(?:h[pousr]_[A-Za-z0-9]{{20,}}+|ithub_pat_[A-Za-z0-9_]{{20,}}+)",
    # OpenAI (sk-…, sk-proj-…, sk-svcacct-…) and Anthropic (sk-ant-…) keys.
    rf"s{_WORD_START}k-[A-Za-z0-9_\-]{{20,}}+",
    # Google API keys and AWS access key ids.
    rf"A{_WORD_START}(?:Iza[0-9A-Za-z_\-]{{30,}}+|[KS]IA[0-9A-Z]{{16}}\b)",
    # Credential headers: keep the header name, drop the credential. By first letter:
    # (Proxy-)Authorization, Api-Key, Private-Token, X-Api-Key, X-Goog-Api-Key, X-Auth-Token.
    rf"[Aa]{_WORD_START}(?i:uthorization|pi-key){_HEADER_VALUE}",
    rf"[Pp]{_WORD_START}(?i:roxy-authorization|rivate-token){_HEADER_VALUE}",
    rf"[Xx]{_WORD_START}(?i:-api-key|-goog-api-key|-auth-token){_HEADER_VALUE}",
    # Bearer credentials anywhere (curl -H, logs): 12+ token characters with a digit or an
    # inner capital, or 20+ token characters; see the module docstring. The lookaheads are
    # bounded (20 characters), the token itself is consumed.
    rf"[Bb]{_WORD_START}(?i:earer)\s{{1,8}}"
    rf"(?={_T}{{20}}|(?={_T}{{12}})(?:[0-9]|{_T}[a-z\-._~+/]{{0,18}}[0-9A-Z]))({_T}++=*+)",
    # Passwords in URLs: scheme://user:password@host (the user may be empty). Anchored on the
    # ":" of "://" (after a scheme character), not on the scheme: a long word is then not
    # rescanned from each of its letters, and the scheme, outside the match, is kept anyway.
    r":(?<=[A-Za-z0-9+.\-]:)//[^/\s:@]*+:([^/\s@]++)(?=@)",
    # Credentials in query strings and fragments (OAuth implicit flow): keep the name. ";" also
    # separates parameters, and ends "&amp;" in HTML-escaped URLs.
    r"[?&#;](?i:access_token|refresh_token|id_token|auth_token|token|api_key|apikey|api-key|key"
    r"|client_secret|secret|password|passwd|pwd|sig|signature|x-amz-signature"
    r"|x-amz-security-token|x-amz-credential)=([^&#\s\"'<>)\]]++)",
)

# Between two characters of a wrap-tolerant spelling: optional whitespace (wrapped lines).
# Possessive, and such spellings hold no whitespace of their own, so no backtracking is needed.
_GAP = r"\s*+"
# Where a spelling may be broken by whitespace: nowhere, at the columns where base64 tools wrap
# their output (every 64 characters: PEM, openssl; every 76: base64, MIME), or anywhere.
_NO_GAPS, _GAPS_AT_COLUMNS, _GAPS_ANYWHERE = 0, 1, 2
_WRAP_COLUMNS = (64, 76)
# Trie edge keys: a character, or _GAP_EDGE + the character when whitespace may come before it
# (two characters, so never confused with a plain edge); "" marks the end of a spelling.
_GAP_EDGE = "\0"
_END = ""

T = TypeVar("T")
_Trie = dict[str, "_Trie"]


def is_secret_name(name: str) -> bool:
    """Whether an environment variable of this name holds a secret (by name alone).

    Args:
        name: The variable's name, any case.

    Returns:
        True for names such as ``*_TOKEN``, ``*_API_KEY``, ``*SECRET*``, ``*PASSWORD*``,
        ``*PASSPHRASE*``, ``*_PASS``, ``*_PW``, ``*_PWD``, ``*_DSN``, ``*WEBHOOK*``,
        ``DATABASE_URL`` and ``*CONNECTION_STRING*``; False for ``PATH``, ``PWD`` and the like.
    """
    upper = name.upper()
    return upper in _SECRET_NAMES or bool(_SECRET_NAME_RE.search(upper))


def _embedded_credentials(value: str) -> list[str]:
    """The credentials inside an environment value, with the value itself if there are any."""
    found = [m.group(1) for m in _URL_PASSWORD_RE.finditer(value)]
    found += [unquote(password) for password in found]
    found += [m.group(1).strip().strip("'\"") for m in _CONN_PASSWORD_RE.finditer(value)]
    return [value, *found] if found else []


_URLSAFE = str.maketrans("+/", "-_")


def _base64_spellings(raw: bytes, offset: int, *, urlsafe: bool) -> set[str]:
    """Base64 spellings of ``raw`` when it starts at byte ``offset`` (mod 3) of a payload.

    The characters that also encode bits of the bytes before the secret are dropped, and so
    is the last character if it also encodes bits of what follows: what is left is the stable
    middle. The secret may also end the payload; then the last characters and the padding
    are known too, so the full tail, padded and unpadded, is a spelling as well.
    """
    encoded = base64.b64encode(b"\0" * offset + raw).decode()
    if urlsafe:
        encoded = encoded.translate(_URLSAFE)
    first = -(-8 * offset // 6)  # characters touched by the bytes before
    stable = 8 * (offset + len(raw)) // 6  # characters untouched by the bytes after
    return {encoded[first:stable], encoded[first:], encoded[first:].rstrip("=")}


def _spellings(value: str) -> dict[str, int]:
    """The spellings a value takes in our output, each with where it may be wrapped.

    The raw value may be broken by whitespace anywhere (wrapped in a terminal, indented, split
    by a line break). Its standard base64 from offset 0 (what ``base64`` or ``openssl`` print
    for the value) may be broken where those tools wrap, every 64 or 76 characters. The other
    spellings must be on one line: JSON-escaped and URL-encoded always; hex (lower, upper) and
    the other base64 spellings (URL-safe, offsets 1 and 2; see :func:`_base64_spellings`) when
    the value has at least :data:`MIN_ENV_SECRET_LEN` characters. Gaps are kept where lines
    really break because each one costs the regex compiler about ten times a plain character.
    """
    found = dict.fromkeys({json.dumps(value)[1:-1], quote(value, safe="")}, _NO_GAPS)
    if len(value) >= MIN_ENV_SECRET_LEN:
        raw = value.encode()
        plain = {raw.hex(), raw.hex().upper(), *_base64_spellings(raw, 0, urlsafe=True)}
        for offset in (1, 2):
            plain |= _base64_spellings(raw, offset, urlsafe=False)
            plain |= _base64_spellings(raw, offset, urlsafe=True)
        found.update(dict.fromkeys(plain, _NO_GAPS))
        found.update(dict.fromkeys(_base64_spellings(raw, 0, urlsafe=False), _GAPS_AT_COLUMNS))
    found[value] = _GAPS_ANYWHERE
    return found


def _trie_pattern(spellings: Mapping[str, int]) -> str:
    """One regex alternation matching any of the spellings.

    The spellings are factored into a trie: at each position the engine tries one branch per
    distinct next character instead of every spelling, and at each node the longer
    continuation is tried before stopping there, so a secret containing another is removed
    whole (longest first). An edge where the spelling may be wrapped (see :func:`_spellings`)
    allows whitespace before its character; whitespace inside a spelling that may be wrapped
    anywhere is dropped (the gaps match it). Built without recursion: a spelling can be
    thousands of characters long (a private key).
    """
    root: _Trie = {}
    for spelling, gaps in spellings.items():
        if gaps == _GAPS_ANYWHERE:
            spelling = "".join(spelling.split())
        if len(spelling) < MIN_EXTRA_SECRET_LEN:
            continue  # e.g. a value made of a few characters spread out by spaces
        if gaps == _GAPS_ANYWHERE:
            keys = [spelling[0], *(_GAP_EDGE + ch for ch in spelling[1:])]
        elif gaps == _GAPS_AT_COLUMNS:
            keys = list(spelling)
            for column in _WRAP_COLUMNS:
                for i in range(column, len(keys), column):
                    keys[i] = _GAP_EDGE + spelling[i]
        else:
            keys = list(spelling)
        node = root
        for key in keys:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            node = child
        node[_END] = {}
    out: list[str] = []
    # Work items: a string to write, or a node whose continuation is to be written.
    stack = _continuation(root, top=True)[::-1]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        else:
            stack += _continuation(item)[::-1]
    return "".join(out)


def _edge(key: str) -> str:
    """The regex for one trie edge: its character, escaped, after a gap for a gap edge."""
    return _GAP + re.escape(key[1]) if len(key) == 2 else re.escape(key)


def _continuation(node: _Trie, *, top: bool = False) -> list[str | _Trie]:
    """The regex after ``node``'s character, one level deep: strings and the child nodes."""
    # Most of a trie is chains of single characters (the tail of each spelling): write a
    # chain in one go, without a work item per character.
    chain: list[str] = []
    while len(node) == 1 and _END not in node:
        ((key, node),) = node.items()
        chain.append(key)
    if chain:
        text = "".join(chain)
        gapless = _GAP_EDGE not in text
        written = re.escape(text) if gapless else "".join(_edge(key) for key in chain)
        return [written, *_continuation(node)]
    plain = sorted(key for key in node if len(key) == 1)
    gapped = sorted(key for key in node if len(key) == 2)
    alternatives: list[list[str | _Trie]] = [[re.escape(key), node[key]] for key in plain]
    if gapped:
        inner = _joined([[re.escape(key[1]), node[key]] for key in gapped])
        alternatives.append([_GAP, *(["(?:", *inner, ")"] if len(gapped) > 1 else inner)])
    items = _joined(alternatives)
    if top or not items:
        return items
    if _END in node:
        # An empty last alternative: stop here only if no longer spelling matches.
        return ["(?:", *items, "|)"]
    return ["(?:", *items, ")"] if len(alternatives) > 1 else items


def _joined(alternatives: list[list[str | _Trie]]) -> list[str | _Trie]:
    items: list[str | _Trie] = []
    for i, alternative in enumerate(alternatives):
        items += ["|", *alternative] if i else alternative
    return items


@functools.lru_cache(maxsize=32)
def _compile(
    secrets: frozenset[str], patterns: bool
) -> tuple[frozenset[str], re.Pattern[str] | None]:
    """The spellings of ``secrets`` and the one regex that hides them.

    Cached: ``with_values`` is called per request, mostly with the same token.
    """
    spellings: dict[str, int] = {}
    for secret in secrets:
        for spelling, gaps in _spellings(secret).items():
            # The same text may be a raw value of one secret and a plain spelling of another.
            spellings[spelling] = max(gaps, spellings.get(spelling, _NO_GAPS))
    trie = _trie_pattern(spellings)
    alternatives = ([trie] if trie else []) + (list(_PATTERNS) if patterns else [])
    regex = re.compile("|".join(alternatives)) if alternatives else None
    return frozenset(spellings), regex


class Redactor:
    """Replaces known secret values and well-known credential shapes with ``[REDACTED]``.

    Args:
        values: Literal secrets to hide (empty and very short values are ignored). Each is
            hidden in all its spellings (see the module docstring).
        patterns: Also hide credentials by shape (tokens, keys, auth headers, PEM blocks).
    """

    def __init__(self, values: Iterable[str] = (), *, patterns: bool = True) -> None:
        secrets: set[str] = set()
        for value in values:
            stripped = value.strip()
            for candidate in (value, stripped):
                if len(candidate) >= MIN_EXTRA_SECRET_LEN:
                    secrets.add(candidate)
        self._secrets = frozenset(secrets)
        self._patterns = patterns
        self._values, self._regex = _compile(self._secrets, patterns)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()
    ) -> Redactor:
        """A redactor for the secrets in ``environ`` plus ``extra``.

        Args:
            environ: The environment (default ``os.environ``). A value is secret when its name
                is (:func:`is_secret_name`); credentials inside any value (a URL's password, a
                connection string's ``Password=``) are secret whatever the name.
            extra: More literal secrets.

        Returns:
            The redactor.
        """
        env = os.environ if environ is None else environ
        values: list[str] = []
        for name, value in env.items():
            if is_secret_name(name):
                values.append(value)
            values += _embedded_credentials(value)
        values = [v for v in values if len(v.strip()) >= MIN_ENV_SECRET_LEN]
        return cls([*values, *extra])

    @property
    def values(self) -> frozenset[str]:
        """Every literal spelling this redactor hides.

        For diagnostics and tests; never log it.
        """
        return self._values

    def with_values(self, *values: str) -> Redactor:
        """A new redactor that also hides ``values``.

        Args:
            *values: More literal secrets.

        Returns:
            The new redactor (spellings are made from the secrets, not from earlier spellings).
        """
        return Redactor([*self._secrets, *values], patterns=self._patterns)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``[REDACTED]``.

        Args:
            text: Any text.

        Returns:
            The text with secrets (and, in patterns, everything but the kept prefix) replaced.
        """
        if self._regex is None or not text:
            return text
        return self._regex.sub(_replacement, text)

    def redact_obj(self, obj: T) -> T:
        """Redact every string (keys included) in JSON-ready data: dicts, lists, tuples, str.

        Other values (numbers, booleans, ``None``) are returned as they are.

        Args:
            obj: The data; not modified.

        Returns:
            A redacted copy.
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
    # A pattern has at most one group, the credential that ends the match; what precedes it is
    # kept. Literal spellings have none: all of the match goes.
    group = match.lastindex
    if group is None:
        return PLACEHOLDER
    return match.string[match.start() : match.start(group)] + PLACEHOLDER


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
