"""Screenshots of a request: GitHub hosts only, size- and type-checked, no token to user content."""

from __future__ import annotations

import struct
import zlib
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest

from orchestrator.contracts import Request
from orchestrator.github.client import GitHubClient
from orchestrator.github.images import (
    HostPolicy,
    ImageFetch,
    fetch_request_images,
    has_image_links,
    image_links,
    sniff,
)
from orchestrator.prompts import request_images
from orchestrator.redact import Redactor
from orchestrator.runfolder import RunFolder
from tests.fakes.github_fake import FakeGitHub, serve_github
from tests.fakes.loopback import LoopbackServer, Reply
from tests.fakes.loopback import Request as Seen

TOKEN = "tok-images-0a1b2c3d4e5f"


def png(seed: int = 0) -> bytes:
    """A real 1×1 PNG (its colour varies with ``seed``, so its hash does)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    pixel = zlib.compress(bytes([0, seed % 256, 0, 0]))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixel) + chunk(b"IEND", b"")
    )


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20
GIF = b"GIF89a\x01\x00\x01\x00" + b"\x00" * 10
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 10


def request_for(number: int = 1) -> Request:
    return Request(source="issues", action="labeled", act=True, reason="test", issue_number=number)


def issue_event(body: str, number: int = 1) -> dict[str, Any]:
    return {"action": "labeled", "issue": {"number": number, "body": body}}


class Other:
    """A server that is not GitHub: it must never be asked for anything."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.server = LoopbackServer(self._handle)

    def _handle(self, request: Seen) -> Reply:
        self.seen.append(request)
        return Reply(200, png(99), headers={"Content-Type": "image/png"})

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def other() -> Any:
    found = Other()
    with found.server:
        yield found


def fetch(
    fake: FakeGitHub,
    url: str,
    out: Path,
    event: dict[str, Any],
    **limits: int,
) -> ImageFetch:
    client = GitHubClient("Codertocat/Hello-World", token=TOKEN, api_url=url, redactor=Redactor())
    return fetch_request_images(client, request_for(), event, RunFolder(out), **limits)


def test_images_in_an_issue_are_fetched_into_the_run_folder(tmp_path: Path) -> None:
    with serve_github() as (fake, server):
        first = fake.add_attachment(png(1))
        second = fake.add_attachment(JPEG, content_type="application/octet-stream")
        body = (
            f"The button is cut off:\n\n![login page]({first})\n\n"
            f'<img width="300" alt="error dialog" src="{second}" />\n'
            f"Same again: ![dup]({first})"
        )
        fake.add_issue(1, body)
        result = fetch(fake, server.url, tmp_path, issue_event(body))
    assert result.skipped == []
    assert [(r.name, r.media_type) for r in result.images] == [
        ("login page", "image/png"),
        ("error dialog", "image/jpeg"),
    ]
    for ref, data in zip(result.images, (png(1), JPEG), strict=True):
        assert ref.sha256 == sha256(data).hexdigest() and ref.size == len(data)
        assert (tmp_path / ref.path).read_bytes() == data
        assert ref.path.startswith("images/") and "jwt" not in ref.source_url
    (api,) = fake.calls
    assert api.template == "/repos/{owner}/{repo}/issues/{issue_number}"
    assert "full+json" in api.headers["accept"]
    assert api.headers["authorization"] == f"token {TOKEN}"
    # The signed user-content URLs carry their own credential: the token never goes there.
    assert len(fake.downloads) == 2
    assert all("authorization" not in seen.headers for seen in fake.downloads)
    assert all(TOKEN not in str(seen.headers) for seen in fake.downloads)


def test_images_of_a_comment_and_its_issue(tmp_path: Path) -> None:
    with serve_github() as (fake, server):
        in_comment = fake.add_attachment(GIF, content_type="image/gif")
        in_issue = fake.add_attachment(WEBP, content_type="image/webp")
        comment_body = f"/orchestrate\n![trace]({in_comment})"
        comment_id = fake.add_comment(1, comment_body, login="Codertocat")
        fake.add_issue(1, f"Steps\n![chart]({in_issue})")
        event = {
            "comment": {"id": comment_id, "body": comment_body},
            "issue": {"number": 1, "body": f"Steps\n![chart]({in_issue})"},
        }
        result = fetch(fake, server.url, tmp_path, event)
    assert [(r.name, r.media_type) for r in result.images] == [
        ("trace", "image/gif"),
        ("chart", "image/webp"),
    ]
    assert [c.template for c in fake.calls] == [
        "/repos/{owner}/{repo}/issues/comments/{comment_id}",
        "/repos/{owner}/{repo}/issues/{issue_number}",
    ]


@pytest.mark.parametrize("camo", [True, False])
def test_off_host_images_are_never_requested(tmp_path: Path, other: Other, camo: bool) -> None:
    with serve_github(FakeGitHub(camo=camo)) as (fake, server):
        kept = fake.add_attachment(png(2))
        hop = fake.add_attachment(b"", redirect_to=f"{other.url}/hop.png")
        body = (
            f"![elsewhere]({other.url}/shot.png?x=1) ![evil](https://evil.example/a.png) "
            f"![ok]({kept}) ![redirected]({hop})"
        )
        fake.add_issue(1, body)
        result = fetch(fake, server.url, tmp_path, issue_event(body))
    assert other.seen == []
    assert not [seen for seen in fake.downloads if seen.path.startswith("/camo/")]
    assert [r.name for r in result.images] == ["ok"]
    reasons = {skip.name: skip.reason for skip in result.skipped}
    assert set(reasons) == {"elsewhere", "evil", "redirected"}
    assert "evil.example is not a GitHub host" in reasons["evil"]
    assert "127.0.0.1 is not a GitHub host" in reasons["elsewhere"]
    assert "127.0.0.1 is not a GitHub host" in reasons["redirected"]
    assert all("?" not in skip.url for skip in result.skipped)


def test_oversize_non_image_and_too_many_are_skipped_with_a_reason(tmp_path: Path) -> None:
    with serve_github() as (fake, server):
        big = fake.add_attachment(png(3) + b"\x00" * 2000)
        html = fake.add_attachment(b"<html>not an image</html>", content_type="image/png")
        links = [fake.add_attachment(png(10 + n)) for n in range(3)]
        body = f"![big]({big}) ![page]({html}) " + " ".join(
            f"![shot {n}]({link})" for n, link in enumerate(links)
        )
        fake.add_issue(1, body)
        result = fetch(fake, server.url, tmp_path, issue_event(body), max_bytes=1000, max_images=2)
    assert [r.name for r in result.images] == ["shot 0", "shot 1"]
    reasons = {skip.name: skip.reason for skip in result.skipped}
    assert "too big" in reasons["big"] and "1000" in reasons["big"]
    assert reasons["page"] == "not a PNG, JPEG, GIF or WebP image"
    assert "at most 2 images" in reasons["shot 2"]
    # Skipped images left nothing behind.
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == sorted(
        Path(r.path).name for r in result.images
    )


def test_failures_never_raise(tmp_path: Path) -> None:
    with serve_github() as (fake, server):
        gone = fake.add_attachment(png(4), status=404)
        body = f"![gone]({gone})"
        missing_issue = fetch(fake, server.url, tmp_path, issue_event(body, number=1))
        fake.add_issue(1, body)
        missing_file = fetch(fake, server.url, tmp_path, issue_event(body))
    assert missing_issue.images == [] and "could not read its HTML" in missing_issue.notes()[0]
    assert missing_issue.skipped[0].reason.count("404") == 1
    assert [s.reason for s in missing_file.skipped] == ["HTTP 404"]


def test_no_image_in_the_text_costs_no_call(tmp_path: Path) -> None:
    with serve_github() as (fake, server):
        fake.add_issue(1, "just text")
        result = fetch(fake, server.url, tmp_path, issue_event("just text"))
    assert result == ImageFetch() and fake.calls == []


def test_stored_images_read_back_for_agents(tmp_path: Path) -> None:
    """``prompts.request_images`` trusts the files only when the hash matches."""
    from orchestrator.contracts import Plan

    with serve_github() as (fake, server):
        link = fake.add_attachment(png(5))
        fake.add_issue(1, f"![s]({link})")
        result = fetch(fake, server.url, tmp_path, issue_event(f"![s]({link})"))
    request = request_for().model_copy(update={"images": result.images})
    plan = Plan.model_validate(
        {
            "run_id": "r1",
            "status": "skipped",
            "reason": "x",
            "created_at": "2026-01-01T00:00:00Z",
            "request": request.model_dump(),
        }
    )
    (image,) = request_images(plan, tmp_path)
    assert image.data == png(5) and image.name == "s"
    (tmp_path / result.images[0].path).write_bytes(png(6))
    assert request_images(plan, tmp_path) == ()


def test_links_hosts_and_magic() -> None:
    html = (
        '<p><img class="emoji" src="https://github.githubassets.com/e.png" alt=":+1:">'
        '<img src="https://private-user-images.githubusercontent.com/1/2.png?jwt=abc" alt="">'
        '<img src="https://camo.githubusercontent.com/x" data-canonical-src="https://a.example/y">'
        '<img src="https://github.com/user-attachments/assets/u" alt="  two\u200b  words ">'
        "</p>"
    )
    links = image_links(html)
    assert [link.name for link in links] == ["2.png", "y", "two words"]
    assert links[1].canonical == "https://a.example/y"
    policy = HostPolicy("https://api.github.com/")
    assert policy.refusal("https://github.com/user-attachments/assets/u") is None
    assert policy.refusal("https://private-user-images.githubusercontent.com/1/2.png") is None
    assert policy.refusal("https://api.github.com/x") is None
    for url in (
        "http://github.com/x",
        "https://github.com:8443/x",
        "https://githubusercontent.com.evil.example/x",
        "https://user@github.com/x",
        "file:///etc/passwd",
        "https://evilgithub.com/x",
    ):
        assert policy.refusal(url) is not None, url
    assert policy.sends_token("https://api.github.com/repos")
    assert policy.sends_token("https://github.com/user-attachments/assets/u")
    assert not policy.sends_token("https://github.com/user-attachments/assets/u?jwt=1")
    assert not policy.sends_token("https://private-user-images.githubusercontent.com/1.png")
    ghes = HostPolicy("https://ghe.example/api/v3", "https://ghe.example")
    assert ghes.refusal("https://ghe.example/storage/user/1/files/2") is None
    assert ghes.refusal("https://ghe.example:444/x") is not None
    assert ghes.sends_token("https://ghe.example/storage/user/1/files/2")
    assert not ghes.sends_token("https://github.com/user-attachments/assets/u")
    assert sniff(png(0)) == ("image/png", "png")
    assert sniff(JPEG) == ("image/jpeg", "jpg")
    assert sniff(GIF) == ("image/gif", "gif")
    assert sniff(WEBP) == ("image/webp", "webp")
    assert sniff(b"<svg></svg>") is None and sniff(b"") is None
    assert (
        has_image_links("see ![x](y)")
        and not has_image_links("plain")
        and not has_image_links(None)
    )
