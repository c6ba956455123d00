"""The hosts a persistent sandbox may reach through its egress proxy (`network.allowed_hosts`):
the syntax of an entry, and whether an entry lets a connection to host:port through.

An entry is one of
* a host name, `api.example.com` (letters, digits and hyphens in dot-separated labels);
* a wildcard, `*.example.com`: any name under example.com, at any depth, but not
  example.com itself (list both for both);
* an IP literal, `203.0.113.7` or `[2001:db8::1]`: that address when a request names it
  (a request naming an address is refused unless the address itself is listed);
each optionally followed by `:port`. Without a port an entry allows ports 80 and 443
(plain HTTP and HTTPS); with one, only that port. Names are compared without case and
without a trailing dot.

This module is also shipped, as text, into the proxy container (runtime/egress_proxy.py),
so the proxy decides exactly as the API validated: it uses the standard library only.
"""

from __future__ import annotations

import ipaddress
import re

MAX_HOSTS = 64
MAX_ENTRY_CHARS = 260  # a 253-character name, ":" and a port
MAX_NAME_CHARS = 253
DEFAULT_PORTS = (80, 443)
FIELD = "network.allowed_hosts"

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_PORT = re.compile(r"^[0-9]{1,5}$")


def _split_port(entry: str) -> tuple[str, str | None]:
    """`host[:port]` or `[v6][:port]` -> (host, port text or None)."""
    if entry.startswith("["):
        end = entry.find("]")
        if end < 0:
            return entry, None
        rest = entry[end + 1 :]
        return entry[: end + 1], (rest[1:] if rest.startswith(":") else (rest or None))
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, port
    return entry, None


def _is_name(host: str) -> bool:
    labels = host.split(".")
    # A last label of digits only would make "1.2.3" a name that resolvers read as an address.
    return len(host) <= MAX_NAME_CHARS and all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a literal names: dotted quad, or IPv6 in brackets; None otherwise."""
    try:
        if host.startswith("[") and host.endswith("]"):
            return ipaddress.IPv6Address(host[1:-1])
        if re.fullmatch(r"[0-9.]+", host):
            return ipaddress.IPv4Address(host)
    except ValueError:
        return None
    return None


def _canonical_host(host: str) -> str | None:
    """The host as entries are kept and compared: lower case, no trailing dot, addresses
    in their compressed form (IPv6 in brackets); None when it is neither name nor address."""
    host = host.lower()
    if host.endswith(".") and not host.startswith("["):
        host = host[:-1]
    address = _address(host)
    if address is not None:
        return f"[{address.compressed}]" if address.version == 6 else address.compressed
    if host.startswith("["):
        return None
    return host if _is_name(host) else None


def entry_problem(entry: str) -> str | None:
    """Why `entry` cannot be an allowed host, or None."""
    shown = repr(entry if len(entry) <= 60 else entry[:57] + "...")
    if len(entry) > MAX_ENTRY_CHARS:
        return f"{FIELD}: {shown} is longer than {MAX_ENTRY_CHARS} characters"
    host, port = _split_port(entry.strip())
    if port is not None and not (_PORT.match(port) and 1 <= int(port) <= 65535):
        return f"{FIELD}: {shown} has a port that is not 1 to 65535"
    wildcard = host.startswith("*.")
    bare = host[2:] if wildcard else host
    canonical = _canonical_host(bare)
    if canonical is None:
        return (
            f"{FIELD}: {shown} is not a host name (letters, digits and hyphens in dot-separated "
            'labels), a wildcard like "*.example.com", or an IP address, optionally with ":port"'
        )
    if wildcard and (canonical.startswith("[") or _address(canonical) or "." not in canonical):
        return f'{FIELD}: {shown}: a wildcard covers the names under a domain of two labels or more ("*.example.com")'
    return None


def canonical_entry(entry: str) -> str:
    """The entry as it is stored (call only once `entry_problem` found nothing)."""
    host, port = _split_port(entry.strip())
    wildcard = host.startswith("*.")
    canonical = _canonical_host(host[2:] if wildcard else host) or host
    text = ("*." if wildcard else "") + canonical
    return f"{text}:{int(port)}" if port is not None else text


def hosts_problem(entries: list[str]) -> str | None:
    if len(entries) > MAX_HOSTS:
        return f"{FIELD}: {len(entries)} entries; at most {MAX_HOSTS}"
    for entry in entries:
        problem = entry_problem(entry)
        if problem:
            return problem
    return None


def canonical_hosts(entries: list[str]) -> list[str]:
    """The entries as stored: canonical, duplicates dropped, in the caller's order."""
    return list(dict.fromkeys(canonical_entry(entry) for entry in entries))


def allows(entries: list[str], host: str, port: int) -> bool:
    """Whether a connection to `host`:`port` (as a request names it) is allowed by the
    canonical `entries`. A host that is neither a valid name nor an address never is."""
    wanted = _canonical_host(host)
    if wanted is None:
        return False
    for entry in entries:
        pattern, entry_port = _split_port(entry)
        if entry_port is None:
            if port not in DEFAULT_PORTS:
                continue
        elif int(entry_port) != port:
            continue
        if pattern.startswith("*."):
            if wanted.endswith(pattern[1:]) and not wanted.startswith("["):
                return True
        elif pattern == wanted:
            return True
    return False
