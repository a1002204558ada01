"""``?jsonp=callback`` on the JSON GET endpoints, as the Mesos web UI asks for them.

Owns: :class:`JsonpTransform`, a tornado output transform for an application's
``transforms``: a 200 JSON answer to a GET with ``jsonp=<name>`` becomes
``<name>(<json>);`` (``application/javascript``).  A callback that is not a plain
JavaScript name (``a.b_c$1``) is answered 400 naming ``jsonp``.  Streamed answers
(several chunks) are left alone.
"""

from __future__ import annotations

import json
import re

import tornado.httputil
import tornado.web

_NAME = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$")
#: Longest callback name accepted.
MAX_CALLBACK = 128


class JsonpTransform(tornado.web.OutputTransform):
    """Wraps whole JSON answers of GET requests that carry ``jsonp``."""

    def __init__(self, request: tornado.httputil.HTTPServerRequest) -> None:
        """Read the callback name (if any) from the request."""
        super().__init__(request)
        values = request.query_arguments.get("jsonp") if request.method == "GET" else None
        self.callback = values[-1].decode("utf-8", "replace") if values else None

    def transform_first_chunk(
        self, status_code: int, headers: tornado.httputil.HTTPHeaders, chunk: bytes,
        finishing: bool,
    ) -> tuple[int, tornado.httputil.HTTPHeaders, bytes]:
        """Wrap (or refuse) a whole JSON answer; pass everything else through."""
        callback = self.callback
        if callback is None or not finishing or status_code != 200 \
                or "json" not in headers.get("Content-Type", ""):
            return status_code, headers, chunk
        if len(callback) > MAX_CALLBACK or not _NAME.match(callback):
            body = json.dumps({"message": f"jsonp: expected a JavaScript name, got "
                                          f"{callback[:60]!r}", "field": "jsonp"}).encode()
            headers["Content-Length"] = str(len(body))
            return 400, headers, body
        body = callback.encode() + b"(" + chunk + b");"
        headers["Content-Type"] = "application/javascript; charset=utf-8"
        headers["Content-Length"] = str(len(body))
        return status_code, headers, body
