"""A stand-in for the Zalo Notification Service (ZNS) and Zalo's OAuth token endpoint, for
the integration tests.

Python's standard library only. The Rust harness (tests/it/support/zalo.rs) starts one per
test, with the interpreter that scripts/test.sh sets in NHACVIEC_TEST_PYTHON, points the
daemon's Zalo api_url and oauth_url both at it, and reads back what arrived.

    server.py --dir OUT [--port 0] [--watch-stdin] --app-id ID --secret-key KEY
              --refresh-token TOKEN [--access-ttl SECONDS] [--quota N]

What it shares with tests/channels/server.py is in tests/standin.py, whose docstring is
the reference for it: --dir, --port and --watch-stdin, `READY <port>`, stopping, HTTP/1.1
with keep-alive, the control routes /_script, /_reset and /_requests, the scripted answers
and requests.jsonl. This server never prints a token or the secret key anywhere (no access
log; a traceback on stderr has them hidden).

State, shared by every connection behind one lock: the one valid refresh token (at first
--refresh-token), whether it is marked expired, the refresh tokens already used, the
access tokens with the moment each expires (real time, --access-ttl seconds after it was
minted, default 90000), the daily quota (--quota, default 1000) and the number sent today,
the numbers without a Zalo account, and the known templates with their parameters' length
limits (none known: any template id is taken).

Routes. Zalo answers its errors with HTTP 200 and a JSON body, and so does the stand-in;
`error` 0 is success.

  POST /v4/oa/access_token   Zalo's OAuth v4 for Official Accounts: a refresh.
      Header `secret_key` must be KEY, else
          {"error": -14002, "error_name": "Invalid secret key", "error_description": ..}.
      The body is a form (application/x-www-form-urlencoded): `app_id` must be ID, else
      -14001 "Invalid app id"; `grant_type` must be "refresh_token", else -14003 "Invalid
      grant type"; `refresh_token`:
        - the valid one: a new access token `acc-<hex>` (expiring in --access-ttl seconds)
          and a new refresh token `ref-<hex>`, which becomes the one valid; the old one is
          used (a refresh token is single use). The answer:
              {"access_token": .., "refresh_token": .., "expires_in": "90000"}
          (expires_in a string, as Zalo sends it).
        - the valid one once marked expired (control `expire_refresh`):
              {"error": -14020, "error_name": "Refresh token is expired", ..}
        - any other (used, revoked, unknown, missing):
              {"error": -14014, "error_name": "Invalid refresh token",
               "error_description": "Refresh token is invalid"}
      With control `delay_refresh`, every answer here (error or not) is decided, recorded,
      and only sent that many seconds later: a second refresh racing the first finds the
      token used.

  POST /message/template     ZNS: sends a template message.
      Header `access_token` must be an access token minted here and not expired, else
          {"error": -124, "message": "Access token is invalid"}.
      The body is a JSON object (else -100 "Invalid request: the body is not a JSON
      object") with `phone`, `template_id`, `template_data` (an object of strings),
      `tracking_id`, and optionally `mode` ("development"), checked in this order:
        - phone matches ^84[0-9]{9}$, else -108 "Phone number is invalid";
        - phone has a Zalo account (control `no_account`), else -118 "Zalo account not
          existed";
        - template_id is known, when some are (control `templates`), else -1124
          "Template not found";
        - template_data is an object whose values are strings, else -1126 "Parameter is
          invalid"; each no longer (in characters) than its template's limit for that
          parameter, if one is set, else -1126 "Parameter length exceeded";
        - sent today < quota, else -1144 "Out of quota: daily quota exceeded".
      Success counts one more sent today and answers
          {"error": 0, "message": "Success", "data": {"msg_id": "<32 hex digits>",
           "sent_time": "<ms since the epoch, a string>",
           "quota": {"dailyQuota": "<quota>", "remainingQuota": "<quota - sent today>"}}}
      tracking_id and mode are only recorded (development mode counts like any other).

  POST /_zalo                the state, changed; a JSON object of any of:
        {"expire_access": true}     every access token minted so far expires now;
        {"expire_refresh": true}    the valid refresh token answers -14020 from now on;
        {"revoke_refresh": true}    the valid refresh token becomes used (-14014), and no
                                    refresh token is valid any more;
        {"refresh_token": "T"}      T becomes the one valid refresh token (as when the
                                    admin authorizes the app again);
        {"quota": N}                the daily quota (what was sent today stays counted);
        {"reset_day": true}         sent today = 0, as at midnight;
        {"no_account": ["84..", ..]}  the numbers without a Zalo account (replaces the set);
        {"templates": {"ID": {"max_len": {"param": N, ..}}, ..}}  the known templates and
                                    their limits (replaces them; {} takes any id again);
        {"delay_refresh": SECONDS}  the token endpoint's delay (0: none).
      Several at once apply in that order. 200 `{}`; a malformed one 400 with the reason.
  GET  /_state               {"refresh_token": the valid one or null, "used_refresh_tokens":
                             [..] in the order used, "sent_today": n, "quota": n}.
  POST /_script, POST /_reset, GET /_requests
                             tests/standin.py's control routes (scripts: below).
  Another method on a route above gets 405; any other path 404 (under /_ as well).

Scripted answers: POST /_script, as tests/standin.py says, with
    {"key": KEY, "responses": [R, R, ...], "then": R or null}
KEY is a request path without its query string ("/message/template",
"/v4/oa/access_token"), checked first, before anything else (a scripted answer changes no
state). R is one of tests/standin.py's: {"status": .., "headers": .., "body": ..} (a Zalo
error is {"status": 200, "body": {"error": -124, "message": ".."}}), {"action": "hangup"}
or {"action": "stall", "seconds": ..}.

What it writes into OUT: requests.jsonl, as tests/standin.py says (the same objects are
what GET /_requests returns; a request the token endpoint delays is there meanwhile), with
"path" as received, query string included, a field of its own, "form": the body parsed as
a form ({name: value}, the last of repeats) when its Content-Type is
application/x-www-form-urlencoded, else null, and "answer": {"status": code, "error": the
Zalo error code (0 for success) when the route answered} or {"status": code} (scripted) or
{"action": "hangup"} or {"action": "stall"}.
"""

import json
import re
import secrets
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests/, for standin

import standin  # noqa: E402

TOKEN_PATH = "/v4/oa/access_token"
SEND_PATH = "/message/template"
PHONE = re.compile(r"84[0-9]{9}")


def oauth_error(code, name, description):
    return {"error": code, "error_name": name, "error_description": description}


def zns_error(code, message):
    return {"error": code, "message": message}


def is_number(value, minimum=0):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= minimum


def check_control(c):
    """A POST /_zalo body, checked; raises ValueError saying what is wrong."""
    if not isinstance(c, dict):
        raise ValueError("a control is a JSON object")
    known = {
        "expire_access", "expire_refresh", "revoke_refresh", "refresh_token", "quota",
        "reset_day", "no_account", "templates", "delay_refresh",
    }
    unknown = set(c) - known
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    for flag in ("expire_access", "expire_refresh", "revoke_refresh", "reset_day"):
        if flag in c and not isinstance(c[flag], bool):
            raise ValueError(f'"{flag}" is true or false')
    if "refresh_token" in c and (not isinstance(c["refresh_token"], str) or not c["refresh_token"]):
        raise ValueError('"refresh_token" is a non-empty string')
    if "quota" in c and not (isinstance(c["quota"], int) and is_number(c["quota"])):
        raise ValueError('"quota" is an integer >= 0')
    if "delay_refresh" in c and not is_number(c["delay_refresh"]):
        raise ValueError('"delay_refresh" is a number of seconds >= 0')
    if "no_account" in c and not (
        isinstance(c["no_account"], list) and all(isinstance(p, str) for p in c["no_account"])
    ):
        raise ValueError('"no_account" is a list of phone numbers (strings)')
    if "templates" in c:
        templates = c["templates"]
        if not isinstance(templates, dict):
            raise ValueError('"templates" is {"ID": {"max_len": {"param": N}}}')
        for tid, t in templates.items():
            if not isinstance(t, dict) or set(t) - {"max_len"}:
                raise ValueError(f'template {json.dumps(tid)}: {{"max_len": {{"param": N}}}}')
            limits = t.get("max_len", {})
            if not isinstance(limits, dict) or not all(
                isinstance(n, int) and is_number(n) for n in limits.values()
            ):
                raise ValueError(f'template {json.dumps(tid)}: "max_len" is {{"param": N}}, N >= 0')
    return c


class State(standin.State):
    """What every connection's thread shares; each part behind the one lock."""

    def __init__(self, args):
        super().__init__(args)
        self.app_id = args.app_id
        self.secret_key = args.secret_key
        self.access_ttl = args.access_ttl
        self.refresh_token = args.refresh_token  # the one valid, or None
        self.refresh_expired = False
        self.used_refresh = []
        self.access = {}  # access token -> time.monotonic() when it expires
        self.quota = args.quota
        self.sent_today = 0
        self.no_account = set()
        self.templates = {}  # id -> {param: max length}
        self.delay_refresh = 0

    def secrets(self):
        """Every token and key there is, for hiding them in a traceback."""
        with self.lock:
            known = [self.secret_key, self.refresh_token, *self.used_refresh, *self.access]
        return sorted((s for s in known if s), key=len, reverse=True)

    def refresh(self, secret_key, form):
        """The token endpoint's answer (a JSON object) to this form."""
        if secret_key != self.secret_key:
            return oauth_error(-14002, "Invalid secret key", "The secret_key header is invalid")
        if form.get("app_id") != self.app_id:
            return oauth_error(-14001, "Invalid app id", "The app_id is invalid")
        if form.get("grant_type") != "refresh_token":
            return oauth_error(-14003, "Invalid grant type", "grant_type must be refresh_token")
        token = form.get("refresh_token")
        with self.lock:
            if not token or token != self.refresh_token:
                return oauth_error(-14014, "Invalid refresh token", "Refresh token is invalid")
            if self.refresh_expired:
                return oauth_error(-14020, "Refresh token is expired", "Refresh token is expired")
            access = f"acc-{secrets.token_hex(16)}"
            refresh = f"ref-{secrets.token_hex(16)}"
            self.used_refresh.append(token)
            self.refresh_token = refresh
            self.access[access] = time.monotonic() + self.access_ttl
            return {"access_token": access, "refresh_token": refresh, "expires_in": str(self.access_ttl)}

    def send(self, access_token, body):
        """ZNS's answer (a JSON object) to a template message with this body."""
        with self.lock:
            expiry = self.access.get(access_token)
            if expiry is None or time.monotonic() >= expiry:
                return zns_error(-124, "Access token is invalid")
            if not isinstance(body, dict):
                return zns_error(-100, "Invalid request: the body is not a JSON object")
            phone = body.get("phone")
            if not isinstance(phone, str) or not PHONE.fullmatch(phone):
                return zns_error(-108, "Phone number is invalid")
            if phone in self.no_account:
                return zns_error(-118, "Zalo account not existed")
            template_id = body.get("template_id")
            if self.templates and (not isinstance(template_id, str) or template_id not in self.templates):
                return zns_error(-1124, "Template not found")
            data = body.get("template_data")
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                return zns_error(-1126, "Parameter is invalid")
            limits = self.templates.get(template_id, {}) if isinstance(template_id, str) else {}
            for param, value in data.items():
                if param in limits and len(value) > limits[param]:
                    return zns_error(-1126, "Parameter length exceeded")
            if self.sent_today >= self.quota:
                return zns_error(-1144, "Out of quota: daily quota exceeded")
            self.sent_today += 1
            return {
                "error": 0,
                "message": "Success",
                "data": {
                    "msg_id": secrets.token_hex(16),
                    "sent_time": str(int(time.time() * 1000)),
                    "quota": {
                        "dailyQuota": str(self.quota),
                        "remainingQuota": str(max(self.quota - self.sent_today, 0)),
                    },
                },
            }

    def control(self, c):
        with self.lock:
            if c.get("expire_access"):
                now = time.monotonic()
                self.access = {t: min(e, now) for t, e in self.access.items()}
            if c.get("expire_refresh"):
                self.refresh_expired = True
            if c.get("revoke_refresh") and self.refresh_token is not None:
                self.used_refresh.append(self.refresh_token)
                self.refresh_token = None
                self.refresh_expired = False
            if "refresh_token" in c:
                self.refresh_token = c["refresh_token"]
                self.refresh_expired = False
            if "quota" in c:
                self.quota = c["quota"]
            if c.get("reset_day"):
                self.sent_today = 0
            if "no_account" in c:
                self.no_account = set(c["no_account"])
            if "templates" in c:
                self.templates = {tid: dict(t.get("max_len", {})) for tid, t in c["templates"].items()}
            if "delay_refresh" in c:
                self.delay_refresh = c["delay_refresh"]

    def snapshot(self):
        with self.lock:
            return {
                "refresh_token": self.refresh_token,
                "used_refresh_tokens": list(self.used_refresh),
                "sent_today": self.sent_today,
                "quota": self.quota,
            }


class Handler(standin.Handler):
    def serve(self, state, path, raw):
        body, parsed = standin.decode(raw)
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        form = dict(parse_qsl(body, keep_blank_values=True)) if ctype == "application/x-www-form-urlencoded" else None
        delay = 0
        answer = state.take(path)
        if answer is None:
            if path not in (TOKEN_PATH, SEND_PATH):
                answer = {"status": 404, "body": "no such route"}
            elif self.command != "POST":
                answer = {"status": 405, "headers": {"Allow": "POST"}, "body": "POST only"}
            elif path == TOKEN_PATH:
                zalo = state.refresh(self.headers.get("secret_key"), form or {})
                answer = {"status": 200, "body": zalo, "zalo": True}
                with state.lock:
                    delay = state.delay_refresh
            else:
                zalo = state.send(self.headers.get("access_token"), parsed)
                answer = {"status": 200, "body": zalo, "zalo": True}
        if "action" in answer:
            recorded = {"action": answer["action"]}
        elif answer.get("zalo"):
            recorded = {"status": answer["status"], "error": answer["body"].get("error", 0)}
        else:
            recorded = {"status": answer["status"]}
        self.record(state, body, parsed, recorded, form=form)
        if delay:
            state.stop.wait(delay)
        self.respond(state, answer)

    def own_control(self, state, path, raw):
        if path == "/_state" and self.command == "GET":
            body = json.dumps(state.snapshot(), ensure_ascii=False)
            self.send(200, standin.JSON, body.encode("utf-8"))
        elif path == "/_zalo" and self.command == "POST":
            try:
                c = check_control(json.loads(raw.decode("utf-8")))
            except ValueError as e:
                self.send(400, standin.TEXT, str(e).encode("utf-8"))
                return True
            state.control(c)
            self.send(200, standin.JSON, b"{}")
        else:
            return False
        return True


def main():
    p = standin.parser(__doc__)
    standin.add_watch_stdin(p)
    p.add_argument("--app-id", required=True, help="the app_id the token endpoint takes")
    p.add_argument("--secret-key", required=True, help="the secret_key header it takes")
    p.add_argument("--refresh-token", required=True, help="the first valid refresh token")
    p.add_argument("--access-ttl", type=int, default=90000, help="an access token's life, seconds")
    p.add_argument("--quota", type=int, default=1000, help="the daily quota of ZNS messages")
    standin.run(p.parse_args(), State, Handler)


if __name__ == "__main__":
    main()
