"""The client's IP behind proxies: `X-Forwarded-For` (or `Forwarded`) is
believed only when the request came from a configured trusted proxy, and
only as far back as the proxies chain is trusted. The rule is also
`trailmark_core::TrustedProxies` (Rust); both answer the cases of
`crates/trailmark-core/tests/client-ip.json` alike (tests/test_ip.py)."""

from __future__ import annotations

import ipaddress
from typing import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(trusted: Iterable[str]) -> list[Network]:
    """Parses trusted proxies (`10.0.0.1`, `10.0.0.0/8`); a bad one is an
    error naming it, never ignored."""
    out = []
    for item in trusted:
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted proxies: {item!r} is not an IP address or network") from None
    return out


def _ip(text: str):
    text = text.strip().strip('"')
    if text.startswith("["):  # Forwarded: for="[2001:db8::1]:4711"
        text = text[1 : text.find("]")]
    elif text.count(":") == 1:  # 192.0.2.60:4711
        text = text.split(":")[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4-mapped IPv6 address (a dual-stack socket's peer) is its IPv4
    # address: trusted as one, and recorded as one.
    return getattr(addr, "ipv4_mapped", None) or addr


def _forwarded_for(header: str) -> list[str]:
    out = []
    for element in header.split(","):
        for pair in element.split(";"):
            name, _, value = pair.partition("=")
            if name.strip().lower() == "for":
                out.append(value)
    return out


def client_ip(
    peer: str | None,
    x_forwarded_for: str | None,
    forwarded: str | None,
    trusted: Sequence[Network],
) -> str | None:
    """The client's address: the peer, unless the peer is a trusted proxy;
    then the nearest address in the forwarding chain that is not one."""
    addr = _ip(peer or "")
    if addr is None:
        return None

    def is_trusted(a) -> bool:
        return any(a in n for n in trusted)

    if not is_trusted(addr):
        return str(addr)
    chain = _forwarded_for(forwarded) if forwarded else (x_forwarded_for or "").split(",")
    for hop in reversed([h for h in chain if h.strip()]):
        hop_addr = _ip(hop)
        if hop_addr is None:
            # An unreadable hop: what lies behind it cannot be believed.
            return str(addr)
        addr = hop_addr
        if not is_trusted(addr):
            return str(addr)
    return str(addr)
