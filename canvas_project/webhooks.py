"""Outbound webhooks: where the service may POST, how a body is signed, and one POST that cannot be steered.

Where (no SSRF). A webhook URL is `http` or `https`, without user info, at most 2,048 ASCII characters, and
its host must be allowed by WEBHOOK_ALLOWED_HOSTS (comma-separated):
- `hooks.example.com`: exactly that name; `.example.com`: that name and every name under it; `*`: any name;
- `198.51.100.7`, `2001:db8::7` or `10.20.0.0/16`: those addresses, written as the URL's host.
Then every address the host resolves to must be public: a private, loopback, link-local, shared (CGNAT),
reserved, multicast or unspecified address is refused unless an address or network entry of the list covers
it (the way to allow an internal receiver: list its name and its address). Cloud metadata addresses
(169.254.169.254, fd00:ec2::254, 169.254.170.2, 100.100.100.200) are refused even when listed. IPv4 written
inside IPv6 (mapped, 6to4, NAT64) is judged by its IPv4 address, and a host spelled the way only C's
inet_aton reads as an address (`2130706433`, `0x7f.1`) is refused.

When. The policy is applied when a client names the URL (the request answers 422) and again before every
delivery attempt, after resolving the host anew, so a name that later resolves to an internal address (DNS
rebinding) is refused then.

How. The POST connects to an address that was just checked, never to a second resolution of the name: the
URL's host travels in the Host header and, over HTTPS, as the TLS server name the certificate is verified
against. No redirect is followed, proxy environment variables are ignored, and each phase (connect, send,
each read) is bounded by WEBHOOK_TIMEOUT_SECONDS; the answer's body is never read.

Signature. `X-Canvas-Signature: v1=<hex HMAC-SHA256 of "<X-Canvas-Timestamp>.<body>" under the secret>`, the
timestamp being Unix seconds at the attempt (docs/api-guide.md shows how a receiver verifies it).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import httpx
from django.conf import settings

MAX_URL_LENGTH = 2048
DNS_TIMEOUT_SECONDS = 3.0
SIGNATURE_HEADER = "X-Canvas-Signature"
TIMESTAMP_HEADER = "X-Canvas-Timestamp"
SIGNATURE_VERSION = "v1"
USER_AGENT = "DealCanvas-Webhooks/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean... instance metadata
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud metadata
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# getaddrinfo cannot be given a timeout: it runs here and the request waits at most DNS_TIMEOUT_SECONDS.
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


class WebhookRefused(Exception):
    """A webhook target the policy refuses. `code`: invalid_webhook_url, webhook_host_not_allowed,
    webhook_address_refused or webhook_unresolvable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class WebhookTarget:
    scheme: str
    host: str  # lower case, no brackets, no trailing dot
    port: int
    path: str  # path and query: the request target
    ip: IPAddress | None  # the host when it is an address literal

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if self.ip is not None and self.ip.version == 6 else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def shown(self) -> str:
        """The URL without its query (which may carry a receiver's token): what the run record shows."""
        return f"{self.scheme}://{self.host_header}{self.path.split('?', 1)[0]}"

    def url_for(self, address: IPAddress) -> str:
        literal = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{literal}:{self.port}{self.path}"


@dataclass(frozen=True)
class _AllowList:
    any_name: bool
    names: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[IPNetwork, ...]

    def allows_host(self, target: WebhookTarget) -> bool:
        if target.ip is not None:
            return self.any_name or self.covers(target.ip)
        host = target.host
        return self.any_name or host in self.names or any(host == s[1:] or host.endswith(s) for s in self.suffixes)

    def covers(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


@lru_cache(maxsize=8)
def _allow_list(entries: tuple[str, ...]) -> _AllowList:
    any_name, names, suffixes, networks = False, set(), [], []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        if entry == "*":
            any_name = True
        elif entry.startswith("."):
            suffixes.append(entry)
        else:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.add(entry)
    return _AllowList(any_name, frozenset(names), tuple(suffixes), tuple(networks))


def allow_list() -> _AllowList:
    return _allow_list(tuple(settings.WEBHOOK_ALLOWED_HOSTS))


def shown_url(url: str) -> str:
    """The URL as a run record shows it: without user info, query or fragment (a receiver's token often rides
    in the query). No policy is applied: the URL was checked when it was recorded."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _invalid(message: str) -> WebhookRefused:
    return WebhookRefused("invalid_webhook_url", message)


def _inet_aton_only(host: str) -> bool:
    """A host that is no dotted quad but that C's resolver reads as an IPv4 address (`2130706433`, `0x7f.1`,
    `127.1`): refused, so that no spelling of an address slips past the name rules."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def parse_target(url: object) -> WebhookTarget:
    """The URL's parts, checked for shape and against WEBHOOK_ALLOWED_HOSTS (no resolution).
    Raises WebhookRefused."""
    if not isinstance(url, str) or not url:
        raise _invalid("The webhook must be an http or https URL.")
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(f"The webhook URL is longer than {MAX_URL_LENGTH} characters.")
    if not url.isascii() or any(ch <= " " or ch == "\x7f" or ch == "\\" for ch in url):
        raise _invalid(
            "The webhook URL may hold only printable ASCII without spaces or backslashes (write an "
            "internationalised host in its xn-- form, and percent-encode the rest)."
        )
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced [IPv6] host
        raise _invalid("The webhook URL's host is not a valid name or address.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _invalid("The webhook must be an http or https URL.")
    if "@" in parts.netloc:
        raise _invalid("The webhook URL may not carry user info (user:password@); put a token in its path or query.")
    try:
        port = parts.port
    except ValueError:
        raise _invalid("The webhook URL's port is not a number from 1 to 65535.") from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _invalid("The webhook URL has no host.")
    if port == 0:
        raise _invalid("The webhook URL's port is not a number from 1 to 65535.")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
        if "%" in host or ":" in host:
            raise _invalid("The webhook URL's host is not a valid name or address.") from None
        if _inet_aton_only(host):
            raise _invalid("Write an address host as a dotted quad (for example 192.0.2.10).") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        raise _invalid("The webhook URL's host may not carry an IPv6 zone.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    target = WebhookTarget(scheme, host, port or (443 if scheme == "https" else 80), path, ip)
    if not allow_list().allows_host(target):
        raise WebhookRefused(
            "webhook_host_not_allowed",
            f"Webhooks may not be sent to {host}: it is not in this service's WEBHOOK_ALLOWED_HOSTS.",
        )
    return target


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why the service may not connect to `address`, or None when it may. IPv4 inside IPv6 (mapped, 6to4,
    NAT64) is judged as that IPv4 address."""
    embedded = _embedded_ipv4(address)
    judged = embedded if embedded is not None else address
    if judged in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    if allow_list().covers(judged):
        return None
    if judged.is_multicast or not judged.is_global:
        kind = (
            "loopback"
            if judged.is_loopback
            else "link-local"
            if judged.is_link_local
            else "private"
            if judged.is_private
            else "non-public"
        )
        return f"{address} is a {kind} address that WEBHOOK_ALLOWED_HOSTS does not list"
    return None


def _resolve(target: WebhookTarget) -> list[IPAddress]:
    if target.ip is not None:
        return [target.ip]
    future = _resolver.submit(socket.getaddrinfo, target.host, target.port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=DNS_TIMEOUT_SECONDS)
    except FutureTimeout:
        raise WebhookRefused(
            "webhook_unresolvable", f"{target.host} did not resolve within {DNS_TIMEOUT_SECONDS:g} s."
        ) from None
    except (OSError, UnicodeError):
        raise WebhookRefused("webhook_unresolvable", f"{target.host} does not resolve to an address.") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise WebhookRefused("webhook_unresolvable", f"{target.host} does not resolve to an address.")
    return addresses


def resolve_target(target: WebhookTarget) -> list[IPAddress]:
    """Every address the target's host resolves to, each of them allowed. Raises WebhookRefused (one of them
    is refused: the whole target is, or a rebinding name could pick it later; or the host does not resolve)."""
    addresses = _resolve(target)
    for address in addresses:
        reason = address_refusal(address)
        if reason is not None:
            raise WebhookRefused("webhook_address_refused", f"Webhooks may not be sent to {target.host}: {reason}.")
    return addresses


def check_url(url: object) -> WebhookTarget:
    """Shape, allowed host and resolved addresses, as when a client names the URL. Raises WebhookRefused."""
    target = parse_target(url)
    resolve_target(target)
    return target


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`v1=<hex HMAC-SHA256 of "<timestamp>.<body>">` under the secret (its UTF-8 bytes)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={mac}"


@dataclass(frozen=True)
class PostOutcome:
    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post_signed(
    target: WebhookTarget, *, addresses: list[IPAddress], body: bytes, secret: str, headers: dict[str, str]
) -> PostOutcome:
    """POST `body` to the target at its first checked address, signed now; never raises for the receiver's
    failures (they are the outcome)."""
    timestamp = int(time.time())
    sent_headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        **headers,
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" and target.ip is None else None
    started = time.monotonic()
    status_code, error = None, None
    try:
        with httpx.Client(
            timeout=httpx.Timeout(settings.WEBHOOK_TIMEOUT_SECONDS), follow_redirects=False, trust_env=False
        ) as client:
            request = client.build_request(
                "POST", target.url_for(addresses[0]), content=body, headers=sent_headers, extensions=extensions
            )
            response = client.send(request, stream=True)
            status_code = response.status_code
            response.close()  # the answer's body is of no use: never read
    except httpx.TimeoutException:
        error = f"No answer within WEBHOOK_TIMEOUT_SECONDS ({settings.WEBHOOK_TIMEOUT_SECONDS:g} s)."
    except httpx.HTTPError as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:500]
    if status_code is not None and not 200 <= status_code < 300:
        error = (
            f"The receiver answered {status_code}; redirects are not followed."
            if 300 <= status_code < 400
            else f"The receiver answered {status_code}."
        )
    return PostOutcome(status_code, error, round((time.monotonic() - started) * 1000, 1))
