"""AWS Signature Version 4 as S3 checks it: the simulator verifies what the S3 clients sign.

Only the header form (``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
Signature=...``) is accepted; presigned URLs and unsigned requests are refused. The canonical
request follows S3's rules: the path is used as sent (no normalisation or second encoding), the
query is sorted with every name and value percent-encoded, and the payload hash is the
``x-amz-content-sha256`` header (``UNSIGNED-PAYLOAD`` included).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*SignedHeaders=(?P<signed>[^,\s]+)\s*,"
    r"\s*Signature=(?P<sig>[0-9a-f]{64})\s*$"
)


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """Why a request is refused: the S3 error code and its message (both sent as 403)."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Signed:
    """A request whose signature checked out."""

    key_id: str


def canonical_query(raw: str) -> str:
    """The sorted, percent-encoded query string SigV4 signs."""
    pairs: list[tuple[str, str]] = []
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def verify(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str],
           secrets: Mapping[str, str]) -> Signed | AuthFailure:
    """Check a request's SigV4 header signature against the known key ids and their secrets."""
    auth = headers.get("Authorization", "")
    m = _AUTH_RE.match(auth.strip())
    if m is None:
        return AuthFailure("AccessDenied", "Access Denied")
    parts = m["cred"].split("/")
    if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
        return AuthFailure("AuthorizationHeaderMalformed", "The authorization header is malformed.")
    key_id, day, region, service, terminal = parts
    secret = secrets.get(key_id)
    if secret is None:
        return AuthFailure("InvalidAccessKeyId",
                           "The AWS Access Key Id you provided does not exist in our records.")
    amz_date = headers.get("x-amz-date", "")
    payload = headers.get("x-amz-content-sha256", "")
    if not amz_date.startswith(day) or not payload:
        return AuthFailure("AuthorizationHeaderMalformed", "The authorization header is malformed.")
    signed = m["signed"].split(";")
    canonical_headers = "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed)
    canonical = "\n".join([method, raw_path or "/", canonical_query(raw_query), canonical_headers,
                           m["signed"], payload])
    scope = f"{day}/{region}/{service}/{terminal}"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for piece in (day, region, service, terminal):
        key = hmac.new(key, piece.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, m["sig"]):
        return AuthFailure("SignatureDoesNotMatch",
                           "The request signature we calculated does not match the signature you "
                           "provided. Check your key and signing method.")
    return Signed(key_id)
