"""Redactor and sanitizer speed (a benchmark, not a test): `python bench/redact.py`.

Prints, for the secret redactor (`orchestrator.redact`):

1. Throughput (MB/s) on adversarial inputs, the shapes that made a backtracking pattern
   retry from every position: long runs of `a`, of `a:`, `Bearer aaaa…`, a PEM header
   followed by junk, `x://` repeated, random base64, …. Linear time means a steady MB/s
   whatever the size; a quadratic pattern shows as MB/s falling with the size.
2. Throughput on ordinary text (a transcript-like chunk) for a few and for 50 secrets.
3. Compile time of the one alternation regex: typical CI environments, 50 secrets, one long
   JWT, one PEM private key (each secret adds its raw, JSON, URL, hex and base64 spellings).

and, for the untrusted-text cleaner (`orchestrator.sanitize.clean_untrusted`), throughput on
adversarial Markdown/HTML shapes.

Figures vary with the machine and its load: take the best of `--repeat` runs (default 3).
"""

from __future__ import annotations

import argparse
import base64
import random
import re
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator import redact as redact_module  # noqa: E402
from orchestrator.redact import Redactor  # noqa: E402
from orchestrator.sanitize import clean_untrusted  # noqa: E402

B64 = string.ascii_letters + string.digits + "+/"


def adversarial_redact_inputs(size: int) -> dict[str, str]:
    """About ``size`` characters of each shape that once made the redactor quadratic."""
    rng = random.Random(7)
    return {
        "a" * 8: "a" * size,
        "a:a:a:…": "a:" * (size // 2),
        "Bearer aaaa…": "Bearer " + "a" * size,
        "Bearer Bearer …": "Bearer " * (size // 7),
        "PEM header + junk": "-----BEGIN PRIVATE KEY-----" + "!x@ " * (size // 4),
        "PEM headers, blank lines": "-----BEGIN RSA PRIVATE KEY-----\n\n" * (size // 33),
        "PEM header + base64 body": "-----BEGIN PRIVATE KEY-----\n" + "QUJD" * (size // 4),
        "x://x://…": "x://" * (size // 4),
        "a+a+a+… (scheme chars)": "a+" * (size // 2),
        "x:// + long user": "x://" + "u" * size,
        "random base64": "".join(rng.choice(B64) for _ in range(size)),
        "Authorization: + spaces": "Authorization:" + " " * size + "!",
        "?token?token…": "?token" * (size // 6),
        "ghp_ghp_…": "ghp_" * (size // 4),
        "sk-sk-…": "sk-" * (size // 3),
    }


def adversarial_sanitize_inputs(size: int) -> dict[str, str]:
    """About ``size`` characters of Markdown/HTML shapes aimed at the cleaner's patterns."""
    return {
        "<a b<a b… (no >)": "<a b" * (size // 4),
        '<a x=" unclosed': '<a x="' + "y" * size,
        "<a x=\"<b y='… (no closing)": "<a x=\"<b y='" * (size // 12),
        '<div hidden title="…': '<div hidden title="' * (size // 19),
        "tags with quoted >": "<p title='>'>x</p>" * (size // 18),
        '[a]: b " lines': '[a]: b "\n' * (size // 9),
        "mixed unclosed titles": "[a]: b \"\n[a]: b '\n[a]: b (\n" * (size // 27),
        "[[[[…": "[" * size,
        "> - 1. prefixes": "> - 1. " * (size // 7),
    }


def best_time(function: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def compile_time(values: list[str], repeat: int) -> float:
    """Seconds to build a redactor for ``values`` from scratch (no cached regex)."""

    def build() -> None:
        redact_module._compile.cache_clear()
        re.purge()
        Redactor(values)

    return best_time(build, repeat)


def typical_env(rng: random.Random) -> dict[str, str]:
    """A CI job's secrets: a GitHub token, two ~1 KB JWTs, two API keys, a password."""
    token = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))
    jwt = "eyJ" + "".join(rng.choice(B64) for _ in range(1100))
    return {
        "GITHUB_TOKEN": "ghs_" + token,
        "ACTIONS_RUNTIME_TOKEN": jwt,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": jwt[::-1],
        "OPENAI_API_KEY": "sk-proj-" + token * 2,
        "ANTHROPIC_API_KEY": "sk-ant-api03-" + token[::-1] * 2,
        "DB_PASSWORD": "correct horse battery staple",
    }


def random_env(count: int, rng: random.Random) -> dict[str, str]:
    """``count`` random 40-character secrets."""
    alphabet = string.ascii_letters + string.digits + "-_"
    return {f"SVC{i}_TOKEN": "".join(rng.choice(alphabet) for _ in range(40)) for i in range(count)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=float, default=2.0, help="MB per adversarial input")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best is kept)")
    args = parser.parse_args()
    size = int(args.size * 1_000_000)
    rng = random.Random(1)
    env = typical_env(rng)
    redactor = Redactor.from_env(env)

    print(f"Redactor, adversarial inputs ({args.size:g} MB each, typical CI secrets):")
    for name, text in adversarial_redact_inputs(size).items():
        seconds = best_time(lambda text=text: redactor.redact(text), args.repeat)
        print(f"  {name:28s} {len(text) / seconds / 1e6:8.1f} MB/s")

    print("Redactor, linearity (MB/s should not fall with the size):")
    for mb in (0.5, 1.0, 2.0, 4.0):
        text = "a" * int(mb * 1_000_000)
        seconds = best_time(lambda text=text: redactor.redact(text), args.repeat)
        print(f"  {'a' * 8 + f' x {mb:g} MB':28s} {len(text) / seconds / 1e6:8.1f} MB/s")

    chunk = "lorem ipsum dolor sit amet, consectetur adipiscing elit 0123456789 " * 16
    print("Redactor, ordinary text (1.1 MB, one base64-encoded secret per 1 KB):")
    for label, secrets in (("typical CI (6 secrets)", env), ("50 random secrets", None)):
        current = secrets or random_env(50, rng)
        one = next(iter(current.values()))
        text = (chunk + base64.b64encode(one.encode()).decode() + "\n") * 1000
        many = Redactor.from_env(current)
        seconds = best_time(lambda text=text, many=many: many.redact(text), args.repeat)
        print(f"  {label:28s} {len(text) / seconds / 1e6:8.1f} MB/s")

    print("Redactor, compile time (all spellings, one regex):")
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\n"
        + "\n".join("".join(rng.choice(B64) for _ in range(64)) for _ in range(25))
        + "\n-----END RSA PRIVATE KEY-----\n"
    )
    cases = {
        "no secrets (patterns only)": [],
        "typical CI (6 secrets)": list(env.values()),
        "50 random secrets": list(random_env(50, rng).values()),
        "one 1.1 KB JWT": [env["ACTIONS_RUNTIME_TOKEN"]],
        f"one {len(pem)}-char PEM key": [pem],
    }
    for label, values in cases.items():
        seconds = compile_time(values, args.repeat)
        print(f"  {label:28s} {seconds * 1000:8.1f} ms")

    print(f"clean_untrusted, adversarial inputs ({args.size / 4:g} MB each):")
    for name, text in adversarial_sanitize_inputs(size // 4).items():
        seconds = best_time(lambda text=text: clean_untrusted(text), args.repeat)
        print(f"  {name:28s} {len(text) / seconds / 1e6:8.1f} MB/s")


if __name__ == "__main__":
    main()
