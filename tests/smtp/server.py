"""A real SMTP server for the integration tests, built on aiosmtpd.

The Rust harness (tests/it/smtp.rs) starts one per test, with the venv's Python that
scripts/test.sh sets in NHACVIEC_TEST_PYTHON, then talks to it with lettre or the real
nhacviec binary, and reads back what arrived.

    server.py --dir OUT [--mode plain|starttls|tls] [--certs DIR] [--port 0]
              [--auth USER:PASSWORD] [--require-tls] [--reply CODE] [--reject-rcpt CODE]
              [--drop-data] [--fail-first N] [--chaos FILE] [--watch-stdin]

Modes:
  plain     no TLS at all (AUTH, if asked for, is then offered in clear text).
  starttls  offers STARTTLS; AUTH is offered and accepted only after it. With
            --require-tls every command but EHLO/NOOP/STARTTLS/QUIT is refused
            (530) until STARTTLS is done, so no MAIL goes in clear text.
  tls       implicit TLS from the first byte (SMTPS, as on port 465).
With starttls or tls, --certs DIR is required: trustme makes a CA and a leaf certificate
for localhost and 127.0.0.1 signed by it; DIR/ca.pem is the CA (the client's root) and
DIR/server.pem the leaf's key and chain, which the server serves.

Faults: --reply CODE answers every end of DATA with CODE (451 "4.3.0 Try again later",
550 "5.1.1 Mailbox unavailable", ...); --reject-rcpt CODE does the same to every RCPT TO;
--drop-data closes the connection at the end of DATA without any reply; --fail-first N
answers the first N DATA of the server's life with 451, then accepts.

Chaos (the soak test, tests/it/soak.rs): --chaos FILE names a JSON file, read again at each
decision so the test can change it while the server runs: {"percent": P, "seed": S,
"spare": [addresses], "stall": seconds}. A new connection is closed before its greeting with
probability P/4 %; each end of DATA whose recipients are not all spared, with probability
P %, gets one fault: 451 (35 %), 554 (10 %, permanent), a hang-up with nothing saved
(20 %), the message saved and then a hang-up before the reply (15 %: the client cannot know
it arrived, so at least once means it comes again), or a stall of `stall` seconds (default
1.5) then a hang-up with nothing saved (20 %). Each fault is a `chaos` event in log.jsonl
(kind, message_id). Decisions come from one random generator seeded with S.

It binds 127.0.0.1 only, on --port (0: a free one), prints exactly one line
`READY <port>` on stdout once it accepts connections, and runs until SIGTERM or SIGINT
(or, with --watch-stdin, until its stdin closes: the harness holds that pipe, so the
server never outlives the test process), then exits 0.

What it writes into OUT:
  <n>.eml    each accepted message (250), the raw bytes received, n = 000001, 000002, ...
  <n>.json   its summary, made by Python's own MIME parser (policy.default): mail_from,
             rcpt_tos, subject/from/to/reply_to/message_id/date (decoded str or null),
             headers {lower-case name: [raw value, unfolded]}, is_multipart,
             content_type, parts [{content_type, charset, transfer_encoding, text}]
             (the leaf parts; text: a text part's decoded str, its CRLFs as LF),
             defects [str] (of the message, its parts and their headers).
  log.jsonl  one JSON object per session event: connect (tls), starttls (version), auth
             (ok, mechanism, user), mail, rcpt (reply), data (reply, n when saved,
             subject, message_id) and dropped.
Every file appears whole (written to a temporary name, then renamed); the .eml before
its .json, and the log line of a message before either.
"""

import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import re
import signal
import ssl
import sys
import threading
import warnings
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult

# The text sent after each reply code the tests may ask for.
REPLIES = {
    250: "2.0.0 OK",
    421: "4.3.2 Service not available, closing channel",
    450: "4.2.1 Mailbox busy, try again later",
    451: "4.3.0 Try again later",
    452: "4.3.1 Insufficient system storage",
    550: "5.1.1 Mailbox unavailable",
    552: "5.3.4 Message too big",
    553: "5.1.3 Mailbox name not allowed",
    554: "5.6.0 Transaction failed",
}


def reply(code):
    default = "4.0.0 Temporary failure" if code < 500 else "5.0.0 Permanent failure"
    return f"{code} {REPLIES.get(code, default)}"


def write_atomically(path, data):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def summary(envelope):
    """What the tests check of a message, as Python's MIME parser reads it."""
    msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)

    def decoded(name):
        value = msg[name]
        return None if value is None else str(value)

    headers = {}
    for name, value in msg.raw_items():
        headers.setdefault(name.lower(), []).append(re.sub(r"\r?\n(?=[ \t])", "", value))
    parts, defects = [], []
    for part in msg.walk():
        defects += [f"{type(d).__name__}: {d}" for d in part.defects]
        defects += [
            f"{name}: {type(d).__name__}: {d}"
            for name, value in part.items()
            for d in getattr(value, "defects", ())
        ]
        if part.is_multipart():
            continue
        text = None
        if part.get_content_maintype() == "text":
            text = part.get_content().replace("\r\n", "\n")
        parts.append({
            "content_type": part.get_content_type(),
            "charset": part.get_content_charset(),
            "transfer_encoding": part.get("Content-Transfer-Encoding"),
            "text": text,
        })
    return {
        "mail_from": envelope.mail_from,
        "rcpt_tos": envelope.rcpt_tos,
        "subject": decoded("Subject"),
        "from": decoded("From"),
        "to": decoded("To"),
        "reply_to": decoded("Reply-To"),
        "message_id": decoded("Message-ID"),
        "date": decoded("Date"),
        "headers": headers,
        "is_multipart": msg.is_multipart(),
        "content_type": msg.get_content_type(),
        "parts": parts,
        "defects": defects,
    }


class Handler:
    """aiosmtpd's hooks: records every event and message, answers as the options say."""

    def __init__(self, args):
        self.args = args
        self.out = Path(args.dir)
        self.saved = 0
        self.data_seen = 0
        self.rng = None

    def chaos(self):
        """The chaos settings now ({} without --chaos), and the generator, seeded once."""
        if not self.args.chaos:
            return {}
        try:
            c = json.loads(Path(self.args.chaos).read_text())
        except (OSError, ValueError):
            return {}
        if self.rng is None:
            import random
            self.rng = random.Random(c.get("seed", 0))
        return c

    def roll(self, percent):
        return percent > 0 and self.rng.random() * 100 < percent

    def save(self, envelope, about):
        self.saved += 1
        n = f"{self.saved:06}"
        self.log("data", reply=250, n=n, **about)
        write_atomically(self.out / f"{n}.eml", envelope.original_content)
        text = json.dumps(summary(envelope), ensure_ascii=False, indent=1)
        write_atomically(self.out / f"{n}.json", text.encode("utf-8"))

    def log(self, event, **fields):
        if self.args.sink:
            return
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": event, **fields}, ensure_ascii=False) + "\n")

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = f"{user}:{password}" == self.args.auth
        self.log("auth", ok=ok, mechanism=mechanism, user=user)
        # handled=False: aiosmtpd then answers 535 5.7.8 itself (235 on success).
        return AuthResult(success=ok, handled=False)

    def handle_STARTTLS(self, server, session, envelope):
        self.log("starttls", version=session.ssl["ssl_object"].version())
        return True

    async def handle_MAIL(self, server, session, envelope, address, options):
        self.log("mail", address=address, options=options)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        code = self.args.reject_rcpt or 250
        self.log("rcpt", address=address, reply=code)
        if code != 250:
            return reply(code)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_seen += 1
        if self.args.sink:
            # Benchmarks: accept at once, keep nothing, so the server is not what is measured.
            return reply(250)
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        about = {"subject": msg["Subject"] and str(msg["Subject"]),
                 "message_id": msg["Message-ID"] and str(msg["Message-ID"])}
        if self.args.drop_data:
            self.log("dropped", **about)
            # As QUIT does: end this session's task and close, so no reply is ever sent.
            server._handler_coroutine.cancel()
            server.transport.close()
            return "250 never sent"
        c = self.chaos()
        spared = set(envelope.rcpt_tos) <= set(c.get("spare", []))
        if c and not spared and self.roll(c.get("percent", 0)):
            r = self.rng.random() * 100
            kind = ("451" if r < 35 else "554" if r < 45 else "drop" if r < 65
                    else "save-drop" if r < 80 else "stall")
            self.log("chaos", kind=kind, **about)
            if kind in ("451", "554"):
                return reply(int(kind))
            if kind == "save-drop":
                self.save(envelope, about)
            if kind == "stall":
                await asyncio.sleep(c.get("stall", 1.5))
            server._handler_coroutine.cancel()
            server.transport.close()
            return "250 never sent"
        code = self.args.reply or (451 if self.data_seen <= self.args.fail_first else 250)
        if code != 250:
            self.log("data", reply=code, **about)
            return reply(code)
        self.save(envelope, about)
        return reply(250)


class LoggingSMTP(SMTP):
    """aiosmtpd's SMTP, logging each new connection and whether it is TLS already."""

    def connection_made(self, transport):
        first = self._original_transport is None  # set only once STARTTLS begins
        super().connection_made(transport)
        handler = self.event_handler
        c = handler.chaos()
        if first and c and handler.roll(c.get("percent", 0) / 4):
            # Closed before the greeting leaves: the client finds the door shut.
            handler.log("chaos", kind="refuse")
            transport.close()
            return
        if first:
            tls = transport.get_extra_info("ssl_object") is not None
            self.event_handler.log("connect", tls=tls)


def tls_context(certs):
    import trustme

    certs = Path(certs)
    certs.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(certs / "ca.pem"))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(certs / "server.pem"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(ctx)
    return ctx


async def serve(args):
    loop = asyncio.get_running_loop()
    handler = Handler(args)
    ctx = tls_context(args.certs) if args.mode != "plain" else None

    def session():
        return LoggingSMTP(
            handler,
            hostname="localhost",  # not socket.getfqdn(), which may wait on DNS
            enable_SMTPUTF8=True,
            tls_context=ctx if args.mode == "starttls" else None,
            require_starttls=args.require_tls,
            auth_required=args.auth is not None,
            # aiosmtpd counts only STARTTLS as TLS: with implicit TLS, or none, let AUTH in.
            auth_require_tls=args.mode == "starttls",
            authenticator=handler.authenticate,
            loop=loop,
        )

    server = await loop.create_server(
        session, host="127.0.0.1", port=args.port, ssl=ctx if args.mode == "tls" else None
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.watch_stdin:
        def watch():
            sys.stdin.buffer.read()
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch, daemon=True).start()
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", required=True, help="where captured messages go")
    p.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    p.add_argument("--certs", help="where to write ca.pem and server.pem (starttls, tls)")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--auth", metavar="USER:PASSWORD")
    p.add_argument("--require-tls", action="store_true", help="starttls: no MAIL before it")
    p.add_argument("--reply", type=int, metavar="CODE", help="reply to every end of DATA")
    p.add_argument("--reject-rcpt", type=int, metavar="CODE", help="reply to every RCPT TO")
    p.add_argument("--drop-data", action="store_true", help="close at end of DATA, no reply")
    p.add_argument("--fail-first", type=int, default=0, metavar="N", help="451 the first N DATA")
    p.add_argument("--chaos", metavar="FILE", help="random faults, as FILE says (above)")
    p.add_argument("--sink", action="store_true", help="accept every message, record nothing (benchmarks)")
    p.add_argument("--watch-stdin", action="store_true", help="also stop when stdin closes")
    args = p.parse_args()
    if args.mode != "plain" and not args.certs:
        p.error(f"--mode {args.mode} needs --certs DIR")
    if args.require_tls and args.mode != "starttls":
        p.error("--require-tls goes with --mode starttls")
    if args.auth is not None and ":" not in args.auth:
        p.error("--auth takes USER:PASSWORD")
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    # aiosmtpd warns that AUTH without STARTTLS is unsafe (here on purpose) and that
    # login_data is deprecated (it sets it itself): keep stderr for errors.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
