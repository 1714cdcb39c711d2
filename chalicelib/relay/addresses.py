"""Address normalization, hashing and relay-address parsing."""

from __future__ import annotations

import hashlib
import hmac
import re

ADDRESS_HASH_HEX_CHARS = 32

# Deliberately simple: an address-looking token, used to find addresses in text.
_ADDRESS_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def normalize_address(addr: str) -> str:
    """Strip surrounding whitespace and angle brackets and lower-case the whole address.

    The whole address (local part included) is lower-cased: providers treat local
    parts case-insensitively in practice and R6 matches senders case-insensitively.
    """
    return addr.strip().strip("<>").strip().lower()


def address_hash(key: bytes, addr: str) -> str:
    """Keyed hash of a normalized address, for lookups and logs (R5, R14)."""
    mac = hmac.new(key, normalize_address(addr).encode("utf-8", "surrogatepass"), hashlib.sha256)
    return mac.hexdigest()[:ADDRESS_HASH_HEX_CHARS]


def domain_of(addr: str) -> str:
    """The lower-cased domain of an address, or '' if it has none."""
    _, at, domain = normalize_address(addr).rpartition("@")
    return domain if at else ""


def relay_local_part(recipient: str, relay_domain: str) -> str | None:
    """The chat's local part if ``recipient`` is at the relay domain, else None.

    Case-insensitive; a ``+tag`` suffix is dropped, so ``K3X9+x@relay`` is ``k3x9``.
    """
    addr = normalize_address(recipient)
    local, at, domain = addr.rpartition("@")
    if not at or not local or domain != relay_domain.strip().lower():
        return None
    local = local.split("+", 1)[0]
    return local or None
