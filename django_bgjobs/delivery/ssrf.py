"""Which URLs outbound delivery may call, and which address it connects to.

``check_url(url)`` parses the URL strictly, resolves its host **once** and returns a ``Target``
whose ``address`` is the IP to connect to (the HTTP layer pins it: no second lookup, so DNS
rebinding between the check and the connection cannot redirect the request). It raises
``Refused(reason)`` (never worth retrying) for:

* a scheme other than http/https, userinfo (``user:pass@``), control characters, backslashes;
* a host that is not a plain DNS name or IP literal (percent-escapes, odd characters);
* ``localhost`` and ``*.localhost``;
* any address, literal or resolved, that is not public: private, loopback, link-local,
  unspecified, multicast, reserved, shared/CGNAT (100.64.0.0/10), cloud metadata
  (169.254.169.254, fd00:ec2::254), and IPv6 forms embedding one of those (IPv4-mapped,
  IPv4-compatible, 6to4, Teredo, NAT64). A name is refused if *any* of its addresses is.

Every IPv4 spelling the resolver or a browser would accept is read the way they read it
(inet_aton / WHATWG: ``127.1``, ``2130706433``, ``0x7f000001``, ``017700000001``, trailing dots,
fullwidth digits through IDNA), so a spelling cannot hide an address from the check.

``BGJOBS["DELIVERY_ALLOW_HOSTS"]`` (hostnames and CIDRs) lifts the address rules: a listed
hostname may resolve anywhere; an address inside a listed network is allowed. Scheme, userinfo
and syntax rules still apply.

A failed lookup raises ``NotResolved`` (a transient error: worth retrying).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., list[tuple[Any, ...]]]

DEFAULT_PORTS = {"http": 80, "https": 443}

METADATA = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud (classic)
    }
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_PART = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")


class Refused(Exception):
    """The URL may not be delivered to. Not retryable: the same URL is refused every time."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotResolved(Exception):
    """The host has no address right now (DNS failure). Retryable."""


@dataclass(frozen=True)
class Target:
    url: str  # exactly as given (the JWT's ``sub``)
    scheme: str  # "http" or "https"
    host: str  # normalised: ASCII, lower case, no trailing dot, no brackets
    port: int
    address: str  # the IP to connect to, resolved once
    allowlisted: bool  # the allowlist let it through (by name or network)

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the host as a name (IPv6 in brackets), the port if not default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"


@dataclass(frozen=True)
class Allowlist:
    names: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        names: set[str] = set()
        networks = []
        for entry in entries:
            entry = entry.strip()
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.add(entry.lower().rstrip("."))
        return cls(frozenset(names), tuple(networks))

    def has_address(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(
            c.version == net.version and c in net for c in candidates for net in self.networks
        )


def configured_allowlist() -> Allowlist:
    from django_bgjobs.conf import bgjobs_settings

    return Allowlist.parse(bgjobs_settings.DELIVERY_ALLOW_HOSTS or ())


def forbidden(ip: IPAddress) -> str | None:
    """Why this address may not be called, or None if it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip if ip.scope_id is None else ipaddress.IPv6Address(str(ip).split("%")[0])
        embedded: list[tuple[str, ipaddress.IPv4Address]] = []
        if ip.ipv4_mapped is not None:
            embedded.append(("IPv4-mapped", ip.ipv4_mapped))
        if ip.sixtofour is not None:
            embedded.append(("6to4", ip.sixtofour))
        if ip.teredo is not None:
            embedded.extend(("Teredo", v4) for v4 in ip.teredo)
        if ip in NAT64:
            embedded.append(("NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        if ip in IPV4_COMPATIBLE and int(ip) > 1:
            embedded.append(("IPv4-compatible", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        for kind, v4 in embedded:
            reason = forbidden(v4)
            if reason is not None:
                return f"{kind} IPv6 address of {v4}: {reason}"
    if ip in METADATA:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.version == 4 and ip in CGNAT:
        return "a shared (CGNAT) address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a numeric host means to inet_aton / a browser, None if it is a name.

    A host whose last label is numeric is an IPv4 address in some spelling (1 to 4 parts, each
    decimal, octal with a leading 0 or hex with 0x); one that does not parse is refused rather
    than handed to a resolver that may read it differently."""
    parts = host.split(".")
    if not _NUMERIC_PART.match(parts[-1]):
        return None
    if len(parts) > 4:
        raise Refused(f"host {host!r} is not a valid IPv4 address")
    values = []
    for part in parts:
        if not _NUMERIC_PART.match(part):
            raise Refused(f"host {host!r} is not a valid IPv4 address")
        try:
            if part.startswith("0x"):
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            else:
                values.append(int(part))
        except ValueError:
            raise Refused(f"host {host!r} is not a valid IPv4 address") from None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        raise Refused(f"host {host!r} is not a valid IPv4 address")
    number = last
    for i, v in enumerate(head):
        number += v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def _normalise_host(raw: str) -> str | IPAddress:
    """A DNS name (ASCII, lower case, no trailing dot) or the IP literal it spells."""
    if ":" in raw:
        try:
            return ipaddress.IPv6Address(raw)
        except ValueError:
            raise Refused(f"host {raw!r} is not a valid IPv6 address") from None
    host = raw
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise Refused(f"host {raw!r} is not a valid internationalised name") from None
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host or len(host) > 253:
        raise Refused(f"host {raw!r} is not a valid host name")
    v4 = parse_ipv4(host)
    if v4 is not None:
        return v4
    if not all(_LABEL.match(label) for label in host.split(".")):
        raise Refused(f"host {raw!r} is not a valid host name")
    return host


def check_url(
    url: str, *, allow: Allowlist | None = None, resolver: Resolver | None = None
) -> Target:
    """Check ``url`` and resolve its host once; the returned ``Target.address`` is pinned."""
    if allow is None:
        allow = configured_allowlist()
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url) or "\\" in url:
        raise Refused("URL contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"URL does not parse: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise Refused(f"scheme {parts.scheme or '(none)'!r} is not allowed (http and https only)")
    if "@" in parts.netloc:
        raise Refused("URL carries userinfo (user:password@); refused")
    if not parts.hostname:
        raise Refused("URL has no host")
    if port is None:
        port = DEFAULT_PORTS[scheme]
    if port == 0:
        raise Refused("port 0 is not allowed")
    host = _normalise_host(parts.hostname)
    name = host if isinstance(host, str) else str(host)
    by_name = name in allow.names

    if isinstance(host, str):
        if not by_name and (host in _LOCAL_NAMES or host.endswith(".localhost")):
            raise Refused(f"host {host!r} is local")
        addresses = _resolve(host, port, resolver or socket.getaddrinfo)
    else:
        addresses = [host]

    allowlisted = by_name
    for ip in addresses:
        if by_name:
            continue
        reason = forbidden(ip)
        if reason is None:
            continue
        if allow.has_address(ip):
            allowlisted = True
            continue
        shown = name if str(ip) == name else f"{name} ({ip})"
        raise Refused(
            f"{shown} is {reason}; add the host to BGJOBS['DELIVERY_ALLOW_HOSTS'] to allow it"
        )
    return Target(
        url=url,
        scheme=scheme,
        host=name,
        port=port,
        address=str(addresses[0]),
        allowlisted=allowlisted,
    )


def _resolve(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise NotResolved(f"cannot resolve {host!r}: {exc}") from None
    addresses: list[IPAddress] = []
    for family, *_rest, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise NotResolved(f"{host!r} has no IPv4 or IPv6 address")
    return addresses
