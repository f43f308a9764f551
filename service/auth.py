"""API keys: creation, listing, revocation and verification.

A key reads ``gw_<prefix>_<secret>``. The prefix is public (it appears in listings and logs)
and finds the row; only a SHA-256 of the secret is stored. A plain hash is enough because the
secret is 256 random bits, not a password: there is nothing to brute-force. Comparison runs in
constant time, and an unknown prefix costs the same comparison, so timing reveals nothing.
Rows are read and written by ``index.key_store`` (``store.keys``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Sequence

from index.models import ApiKey, utcnow
from index.store import Store
from service.query.types import Principal

ROLES = ("reader", "writer", "admin")
_RANK = {role: n for n, role in enumerate(ROLES)}
ALL_ACCESS_GROUP = "*"
KEY_SCHEME = "gw"
_PREFIX_BYTES = 6  # 12 hex characters: unique enough to find the row, short enough to read aloud
_SECRET_BYTES = 32
_HASH_SCHEME = "sha256"
_LAST_USED_EVERY = timedelta(minutes=5)  # bounds write traffic from authentication
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    """An authenticated caller."""

    key_id: int | None
    prefix: str
    name: str
    role: str
    principal: Principal

    def allows(self, required_role: str) -> bool:
        return role_allows(self.role, required_role)


def role_allows(role: str, required: str) -> bool:
    return _RANK.get(role, -1) >= _RANK[required]


def principal_for(principal_id: str, groups: Sequence[str]) -> Principal:
    """Admins are not all-access for retrieval: only the explicit ``*`` group is."""
    groups = set(groups)
    everything = ALL_ACCESS_GROUP in groups
    return Principal(id=principal_id, groups=frozenset(groups - {ALL_ACCESS_GROUP}), all_access=everything)


def dev_caller() -> KeyInfo:
    """auth=off: every request is a local all-access admin."""
    return KeyInfo(key_id=None, prefix="dev", name="dev mode", role="admin", principal=Principal(id="dev", all_access=True))


def _hash_secret(secret: str) -> str:
    return f"{_HASH_SCHEME}${hashlib.sha256(secret.encode()).hexdigest()}"


def parse_key(plaintext: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not parts[1] or not parts[2]:
        return None
    prefix, secret = parts[1], parts[2]
    if len(prefix) != _PREFIX_BYTES * 2 or any(c not in "0123456789abcdef" for c in prefix) or len(secret) > 200:
        return None
    return prefix, secret


def bearer_token(header_value: str | None) -> str | None:
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def create_key(store: Store, role: str, groups: Sequence[str] = (), name: str = "", principal: str | None = None) -> tuple[str, ApiKey]:
    """A new key; the plaintext is returned once and never stored."""
    if role not in _RANK:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    for _ in range(5):
        prefix = secrets.token_hex(_PREFIX_BYTES)
        if not store.keys.prefix_taken(prefix):
            break
    else:  # pragma: no cover - 48 random bits colliding five times
        raise RuntimeError("could not allocate a key prefix")
    row = store.keys.add(name=name, prefix=prefix, key_hash=_hash_secret(secret), role=role, principal=principal or name or prefix,
                         groups=sorted(set(groups)))
    return f"{KEY_SCHEME}_{prefix}_{secret}", row


def list_keys(store: Store, *, include_revoked: bool = True) -> list[ApiKey]:
    return store.keys.list(include_revoked=include_revoked)


def revoke_key(store: Store, prefix_or_id: str | int) -> bool:
    """Revoke by public prefix (or numeric id). False when no such active key."""
    ident = str(prefix_or_id).strip()
    if ident.startswith(f"{KEY_SCHEME}_"):  # a whole key was pasted: use its prefix
        parsed = parse_key(ident)
        ident = parsed[0] if parsed else ident
    return store.keys.revoke(ident)


def authenticate(store: Store, header_value: str | None) -> KeyInfo | None:
    """The caller behind an ``Authorization`` header, or None (missing, malformed, unknown, revoked)."""
    token = bearer_token(header_value)
    parsed = parse_key(token) if token else None
    if parsed is None:
        return None
    prefix, secret = parsed
    row = store.keys.find(prefix)
    stored = row.key_hash if row is not None else f"{_HASH_SCHEME}${_DUMMY_HASH}"
    matches = hmac.compare_digest(stored.encode(), _hash_secret(secret).encode())
    if row is None or not matches or row.revoked_at is not None or row.role not in _RANK:
        return None
    info = KeyInfo(key_id=row.id, prefix=row.prefix, name=row.name, role=row.role, principal=principal_for(row.principal, row.groups or []))
    _touch(store, info.key_id, row.last_used_at)
    return info


class VerifiedKeys:
    """Keys verified in the last ``ttl_s`` seconds, so that a busy key costs no database round
    trip (and no worker-thread hop) per request.

    Entries are found by a hash of the presented token, never the token itself. A key revoked
    through this process is forgotten at once (``clear``); one revoked elsewhere (the CLI,
    another server) stops working within ``ttl_s``. Unknown and invalid keys are never cached.
    """

    def __init__(self, ttl_s: float, max_entries: int = 10_000):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, KeyInfo]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _slot(header_value: str) -> str:
        return hashlib.sha256(header_value.encode()).hexdigest()

    def get(self, header_value: str | None) -> KeyInfo | None:
        if self.ttl_s <= 0 or not header_value:
            return None
        entry = self._entries.get(self._slot(header_value))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def authenticate(self, store: Store, header_value: str | None) -> KeyInfo | None:
        """``authenticate``, answered from the remembered keys when it can be."""
        info = self.get(header_value)
        if info is None:
            info = authenticate(store, header_value)
            if info is not None:
                self.put(header_value, info)
        return info

    def put(self, header_value: str, info: KeyInfo) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[self._slot(header_value)] = (time.monotonic() + self.ttl_s, info)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _touch(store: Store, key_id: int | None, last_used: datetime | None) -> None:
    now = utcnow()
    if last_used is not None:
        last_used = last_used if last_used.tzinfo else last_used.replace(tzinfo=timezone.utc)
        if now - last_used < _LAST_USED_EVERY:
            return
    try:
        store.keys.touch(key_id, now)
    except Exception:  # bookkeeping only: never fail a request over it
        pass
