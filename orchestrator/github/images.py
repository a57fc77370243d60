"""Screenshots of a request: found in the issue or comment, fetched from GitHub, kept by hash.

The plan job reads the rendered HTML of the triggering issue or comment (``body_html``, asked
for with the ``full+json`` media type): its ``<img src>`` are the signed, directly downloadable
URLs of the attachments, also in private repositories. Each image is downloaded once into the
run folder as ``images/<sha256>.<ext>`` and named in ``Request.images``; task jobs read it from
there (``prompts.request_images``).

Safety rules, all enforced here:

* Only GitHub's own hosts are fetched from: ``github.com``, ``*.githubusercontent.com`` and the
  configured server and API (``GITHUB_SERVER_URL``, ``GITHUB_API_URL``: GitHub Enterprise
  Server). Any other link, and an image GitHub proxies for another site (its
  ``data-canonical-src``), is skipped and never requested. Redirects are followed by hand, at
  most :data:`MAX_REDIRECTS`, each hop checked the same way.
* The job's token goes to the API and server hosts only, and never with a signed URL (one that
  carries its own ``jwt``/signature): user-content hosts never see it.
* At most :data:`MAX_IMAGES` images of at most :data:`MAX_IMAGE_BYTES` each; the size cap holds
  while streaming. The type is read from the bytes (PNG, JPEG, GIF, WebP), never from headers.

Nothing here fails the plan: an image that cannot be had is a :class:`SkippedImage` with the
reason, and the run goes on without it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from hashlib import sha256
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit, urlunsplit

from orchestrator.contracts import ImageRef, Request
from orchestrator.extras import require
from orchestrator.fileio import write_atomic
from orchestrator.runfolder import RunFolder
from orchestrator.sanitize import clean_untrusted

try:
    import httpx
except ModuleNotFoundError:  # a lean install without the github extra
    require("github", source="GitHub", what="fetching the request's images")
    raise

if TYPE_CHECKING:
    from orchestrator.github.client import GitHubClient

__all__ = [
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "MAX_REDIRECTS",
    "HostPolicy",
    "ImageFetch",
    "ImageLink",
    "SkippedImage",
    "fetch_images",
    "fetch_request_images",
    "has_image_links",
    "image_links",
    "sniff",
]

#: Largest image kept, in bytes; a bigger one is skipped (checked while streaming).
MAX_IMAGE_BYTES = 5 * 1024 * 1024
#: Images kept per request; later ones are skipped.
MAX_IMAGES = 8
#: Redirect hops followed per image, each checked against the allowed hosts.
MAX_REDIRECTS = 3
#: Downloads tried per request, kept or not, as a multiple of ``max_images``.
ATTEMPTS_PER_IMAGE = 2
#: Longest image name kept (alt text is user text).
MAX_NAME_CHARS = 100

MediaType = Literal["image/png", "image/jpeg", "image/gif", "image/webp"]

_GITHUB_HOST = "github.com"
_USER_CONTENT_SUFFIX = ".githubusercontent.com"
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Query parameters that make a URL carry its own credential.
_SIGNATURE_PARAMS = frozenset({"jwt", "token", "x-amz-signature", "signature", "sig"})
#: Text that may render as an image: only then is the rendered HTML asked for.
_IMAGE_HINT = re.compile(
    r"!\[|<img\b|/user-attachments/assets/|user-images\.githubusercontent\.com", re.IGNORECASE
)
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ImageLink:
    """An ``<img>`` of the rendered body.

    Attributes:
        url: Its ``src``.
        name: Its alt text (or the file name of the URL).
        canonical: ``data-canonical-src``: where GitHub's image proxy got it from.
    """

    url: str
    name: str
    canonical: str | None = None


@dataclass(frozen=True)
class SkippedImage:
    """An image left out of the request, and why."""

    name: str
    url: str
    reason: str

    def describe(self) -> str:
        """One line for the plan output."""
        return f"image skipped: {self.name} ({self.url}): {self.reason}"


@dataclass
class ImageFetch:
    """What fetching a request's images gave."""

    images: list[ImageRef] = field(default_factory=list)
    skipped: list[SkippedImage] = field(default_factory=list)

    def notes(self) -> list[str]:
        """One line per kept and skipped image, for the plan output."""
        kept = [f"image: {ref.name} → {ref.path} ({ref.size} bytes)" for ref in self.images]
        return kept + [skip.describe() for skip in self.skipped]


def has_image_links(text: str | None) -> bool:
    """Whether Markdown ``text`` may show an image (worth asking GitHub for its HTML)."""
    return bool(text) and _IMAGE_HINT.search(text or "") is not None


class _ImgParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[ImageLink] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "img":
            return
        values = {key: value or "" for key, value in attrs}
        src = values.get("src", "").strip()
        if not src or "emoji" in values.get("class", "").split():
            return
        canonical = values.get("data-canonical-src", "").strip() or None
        self.links.append(ImageLink(src, _name(values.get("alt", ""), canonical or src), canonical))


def image_links(body_html: str) -> list[ImageLink]:
    """The ``<img>`` of rendered HTML, in order, without duplicates and emoji.

    Args:
        body_html: GitHub's ``body_html`` of an issue or comment.
    """
    parser = _ImgParser()
    parser.feed(body_html)
    parser.close()
    seen: set[str] = set()
    unique = []
    for link in parser.links:
        if link.url not in seen:
            seen.add(link.url)
            unique.append(link)
    return unique


def _name(alt: str, url: str) -> str:
    text = " ".join(clean_untrusted(alt).split())
    if not text:
        text = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2]) or "image"
        text = " ".join(clean_untrusted(text).split()) or "image"
    return text[:MAX_NAME_CHARS]


def public_url(url: str) -> str:
    """``url`` without its query and fragment (a signed URL's signature is a credential)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


Origin = tuple[str, str, int]


def _origin(url: str) -> Origin | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    return scheme, host, port or _DEFAULT_PORTS[scheme]


@dataclass(frozen=True)
class HostPolicy:
    """Which URLs may be fetched, and which of them get the job's token.

    Args:
        api_url: The API root (``GITHUB_API_URL``; the client's ``api_url``).
        server_url: The web root (``GITHUB_SERVER_URL``); default ``https://github.com``.
    """

    api_url: str
    server_url: str = "https://github.com"

    @property
    def _own(self) -> set[Origin]:
        origins = {_origin(self.api_url), _origin(self.server_url)}
        return {origin for origin in origins if origin is not None}

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be fetched, or ``None`` when it may."""
        origin = _origin(url)
        if origin is None:
            return "not an http(s) URL of a host"
        if origin in self._own:
            return None
        scheme, host, port = origin
        github = host == _GITHUB_HOST or host.endswith(_USER_CONTENT_SUFFIX)
        if scheme == "https" and port == 443 and github:
            return None
        return f"{host} is not a GitHub host"

    def sends_token(self, url: str) -> bool:
        """Whether a request to ``url`` may carry the job's token: the API and server hosts
        only (``github.com`` only when it is the server: a GHES token stays on GHES), and never
        with a signed URL, which needs none."""
        origin = _origin(url)
        if origin is None:
            return False
        query = {key.lower() for key, _ in parse_qsl(urlsplit(url).query)}
        return origin in self._own and not (query & _SIGNATURE_PARAMS)


_MAGIC: tuple[tuple[bytes, MediaType, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"GIF87a", "image/gif", "gif"),
    (b"GIF89a", "image/gif", "gif"),
)


def sniff(data: bytes) -> tuple[MediaType, str] | None:
    """The media type and file extension of image bytes (PNG, JPEG, GIF, WebP), else ``None``."""
    for magic, media_type, ext in _MAGIC:
        if data.startswith(magic):
            return media_type, ext
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return None


class _SkipError(Exception):
    """An image is left out (the message says why)."""


def _download(
    http: httpx.Client, url: str, policy: HostPolicy, token: str | None, max_bytes: int
) -> bytes:
    """The bytes at ``url``, following at most ``MAX_REDIRECTS`` allowed redirects by hand."""
    for _hop in range(MAX_REDIRECTS + 1):
        refusal = policy.refusal(url)
        if refusal is not None:
            raise _SkipError(f"not fetched: {refusal}")
        headers = {"Accept": "image/*"}
        if token and policy.sends_token(url):
            headers["Authorization"] = f"token {token}"
        with http.stream("GET", url, headers=headers) as response:
            if response.is_redirect:
                location = response.headers.get("location", "")
                if not location:
                    raise _SkipError(f"HTTP {response.status_code} without a Location")
                url = urljoin(url, location)
                continue
            if response.status_code != 200:
                raise _SkipError(f"HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise _SkipError(f"too big ({declared} bytes, at most {max_bytes})")
            data = bytearray()
            for chunk in response.iter_bytes(_CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    raise _SkipError(f"too big (more than {max_bytes} bytes)")
            return bytes(data)
    raise _SkipError(f"more than {MAX_REDIRECTS} redirects")


def fetch_images(
    links: Iterable[ImageLink],
    folder: RunFolder,
    *,
    policy: HostPolicy,
    token: str | None = None,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_images: int = MAX_IMAGES,
    timeout_s: float = 30.0,
    user_agent: str = "gh-orchestrator",
) -> ImageFetch:
    """Download ``links`` into ``folder`` (``images/<sha256>.<ext>``); never raises for an image.

    Args:
        links: The images, in order (see :func:`image_links`).
        folder: The run folder.
        policy: The allowed hosts and where the token may go.
        token: The job's GitHub token (sent as ``policy.sends_token`` allows).
        max_bytes: Largest image kept.
        max_images: Images kept; the rest are skipped.
        timeout_s: Per request.
        user_agent: The ``User-Agent`` header.

    Returns:
        The kept images (as ``ImageRef``, one per distinct content) and the skipped ones.
    """
    result = ImageFetch()
    attempts = 0
    with httpx.Client(
        timeout=timeout_s, follow_redirects=False, headers={"User-Agent": user_agent}
    ) as http:
        for link in links:
            shown = public_url(link.url)
            if link.canonical is not None:
                refusal = policy.refusal(link.canonical)
                if refusal is not None:
                    reason = f"not fetched: proxied from {refusal}"
                    result.skipped.append(
                        SkippedImage(link.name, public_url(link.canonical), reason)
                    )
                    continue
            if len(result.images) >= max_images:
                reason = f"not fetched: at most {max_images} images per request"
                result.skipped.append(SkippedImage(link.name, shown, reason))
                continue
            if attempts >= max_images * ATTEMPTS_PER_IMAGE:
                reason = f"not fetched: {attempts} downloads tried already"
                result.skipped.append(SkippedImage(link.name, shown, reason))
                continue
            attempts += 1
            try:
                data = _download(http, link.url, policy, token, max_bytes)
            except _SkipError as exc:
                result.skipped.append(SkippedImage(link.name, shown, str(exc)))
                continue
            except (httpx.HTTPError, OSError) as exc:
                reason = f"download failed: {type(exc).__name__}"
                result.skipped.append(SkippedImage(link.name, shown, reason))
                continue
            kind = sniff(data)
            if kind is None:
                reason = "not a PNG, JPEG, GIF or WebP image"
                result.skipped.append(SkippedImage(link.name, shown, reason))
                continue
            media_type, ext = kind
            digest = sha256(data).hexdigest()
            if any(ref.sha256 == digest for ref in result.images):
                continue
            path = folder.image(digest, ext)
            write_atomic(path, data)
            result.images.append(
                ImageRef(
                    name=link.name,
                    media_type=media_type,
                    sha256=digest,
                    path=folder.relative(path),
                    size=len(data),
                    source_url=shown,
                )
            )
    return result


def _body(payload: Mapping[str, Any], key: str) -> str | None:
    item = payload.get(key)
    if isinstance(item, Mapping):
        body = item.get("body")
        return body if isinstance(body, str) else None
    return None


def fetch_request_images(
    client: GitHubClient,
    request: Request,
    event: Mapping[str, Any] | None,
    folder: RunFolder,
    *,
    server_url: str = "https://github.com",
    max_bytes: int = MAX_IMAGE_BYTES,
    max_images: int = MAX_IMAGES,
) -> ImageFetch:
    """The images of the event that made ``request``: its comment's, then its issue's or PR's.

    GitHub is asked for rendered HTML only when the event's Markdown may show an image, so a
    request without one costs no call. A failed API call is a skipped entry, not an error.

    Args:
        client: The GitHub client (its API root and token).
        request: The accepted request (``issue_number``).
        event: The raw event payload.
        folder: The run folder the images go to.
        server_url: ``GITHUB_SERVER_URL``.
        max_bytes: Largest image kept.
        max_images: Images kept per request.
    """
    from orchestrator.github.client import GitHubError

    if event is None or request.issue_number is None:
        return ImageFetch()
    sources: list[tuple[str, str, Any]] = []
    comment = event.get("comment")
    if isinstance(comment, Mapping) and has_image_links(_body(event, "comment")):
        comment_id = comment.get("id")
        if isinstance(comment_id, int):
            sources.append(("comment", f"comment {comment_id}", comment_id))
    issue_key = "pull_request" if "issue" not in event else "issue"
    if has_image_links(_body(event, issue_key)):
        sources.append(("issue", f"#{request.issue_number}", request.issue_number))
    links: list[ImageLink] = []
    failed: list[SkippedImage] = []
    for kind, label, ident in sources:
        try:
            if kind == "comment":
                html = client.get_issue_comment_html(ident)
            else:
                html = client.get_issue_html(ident)
        except GitHubError as exc:
            failed.append(SkippedImage(label, "", f"could not read its HTML: {exc}"))
            continue
        links.extend(link for link in image_links(html) if link not in links)
    policy = HostPolicy(client.api_url, server_url)
    fetched = fetch_images(
        links,
        folder,
        policy=policy,
        token=client.token,
        max_bytes=max_bytes,
        max_images=max_images,
    )
    fetched.skipped[:0] = failed
    return fetched
