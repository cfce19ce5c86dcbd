"""A fault-injecting HTTP proxy on 127.0.0.1 in front of the test S3 server (moto), for the job's S3 tests.

The job reaches it through ``AWS_ENDPOINT_URL_S3`` like any S3 endpoint; requests are passed on to the real
server unchanged (SigV4 signs the ``Host`` header, which is kept). Faults:

- ``500``: an S3 ``InternalError`` response; the request never reaches the server.
- ``503``: an S3 ``SlowDown`` response; the request never reaches the server.
- ``reset``: the connection is reset before the request is passed on.
- ``reset_after``: the request is applied by the server, then the connection is reset (the answer is lost).
- ``truncate``: the request is applied; the answer's headers promise the whole body, half of it is sent, and
  the connection is closed.
- ``delay``: the request waits ``delay`` seconds (a range), then goes through normally.

Random faults hit a ``rate`` of requests. Each decision is a hash of (seed, method, path, the query without
``uploadId``, how many times that request was seen), so a seed gives the same faults whatever the order in which
threads send requests. ``Rule``s add deterministic faults for requests matching a method and a path pattern
(e.g. hold every ``GET`` of one key for 30 s), and tell the test when the first matching request arrived.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

KINDS = ("500", "503", "reset", "reset_after", "truncate", "delay")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "expect"}
ERROR_BODY = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
              '<RequestId>fault-proxy</RequestId></Error>')


@dataclass
class Rule:
    """A fault for every request whose method and unquoted path match (``times`` limits how many)."""

    path: str  # regular expression searched in the unquoted path (``/bucket/key``)
    action: str  # one of KINDS
    method: str | None = None
    seconds: float = 0.0  # for ``delay``
    times: int | None = None
    hit: threading.Event = field(default_factory=threading.Event)
    count: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and re.search(self.path, path) is not None


@dataclass
class FaultPlan:
    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    delay: tuple[float, float] = (0.5, 2.0)
    rules: list[Rule] = field(default_factory=list)


class FaultProxy:
    """``with FaultProxy(upstream_url, plan) as proxy: ... proxy.url``; ``proxy.faults`` counts what it did."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.plan = plan or FaultPlan()
        self.faults: Counter = Counter()
        self.requests = 0
        self.log: list[tuple[str, str, str | None]] = []  # (method, path?query, fault) of every request
        self._seen: Counter = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def decide(self, method: str, raw_path: str) -> tuple[str | None, float]:
        """The fault for this request (None: pass it on) and, for a delay, how long."""
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        with self._lock:
            self.requests += 1
            for rule in self.plan.rules:
                if rule.matches(method, path) and (rule.times is None or rule.count < rule.times):
                    rule.count += 1
                    rule.hit.set()
                    self.faults[rule.action] += 1
                    self.log.append((method, raw_path, rule.action))
                    return rule.action, rule.seconds
            query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "uploadId")
            identity = f"{method} {path} {query}"
            self._seen[identity] += 1
            digest = hashlib.sha256(f"{self.plan.seed}|{identity}|{self._seen[identity]}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        kind = None
        if draw < self.plan.rate:
            kind = self.plan.kinds[int.from_bytes(digest[8:12], "big") % len(self.plan.kinds)]
        low, high = self.plan.delay
        seconds = low + (high - low) * int.from_bytes(digest[12:16], "big") / 2**32
        with self._lock:
            self.log.append((method, raw_path, kind))
            if kind is not None:
                self.faults[kind] += 1
        return kind, seconds


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._proxy()

        do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

        def _read_body(self) -> tuple[bytes, bool]:
            """The request body as sent (raw chunked framing kept) and whether it is chunked."""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                raw = bytearray()
                while True:
                    line = self.rfile.readline()
                    raw += line
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while True:  # trailers, then an empty line
                            trailer = self.rfile.readline()
                            raw += trailer
                            if trailer in (b"\r\n", b"\n", b""):
                                return bytes(raw), True
                    raw += self.rfile.read(size + 2)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b"", False

        def _reset(self) -> None:
            """Close with RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            except OSError:
                pass

        def _error(self, status: int, code: str, message: str) -> None:
            body = ERROR_BODY.format(code=code, message=message).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _proxy(self) -> None:
            body, chunked = self._read_body()
            fault, seconds = proxy.decide(self.command, self.path)
            if fault == "delay":
                threading.Event().wait(seconds)
            elif fault == "500":
                return self._error(500, "InternalError", "We encountered an internal error. Please try again.")
            elif fault == "503":
                return self._error(503, "SlowDown", "Please reduce your request rate.")
            elif fault == "reset":
                return self._reset()
            try:
                status, reason, headers, answer = self._forward(body, chunked)
            except OSError:
                return self._reset()
            if fault == "reset_after" or (fault == "truncate" and len(answer) < 2):
                return self._reset()
            self.send_response(status, reason)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP and (name.lower() != "content-length" or self.command == "HEAD"):
                    self.send_header(name, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            if fault == "truncate":  # half the body, then an orderly close: the client reads a short body
                self.wfile.write(answer[: len(answer) // 2])
                self.close_connection = True
                return None
            if self.command != "HEAD":
                self.wfile.write(answer)

        def _forward(self, body: bytes, chunked: bool) -> tuple[int, str, list[tuple[str, str]], bytes]:
            connection = http.client.HTTPConnection(*proxy.upstream, timeout=120)
            try:
                connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP or (chunked and name.lower() == "transfer-encoding"):
                        connection.putheader(name, value)
                connection.endheaders()
                if body:
                    connection.send(body)
                response = connection.getresponse()
                answer = response.read()
                return response.status, response.reason, response.getheaders(), answer
            finally:
                connection.close()

    return Handler
