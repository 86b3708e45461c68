"""How large a request body may be, decided before a byte of it is read.

A JSON or form body may be AFTERSALES_MAX_BODY (1 MB by default); an upload may carry
its files at the largest size allowed plus the multipart around them (web/evidence.py
names the upload endpoints). A declared Content-Length beyond the request's limit is
answered 413 here, before any view, the CSRF check or the sign-in reads the body.

A body streamed without a length (chunked; the server ends the stream) is cut off once
it passes the same limit: an upload's by Werkzeug while the form is parsed
(`request.max_content_length`), any other here, read at most one byte past the limit
and then handed on with its length. (Werkzeug's `get_data` would silently return the
first `limit` bytes of a longer stream: a truncated JSON body, never a 413.)
"""

from __future__ import annotations

import io

from flask import Flask, current_app, request

from web import evidence
from web.problems import Problem


def register(app: Flask) -> None:
    """Refuse oversized bodies first: registered before every other request hook."""
    app.config["MAX_CONTENT_LENGTH"] = app.extensions["aftersales"].settings.max_body
    app.before_request(limit_body)


def limit_body() -> None:
    """Set this request's limit and refuse a declared length beyond it (413)."""
    upload = evidence.upload_limit()
    limit = upload if upload is not None else \
        current_app.extensions["aftersales"].settings.max_body
    request.max_content_length = limit
    length = request.content_length
    if length is None and upload is None and "wsgi.input_terminated" in request.environ:
        length = _buffer_stream(limit)
    if length is None or length <= limit:
        return
    if upload is not None:
        raise evidence.too_large()
    raise Problem(413, "Too large", f"a request body may be at most {limit} bytes")


def _buffer_stream(limit: int) -> int:
    """Read a streamed body up to one byte past `limit`; when it fits, it becomes the
    request's body with its length. Returns how much was read."""
    environ = request.environ
    stream, data = environ["wsgi.input"], bytearray()
    while len(data) <= limit:
        chunk = stream.read(limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
    if len(data) <= limit:
        environ["wsgi.input"] = io.BytesIO(bytes(data))
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
    return len(data)
