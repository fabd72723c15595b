"""What the integration tests' HTTP stand-ins share (tests/channels/server.py, the Telegram
Bot API and webhook receiver; tests/zalo/server.py, Zalo's ZNS and OAuth token endpoint).

Python's standard library only. Each server imports this module (it puts tests/ on
sys.path) and keeps its own routes, state and checks; this module is the rest:

    server.py --dir OUT [--port 0] [--watch-stdin] [the server's own options]

It binds 127.0.0.1 only, on --port (0: a free one), prints exactly one line `READY <port>`
on stdout once it accepts connections, and runs until SIGTERM or SIGINT (or, with
--watch-stdin, until its stdin closes: the harness holds that pipe, so the server never
outlives the test process), then exits 0. It speaks HTTP/1.1 with keep-alive (every
answer has a Content-Length), one thread per connection, so a stalled request never holds
up another. It prints nothing else on stdout, and no access log; a traceback on stderr has
the server's secrets hidden.

Control routes, the same in both (a server may add its own under /_):
  POST /_script                   scripts the answers to some requests (below); 200 `{}`.
  POST /_reset                    forgets every script; 200 `{}`.
  GET  /_requests                 the JSON array of every request recorded so far.
  Any other path under /_, or another method on one of these, gets 404.

Scripted answers: POST /_script with
    {"key": KEY, "responses": [R, R, ...], "then": R or null}
What a KEY matches, and when it is checked, is the server's own. Each matching request
takes the next R off the list; once it is empty, `then`, when given, answers every later
matching request; otherwise the route's own answer. A new script for a KEY replaces the
old one. R is one of:
    {"status": 429, "headers": {"Retry-After": "2"}, "body": "text" or any JSON value}
        that status and headers, and the body: a string as text/plain, any other JSON
        value as application/json (a Content-Type among the headers wins); no body: empty.
    {"action": "hangup"}
        reads the request, then closes the connection without a byte of answer.
    {"action": "stall", "seconds": 30}
        reads the request, waits that long (or until the server stops), then closes the
        connection without answering.
    or one of the server's own kinds of R (Telegram's "telegram").
A malformed script gets 400 with the reason as text.

What it writes into OUT:
  requests.jsonl  one JSON object per line, for every request not under /_, written and
                  flushed once the request is read and its answer decided, before the
                  answer is sent (so a stalled request is there while it stalls):
                  {"n": 1-based, "at": time.time(), "method", "path" (as received, query
                  string included), "headers": {lower-case name: value, repeats joined by
                  ", "}, "body": the body as UTF-8 text (invalid bytes replaced), "json":
                  the body parsed as JSON or null, then the server's own fields, and
                  "answer": {"status": code} (with more the server adds) or {"action":
                  "hangup"} or {"action": "stall"}}.
The same objects, in memory, are what GET /_requests returns.
"""

import argparse
import http.server
import json
import signal
import socketserver
import sys
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import urlsplit

TEXT = {"Content-Type": "text/plain; charset=utf-8"}
JSON = {"Content-Type": "application/json"}


def check_response(r, where, kinds=None):
    """A script's response R, checked; raises ValueError saying what is wrong.

    kinds: the server's own kinds of R, {"name": check(value, where)}: an R with that
    field is checked by that function (which raises ValueError) instead of as a status.
    """
    kinds = kinds or {}
    if not isinstance(r, dict):
        raise ValueError(f"{where}: a response is an object, not {json.dumps(r)}")
    if "action" in r:
        if r["action"] == "hangup":
            return r
        if r["action"] == "stall":
            if not isinstance(r.get("seconds"), (int, float)) or r["seconds"] < 0:
                raise ValueError(f'{where}: "stall" needs "seconds", a number >= 0')
            return r
        raise ValueError(f'{where}: "action" is "hangup" or "stall", not {json.dumps(r["action"])}')
    headers = r.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, (str, int)) for v in headers.values()):
        raise ValueError(f'{where}: "headers" is an object of strings')
    for kind, check in kinds.items():
        if kind in r:
            check(r[kind], where)
            return r
    if not isinstance(r.get("status"), int) or not 100 <= r["status"] <= 599:
        fields = ['"status" (an HTTP status)', *(f'"{kind}"' for kind in kinds), '"action"']
        raise ValueError(f"{where}: a response has {', '.join(fields[:-1])} or {fields[-1]}")
    return r


def decode(raw):
    """A body as recorded: (UTF-8 text with invalid bytes replaced, parsed JSON or None)."""
    body = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return body, parsed


class State:
    """What every connection's thread shares; each part behind the one lock.

    A server's own State derives from this one, calling its __init__ first.
    """

    # What a secret is replaced with in a traceback.
    mask = "<SECRET>"

    def __init__(self, args):
        self.out = Path(args.dir)
        self.lock = threading.Lock()
        self.scripts = {}  # key -> {"responses": [R, ...], "then": R or None}
        self.requests = []
        self.stop = threading.Event()
        self.log = open(self.out / "requests.jsonl", "a", encoding="utf-8")

    def secrets(self):
        """The strings to hide in a traceback (the longest first)."""
        return []

    def take(self, key):
        """The next scripted response for this key, or None."""
        with self.lock:
            script = self.scripts.get(key)
            if script is None:
                return None
            if script["responses"]:
                return script["responses"].pop(0)
            return script["then"]

    def record(self, entry):
        with self.lock:
            entry["n"] = len(self.requests) + 1
            self.requests.append(entry)
            self.log.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self.log.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    """The HTTP side; a server's own Handler derives from it and defines serve()."""

    protocol_version = "HTTP/1.1"
    server_version = "nhacviec-stand-in"
    sys_version = ""

    # The server's own kinds of scripted R: see check_response.
    response_kinds = {}

    def log_message(self, format, *args):
        pass  # no access log: it would print the secrets

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def do_PATCH(self):
        self.handle_any()

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_any(self):
        state = self.server.state
        raw = self.read_body()
        path = urlsplit(self.path).path
        if path.startswith("/_"):
            self.control(state, path, raw)
            return
        self.serve(state, path, raw)

    def serve(self, state, path, raw):
        """Answers a request not under /_: records it (record()), then respond()."""
        raise NotImplementedError

    def record(self, state, body, parsed, answer, **own):
        """Records this request: `own` are the server's own fields, before "answer"."""
        state.record({
            "n": 0,
            "at": time.time(),
            "method": self.command,
            "path": self.path,
            "headers": self.header_map(),
            "body": body,
            "json": parsed,
            **own,
            "answer": answer,
        })

    def header_map(self):
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return headers

    def control(self, state, path, raw):
        if path == "/_requests" and self.command == "GET":
            with state.lock:
                body = json.dumps(state.requests, ensure_ascii=False)
            self.send(200, JSON, body.encode("utf-8"))
        elif path == "/_reset" and self.command == "POST":
            with state.lock:
                state.scripts.clear()
            self.send(200, JSON, b"{}")
        elif path == "/_script" and self.command == "POST":
            try:
                script = json.loads(raw.decode("utf-8"))
                if not isinstance(script, dict) or not isinstance(script.get("key"), str):
                    raise ValueError('a script is {"key": KEY, "responses": [R, ...], "then": R or null}')
                key = script["key"]
                responses = script.get("responses", [])
                if not isinstance(responses, list):
                    raise ValueError('"responses" is a list')
                kinds = self.response_kinds
                responses = [check_response(r, f"responses[{i}]", kinds) for i, r in enumerate(responses)]
                then = script.get("then")
                if then is not None:
                    check_response(then, "then", kinds)
                unknown = set(script) - {"key", "responses", "then"}
                if unknown:
                    raise ValueError(f"unknown fields {sorted(unknown)}")
            except ValueError as e:
                self.send(400, TEXT, str(e).encode("utf-8"))
                return
            with state.lock:
                state.scripts[key] = {"responses": responses, "then": then}
            self.send(200, JSON, b"{}")
        elif not self.own_control(state, path, raw):
            self.send(404, TEXT, b"no such control route")

    def own_control(self, state, path, raw):
        """The server's own control routes: True once it has answered this one."""
        return False

    def respond(self, state, answer):
        action = answer.get("action")
        if action == "hangup":
            self.close_connection = True
            return
        if action == "stall":
            state.stop.wait(answer["seconds"])
            self.close_connection = True
            return
        status, headers, body = self.render(answer)
        for name, value in answer.get("headers", {}).items():
            headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
            headers[name] = str(value)
        self.send(status, headers, body)

    def render(self, answer):
        """An answer R's (status, headers, body) before its own headers; a server's own
        kinds of R are its to render."""
        status = answer["status"]
        value = answer.get("body")
        if value is None:
            return status, {}, b""
        if isinstance(value, str):
            return status, dict(TEXT), value.encode("utf-8")
        return status, dict(JSON), json.dumps(value, ensure_ascii=False).encode("utf-8")

    def send(self, status, headers, body):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a stalled request must not hold up the exit

    def server_bind(self):
        # Not HTTPServer's, which asks socket.getfqdn() and may wait on DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        kind = sys.exc_info()[0]
        if kind is not None and issubclass(kind, (ConnectionError, TimeoutError)):
            return  # the client went away: its business
        text = traceback.format_exc()
        for secret in self.state.secrets():
            text = text.replace(secret, self.state.mask)
        sys.stderr.write(f"error on a request from {client_address}:\n{text}")
        sys.stderr.flush()


def parser(doc):
    """The command line's parser with --dir and --port; the server adds its own options
    and, where its --help shows it, add_watch_stdin()."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--dir", required=True, help="where requests.jsonl goes")
    p.add_argument("--port", type=int, default=0)
    return p


def add_watch_stdin(p):
    p.add_argument("--watch-stdin", action="store_true", help="also stop when stdin closes")


def run(args, make_state, handler):
    """Serves until SIGTERM, SIGINT or (with --watch-stdin) the end of stdin, as above."""
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    state = make_state(args)
    server = Server(("127.0.0.1", args.port), handler)
    server.state = state

    def stop(*_):
        state.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.watch_stdin:
        def watch():
            sys.stdin.buffer.read()
            stop()

        threading.Thread(target=watch, daemon=True).start()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    print(f"READY {server.server_address[1]}", flush=True)
    while not state.stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()
