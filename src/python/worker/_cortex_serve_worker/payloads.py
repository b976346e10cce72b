"""The request side of the Cortex 0.17+ dialects: the request envelope
(src/python/envelope.ts) read back into content type, query string, headers
and body, and the payload parsed by Content-Type as Cortex did:
`application/json` -> parsed JSON; `text/plain` -> str (its charset, utf-8 by
default); `multipart/form-data` and `application/x-www-form-urlencoded` -> a
form with Starlette's FormData/UploadFile interface; anything else -> bytes.
`query_params` and `headers` are Starlette's QueryParams and Headers. The
classes are Starlette's own when it is installed (Debian: python3-starlette),
small compatible ones otherwise."""

import io
import json
import struct
import urllib.parse

import msgpack

U16 = struct.Struct(">H")
U32 = struct.Struct(">I")

try:  # pragma: no branch - either way the interface is the same
    from starlette.datastructures import FormData, Headers, QueryParams, UploadFile

    def make_upload(data, filename, content_type, part_headers):
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in part_headers]
        return UploadFile(file=io.BytesIO(data), size=len(data), filename=filename, headers=Headers(raw=raw))

    def make_headers(pairs):
        return Headers(raw=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs])

    STARLETTE = True
except ImportError:  # a compatible stand-in
    from .formdata import FormData, Headers, QueryParams, UploadFile

    def make_upload(data, filename, content_type, part_headers):
        return UploadFile(io.BytesIO(data), filename=filename, content_type=content_type, size=len(data),
                          headers=Headers(part_headers))

    def make_headers(pairs):
        return Headers(pairs)

    STARLETTE = False


class PayloadError(ValueError):
    """The body does not parse as its Content-Type says (the client's fault: 400)."""


def read_request(raw):
    """(content_type, query_string, header pairs, body) of a request envelope."""
    view = memoryview(raw)
    (n,) = U16.unpack_from(view, 0)
    at = 2 + n
    content_type = bytes(view[2:at]).decode("utf-8", "replace")
    (q,) = U32.unpack_from(view, at)
    at += 4
    query = bytes(view[at:at + q]).decode("utf-8", "replace")
    at += q
    (h,) = U32.unpack_from(view, at)
    at += 4
    headers = msgpack.unpackb(view[at:at + h], raw=False) if h else []
    return content_type, query, headers, bytes(view[at + h:])


def media_type(content_type):
    """The lower-cased type/subtype of a Content-Type, and its parameters."""
    main, _, rest = content_type.partition(";")
    params = {}
    for item in rest.split(";"):
        key, eq, value = item.strip().partition("=")
        if eq:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            params[key.strip().lower()] = value
    return main.strip().lower(), params


def parse_payload(content_type, body):
    """The payload as Cortex 0.17+ passed it to predict (see the module doc)."""
    kind, params = media_type(content_type)
    if kind.startswith("application/json"):
        try:
            return json.loads(body)
        except RecursionError:
            raise PayloadError("The request body is JSON that nests too deeply to parse")
        except ValueError as exc:
            raise PayloadError("The request body is not valid JSON: %s" % exc)
    if kind.startswith("text/plain"):
        charset = params.get("charset", "utf-8")
        try:
            return body.decode(charset)
        except LookupError:
            raise PayloadError("The request body has an unknown charset %r in its Content-Type" % charset)
        except UnicodeDecodeError as exc:
            raise PayloadError("The request body is not valid %s text: %s" % (charset, exc))
    if kind.startswith("multipart/form"):
        return parse_multipart(body, params.get("boundary"))
    if kind.startswith("application/x-www-form-urlencoded"):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError("The request body is a form that is not valid UTF-8: %s" % exc)
        return FormData(urllib.parse.parse_qsl(text, keep_blank_values=True))
    return body


def parse_multipart(body, boundary):
    """A multipart/form-data body as FormData: str fields, UploadFile files."""
    if not boundary:
        raise PayloadError("The request body is multipart, but its Content-Type names no boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise PayloadError("The request body does not contain its multipart boundary")
    items = []
    separator = b"\r\n" + delimiter
    at = start + len(delimiter)
    while True:
        if body.startswith(b"--", at):
            return FormData(items)
        if not body.startswith(b"\r\n", at):
            raise PayloadError("The request body is a malformed multipart form (after a boundary)")
        end = body.find(separator, at)
        if end < 0:
            raise PayloadError("The request body ends before its closing multipart boundary")
        items.append(_part(body[at + 2:end]))
        at = end + len(separator)


def _part(part):
    head, sep, data = part.partition(b"\r\n\r\n")
    if not sep:
        raise PayloadError("The request body has a multipart part without a blank line after its headers")
    pairs = []
    for line in head.split(b"\r\n"):
        name, colon, value = line.decode("utf-8", "replace").partition(":")
        if colon:
            pairs.append((name.strip().lower(), value.strip()))
    disposition = dict(pairs).get("content-disposition", "")
    kind, params = media_type(disposition)
    if kind != "form-data" or "name" not in params:
        raise PayloadError("The request body has a multipart part without Content-Disposition: form-data and a name")
    filename = params.get("filename")
    if "filename*" in params:
        encoded = params["filename*"]
        charset, _, rest = encoded.partition("''")
        filename = urllib.parse.unquote(rest or encoded, encoding=charset or "utf-8")
    if filename is None:
        return params["name"], data.decode("utf-8", "replace")
    content_type = dict(pairs).get("content-type", "application/octet-stream")
    return params["name"], make_upload(data, filename, content_type, pairs)


def query_params(query):
    return QueryParams(query)


def headers_of(pairs):
    return make_headers(pairs)
