"""The flat-file endpoint: S3's ListObjectsV2, GetObject (ranges, ETag preconditions) and HeadObject.

Served on the simulator's own port under the path-style bucket ``/flatfiles``, as
``files.massive.com`` serves the bucket ``flatfiles``. Every request is SigV4-signed with a
flat-file key pair (not the REST API key); errors are S3's XML documents (HEAD answers have no
body). A file not yet published, and one of a market the key is not entitled to, answer 403
``AccessDenied``, which says no more than the vendor's does; a key that never exists answers
404 ``NoSuchKey``.
"""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from xml.sax.saxutils import escape

from aiohttp import web

from mdw.flatfiles.keys import BUCKET
from mdw.simulator import sigv4
from mdw.simulator.flatfiles import ObjectInfo
from mdw.simulator.state import STATE, SimState
from mdw.simulator.wire_faults import wire_fault

routes = web.RouteTableDef()
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 256 * 1024
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
TRUNCATE: web.RequestKey[bool] = web.RequestKey("mdw_sim_s3_truncate", bool)  # drop mid-body


def is_s3_path(path: str) -> bool:
    return path == f"/{BUCKET}" or path.startswith(f"/{BUCKET}/")


def _request_id() -> str:
    return uuid.uuid4().hex[:16].upper()


def s3_error(status: int, code: str, message: str, *, method: str = "GET", key: str | None = None,
             headers: dict[str, str] | None = None) -> web.Response:
    """S3's error document (no body for HEAD, as S3 sends it)."""
    rid = _request_id()
    hdrs = {"x-amz-request-id": rid, **(headers or {})}
    if method == "HEAD":
        return web.Response(status=status, headers=hdrs)
    extra = f"<Key>{escape(key)}</Key>" if key is not None else ""
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message>{extra}<RequestId>{rid}</RequestId></Error>")
    return web.Response(status=status, body=body.encode(), content_type="application/xml", headers=hdrs)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _http_date(ms: int) -> str:
    return format_datetime(datetime.fromtimestamp(ms // 1000, UTC), usegmt=True)


async def s3_guard(request: web.Request, st: SimState) -> web.StreamResponse | None:
    """Faults (as a proxy in front of the bucket would produce them) and SigV4; None to go on."""
    def slow_down() -> web.Response:
        return s3_error(503, "SlowDown", "Please reduce your request rate.", method=request.method)

    blocked, fault = await wire_fault(request, st, slow_down)
    if blocked is not None:
        return blocked
    if fault == "truncate":
        request[TRUNCATE] = True
    outcome = sigv4.verify(request.method, request.raw_path.split("?", 1)[0], request.query_string,
                           request.headers, st.config.flatfile_keys)
    if isinstance(outcome, sigv4.AuthFailure):
        return s3_error(403, outcome.code, outcome.message, method=request.method)
    st.stats.keyed(outcome.key_id)
    return None


def _object_headers(info: ObjectInfo) -> dict[str, str]:
    return {"ETag": info.etag, "Last-Modified": _http_date(info.last_modified_ms), "Accept-Ranges": "bytes",
            "Content-Type": "application/x-gzip", "x-amz-request-id": _request_id()}


def _precondition(request: web.Request, info: ObjectInfo) -> web.Response | None:
    match = request.headers.get("If-Match")
    if match is not None and match.strip() not in ("*", info.etag):
        return s3_error(412, "PreconditionFailed", "At least one of the pre-conditions you specified "
                        "did not hold", method=request.method)
    none_match = request.headers.get("If-None-Match")
    if none_match is not None and none_match.strip() in ("*", info.etag):
        return web.Response(status=304, headers={"ETag": info.etag})
    since = request.headers.get("If-Modified-Since")
    if since is not None and none_match is None:
        try:
            when = parsedate_to_datetime(since).timestamp() * 1000
        except (TypeError, ValueError):
            return None
        if info.last_modified_ms // 1000 * 1000 <= when:
            return web.Response(status=304, headers={"ETag": info.etag})
    return None


async def _lookup(request: web.Request) -> tuple[SimState, ObjectInfo, bytes] | web.Response:
    st = request.app[STATE]
    key = request.match_info["key"]
    files = st.flatfiles
    found = files.lookup(key)
    if found is None:
        if files.unpublished(key) and st.config.flatfile_unpublished_status == 403:
            return s3_error(403, "AccessDenied", "Access Denied", method=request.method)
        return s3_error(404, "NoSuchKey", "The specified key does not exist.", method=request.method, key=key)
    ds, day = found
    if not files.allowed(ds):
        return s3_error(403, "AccessDenied", "Access Denied", method=request.method)
    data = await files.body(ds, day)
    return st, files.info(ds, day, len(data)), data


@routes.route("HEAD", f"/{BUCKET}/{{key:.+}}", name="s3_head_object")
async def head_object(request: web.Request) -> web.StreamResponse:
    found = await _lookup(request)
    if isinstance(found, web.Response):
        return found
    _, info, _ = found
    blocked = _precondition(request, info)
    if blocked is not None:
        return blocked
    return web.Response(status=200, headers={**_object_headers(info), "Content-Length": str(info.size)})


@routes.get(f"/{BUCKET}/{{key:.+}}", name="s3_get_object", allow_head=False)
async def get_object(request: web.Request) -> web.StreamResponse:
    found = await _lookup(request)
    if isinstance(found, web.Response):
        return found
    st, info, data = found
    blocked = _precondition(request, info)
    if blocked is not None:
        return blocked
    headers = _object_headers(info)
    start, end, status = 0, len(data), 200
    spec = request.headers.get("Range")
    if spec is not None:
        parsed = _parse_range(spec.strip(), len(data))
        if parsed is None:
            return s3_error(416, "InvalidRange", "The requested range is not satisfiable",
                            headers={"Content-Range": f"bytes */{len(data)}"})
        start, end = parsed
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
    headers["Content-Length"] = str(end - start)
    response = web.StreamResponse(status=status, headers=headers)
    await response.prepare(request)
    stop = end if not request.get(TRUNCATE) else start + max(1, (end - start) // 2)
    view = memoryview(data)
    pos = start
    while pos < stop:
        chunk = view[pos:min(stop, pos + _CHUNK)]
        await response.write(chunk)
        pos += len(chunk)
        st.stats.flatfile_bytes += len(chunk)
    if stop < end:  # the injected truncation: the connection closes mid-body (after what was sent)
        st.stats.faults["truncate"] += 1
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


def _parse_range(spec: str, size: int) -> tuple[int, int] | None:
    m = _RANGE_RE.fullmatch(spec)
    if m is None or (not m[1] and not m[2]):
        return None
    if not m[1]:  # suffix: the last N bytes
        n = int(m[2])
        return (max(0, size - n), size) if n > 0 and size else None
    first = int(m[1])
    last = int(m[2]) if m[2] else size - 1
    if first >= size or last < first:
        return None
    return first, min(last, size - 1) + 1


@routes.get(f"/{BUCKET}", name="s3_list_objects", allow_head=False)
async def list_objects(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    q = request.query
    if q.get("list-type") != "2":
        return s3_error(400, "NotImplemented", "Only ListObjectsV2 (list-type=2) is implemented.")
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter", "")
    try:
        max_keys = max(0, min(1000, int(q.get("max-keys", "1000"))))
    except ValueError:
        return s3_error(400, "InvalidArgument", "max-keys must be an integer.")
    token = q.get("continuation-token")
    after = q.get("start-after", "")
    if token is not None:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            return s3_error(400, "InvalidArgument", "The continuation token provided is incorrect")
    url = q.get("encoding-type") == "url"
    contents: list[ObjectInfo] = []
    prefixes: list[str] = []
    last = after
    truncated = False
    for ds, day in st.flatfiles.keys_after(prefix, after):
        key = ds.key(day)
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                if prefixes and prefixes[-1] == common:
                    continue
                if common <= after:
                    continue
                if len(contents) + len(prefixes) >= max_keys:
                    truncated = True
                    break
                prefixes.append(common)
                last = common + "\uffff"
                continue
        if len(contents) + len(prefixes) >= max_keys:
            truncated = True
            break
        contents.append(await st.flatfiles.listed_info(ds, day))
        last = key
    return web.Response(body=_list_xml(prefix, delimiter, max_keys, token, q.get("start-after"), url,
                                       contents, prefixes, truncated, last).encode(),
                        content_type="application/xml", headers={"x-amz-request-id": _request_id()})


def _list_xml(prefix: str, delimiter: str, max_keys: int, token: str | None, start_after: str | None,
              url: bool, contents: list[ObjectInfo], prefixes: list[str], truncated: bool,
              last: str) -> str:
    from urllib.parse import quote

    def enc(text: str) -> str:
        return escape(quote(text, safe="/") if url else text)

    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{XMLNS}">',
             f"<Name>{BUCKET}</Name><Prefix>{enc(prefix)}</Prefix>",
             f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>"]
    if delimiter:
        parts.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    if url:
        parts.append("<EncodingType>url</EncodingType>")
    parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if token is not None:
        parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
    if start_after is not None:
        parts.append(f"<StartAfter>{enc(start_after)}</StartAfter>")
    if truncated:
        nxt = base64.urlsafe_b64encode(last.encode()).decode()
        parts.append(f"<NextContinuationToken>{nxt}</NextContinuationToken>")
    for info in contents:
        parts.append(f"<Contents><Key>{enc(info.key)}</Key><LastModified>{_iso(info.last_modified_ms)}"
                     f"</LastModified><ETag>{escape(info.etag)}</ETag><Size>{info.size}</Size>"
                     "<StorageClass>STANDARD</StorageClass></Contents>")
    for common in prefixes:
        parts.append(f"<CommonPrefixes><Prefix>{enc(common)}</Prefix></CommonPrefixes>")
    parts.append("</ListBucketResult>")
    return "".join(parts)
