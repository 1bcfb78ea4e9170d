"""API keys of mdw's own HTTP API: creation, salted hashing, constant-time checks, route guards.

A key reads ``mdw_<id>_<secret>``. Only ``id`` (public, shown by ``mdw keys list``) and a salted
PBKDF2-HMAC-SHA256 digest of the secret are stored. The secret is 256 random bits, so brute
force is out of reach whatever the iteration count; the count stays modest so that ``auth =
"all"`` costs well under a millisecond per request. Digests are compared with
:func:`hmac.compare_digest`, and an unknown id still pays for one hash, so timing reveals nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from mdw.errors import UsageError
from mdw.service.errors import ApiError
from mdw.store.base import ApiKeyRecord, KeyStore, Store

SCOPES = ("read", "admin")
_ITERATIONS = 1000
_KEY_RE = re.compile(r"^mdw_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
_DUMMY_SALT = "00" * 16


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key id (or ``anonymous``) and its scope (None when anonymous)."""

    actor: str
    scope: str | None

    @property
    def admin(self) -> bool:
        return self.scope == "admin"


ANONYMOUS = Principal("anonymous", None)


def _digest(secret: str, salt_hex: str) -> str:
    raw = hashlib.pbkdf2_hmac("sha256", secret.encode(), bytes.fromhex(salt_hex), _ITERATIONS)
    return f"pbkdf2_sha256${_ITERATIONS}${raw.hex()}"


def new_key(scope: str, name: str, now_ms: int) -> tuple[str, ApiKeyRecord]:
    """Make a key: returns the plaintext (show it once) and the record to store (hash only).

    Raises:
        UsageError: ``scope`` is not ``read`` or ``admin``.
    """
    if scope not in SCOPES:
        raise UsageError(f"invalid scope {scope!r}; expected read or admin")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    record = ApiKeyRecord(id=key_id, scope=scope, salt=salt, hash=_digest(secret, salt),
                          created_at_ms=now_ms, name=name)
    return f"mdw_{key_id}_{secret}", record


def key_id_of(plaintext: str) -> str | None:
    """The public id of a key of the right shape (the part the store is asked about), else None."""
    m = _KEY_RE.fullmatch(plaintext.strip())
    return m[1] if m else None


def verify(plaintext: str, record: ApiKeyRecord | None) -> ApiKeyRecord | None:
    """``record`` when it is live (not revoked) and the key's secret matches it, else None.

    ``record`` is what the store holds under the key's id (None when nothing); the check costs
    one hash either way, so its time says nothing about the secret or whether the id exists.
    """
    m = _KEY_RE.fullmatch(plaintext.strip())
    key_id, secret = (m[1], m[2]) if m else ("", plaintext)
    if record is not None and record.id != key_id:
        record = None
    expected = record.hash if record else _digest("", _DUMMY_SALT)
    actual = _digest(secret, record.salt if record else _DUMMY_SALT)
    ok = hmac.compare_digest(expected.encode(), actual.encode())
    if record is None or not ok or record.revoked_at_ms is not None:
        return None
    return record


async def authenticate(keys: KeyStore, plaintext: str) -> ApiKeyRecord | None:
    """The live record of a key, asking the store for that one key id only."""
    key_id = key_id_of(plaintext)
    return verify(plaintext, await keys.get(key_id) if key_id else None)


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                               description="An mdw API key (`mdw keys create`).")
_bearer = HTTPBearer(auto_error=False, description="An mdw API key as a bearer token.")


async def _principal(
    request: Request,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    key = api_key or (bearer.credentials if bearer else None)
    if not key:
        return ANONYMOUS
    store: Store = request.app.state.mdw.store
    record = await authenticate(store.keys, key)
    if record is None:
        raise ApiError(401, "unauthorized", "the API key is unknown or revoked")
    return Principal(record.id, record.scope)


async def require_read(request: Request, who: Annotated[Principal, Depends(_principal)]) -> Principal:
    """Reads are open unless ``auth = "all"``; then any live key will do."""
    if who is ANONYMOUS and request.app.state.mdw.settings.auth == "all":
        raise ApiError(401, "unauthorized", "this server needs an API key (X-API-Key or Bearer)")
    return who


async def require_admin(who: Annotated[Principal, Depends(_principal)]) -> Principal:
    """Admin routes always need a live key with the admin scope."""
    if who is ANONYMOUS:
        raise ApiError(401, "unauthorized", "this route needs an admin API key (X-API-Key or Bearer)")
    if not who.admin:
        raise ApiError(403, "forbidden", "this route needs an admin key; the key given is read-only")
    return who


Reader = Annotated[Principal, Depends(require_read)]
Admin = Annotated[Principal, Depends(require_admin)]
