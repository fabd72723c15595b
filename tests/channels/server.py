"""A stand-in for the Telegram Bot API and for a webhook receiver, for the integration tests.

Python's standard library only. The Rust harness (tests/it/support/channels.rs) starts one
per test, with the interpreter that scripts/test.sh sets in NHACVIEC_TEST_PYTHON, points
the daemon's Telegram api_url and webhook URLs at it, and reads back what arrived.

    server.py --dir OUT [--port 0] [--token TOKEN] [--watch-stdin]

What it shares with tests/zalo/server.py is in tests/standin.py, whose docstring is the
reference for it: the options but --token, `READY <port>`, stopping, HTTP/1.1 with
keep-alive, the control routes, the scripted answers and requests.jsonl. This server
never prints the token anywhere (no access log; a traceback on stderr shows <TOKEN>).

Routes:
  POST|GET /bot<TOKEN>/<method>   the Telegram Bot API (below).
  POST /_script, POST /_reset, GET /_requests
                                  tests/standin.py's control routes (scripts: below).
  POST anything else              the webhook receiver (/hook/<name>, and every other path
                                  not under /bot or /_): 200, body `ok`. Another method
                                  there gets 405.
  Anything else under /_ gets 404.

The Telegram Bot API. A token other than --token gets 401
`{"ok":false,"error_code":401,"description":"Unauthorized"}` (without --token every token
is accepted); a method other than sendMessage (in any case, as Telegram takes it) gets 404
`{"ok":false,"error_code":404,"description":"Not Found"}`. sendMessage takes its parameters
as a JSON body, a form-encoded body or the query string (reply_markup and
link_preview_options either as JSON objects or, in a form, as JSON text) and checks them as
Telegram does, answering 400 `{"ok":false,"error_code":400,"description":"Bad Request: ..."}`:
  chat_id       an integer, a string of one, or "@username"; missing or empty:
                "chat_id is empty"; any other string: "chat not found".
  text          missing or empty (or whitespace, or empty once parsed): "message text is
                empty". Leading and trailing whitespace is trimmed, as Telegram does.
  parse_mode    "HTML" (any case) parses the text by Telegram's rules, as its server
                (TDLib's parse_html) does, with the same error texts: the tags b, strong, i,
                em, u, ins, s, strike, del, span class="tg-spoiler", tg-spoiler, a href=..,
                code (class="language-.." inside pre), pre, blockquote (optionally
                expandable), tg-emoji emoji-id=N; an unsupported tag, an unclosed or
                unmatched one, or a bad attribute: "can't parse entities: <why, with the
                byte offset>". Character references: &lt; &gt; &amp; &quot; and numeric ones
                (&#NN; &#xHH;). Stricter than Telegram, which shows any other `&` as text:
                here an unknown or unterminated one (`&nbsp;`, a bare `&`) is an error too,
                "can't parse entities: Character reference ...", so that text the daemon
                forgot to escape fails the test. No parse_mode: the text is taken as is.
                Any other parse_mode (MarkdownV2, Markdown) is refused, since the stand-in
                does not parse it: "unsupported parse_mode ...".
  length        the text once parsed (tags removed, references decoded, trimmed), counted
                in UTF-16 code units as Telegram does, over 4096: "message is too long".
  reply_markup  if present, {"inline_keyboard": [[{"text": .., "url": ..}, ..], ..]}
                (callback_data buttons are taken too); otherwise "can't parse reply
                keyboard markup JSON object" or "can't parse inline keyboard button: ...". A
                button url must be http or https with a host name of dotted labels ending in
                a top-level domain of letters (https://nhacviec.example.vn/a/x): an IP
                address, localhost, or another scheme gets "BUTTON_URL_INVALID".
  link_preview_options  if present, a JSON object ("can't parse link preview options
                JSON object" otherwise); only recorded.
Success: 200 {"ok":true,"result":{"message_id":N,"date":<unix time>,"chat":{"id":<chat_id,
an integer when numeric>},"text":<the text once parsed>, "entities":[..] when the HTML had
any (type, offset and length in UTF-16 code units, url for text_link, language for pre),
"reply_markup":<as sent> when sent}}, N counting 1, 2, ... over the server's life.

Scripted answers: POST /_script, as tests/standin.py says, with
    {"key": KEY, "responses": [R, R, ...], "then": R or null}
KEY is a request path without its query string ("/hook/a", or even "/bot<TOKEN>/sendMessage":
checked first, before anything else), or "chat:<chat_id>" (a sendMessage to that chat,
"chat:-1001234567890" or "chat:@channel", checked only once the token and the message have
passed, so an invalid message still gets its 400 and consumes nothing). R is one of
tests/standin.py's ({"status": ..}, {"action": "hangup"}, {"action": "stall", ..}) or
    {"telegram": {"error_code": 429, "description": "Too Many Requests: retry after 3",
                  "parameters": {"retry_after": 3}}, "headers": {...}}
        a Telegram error: HTTP status error_code, body {"ok":false,"error_code":..,
        "description":.., "parameters":.. when given}; headers optional.

What it writes into OUT: requests.jsonl, as tests/standin.py says (the same objects are
what GET /_requests returns), with "path" as received, the token included, no fields of
its own, and "answer" {"status": code} (a Telegram error's error_code) or {"action":
"hangup"} or {"action": "stall"}.
"""

import json
import re
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests/, for standin

import standin  # noqa: E402

MAX_LENGTH = 4096

# Tags Telegram's HTML parse mode accepts, and the entity each one makes.
TAGS = {
    "a": "text_link",
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "tg-emoji": "custom_emoji",
    "pre": "pre",
    "code": "code",
    "blockquote": "blockquote",
}

NAMED_REFERENCES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}

SPACE = " \t\r\n\f\v"

REFERENCE = re.compile(r"&(?:#(\d{1,7})|#x([0-9a-fA-F]{1,6})|([A-Za-z]+));")


class TelegramError(Exception):
    def __init__(self, code, description, parameters=None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def bad_request(why):
    return TelegramError(400, f"Bad Request: {why}")


def utf16_len(s):
    return len(s.encode("utf-16-le")) // 2


def reference_at(text, i):
    """The character reference at text[i] == "&": (decoded char, index after it), or None."""
    m = REFERENCE.match(text, i)
    if not m:
        return None
    if m.group(3) is not None:
        ch = NAMED_REFERENCES.get(m.group(3))
        return None if ch is None else (ch, m.end())
    code = int(m.group(1)) if m.group(1) is not None else int(m.group(2), 16)
    if code == 0 or code >= 0x110000 or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), m.end()


def parse_html(text):
    """Telegram's HTML parse mode, as TDLib's parse_html: the plain text and its entities.

    Raises TelegramError 400 "can't parse entities: ..." with TDLib's texts; offsets in
    the errors are byte offsets in UTF-8, as Telegram gives them.
    """

    def offset(i):
        return len(text[:i].encode("utf-8"))

    def fail(why):
        raise bad_request(f"can't parse entities: {why}")

    out = []  # pieces of the plain text
    out_len = 0  # its length in UTF-16 code units
    stack = []  # open tags: (name, argument, utf-16 offset and piece where they start)
    entities = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            ref = reference_at(text, i)
            if ref is None:
                m = re.compile(r"&#?[A-Za-z0-9]*;?").match(text, i)
                fail(
                    f'Character reference "{m.group(0)}" at byte offset {offset(i)} is not one of '
                    "&lt; &gt; &amp; &quot; &#NN; &#xHH; (a & must be written &amp;)"
                )
            ch, i = ref
            out.append(ch)
            out_len += utf16_len(ch)
            continue
        if c != "<":
            out.append(c)
            out_len += utf16_len(c)
            i += 1
            continue
        begin = i
        i += 1
        if i < n and text[i] == "/":
            # An end tag: </name> or </>, closing the innermost open tag.
            if not stack:
                fail(f"Unexpected end tag at byte offset {offset(begin)}")
            i += 1
            while i < n and text[i] not in SPACE and text[i] != ">":
                i += 1
            end_name = text[begin + 2 : i]
            while i < n and text[i] in SPACE:
                i += 1
            if i >= n or text[i] != ">":
                fail(f"Unclosed end tag at byte offset {offset(begin)}")
            i += 1
            name, argument, start, piece = stack.pop()
            if end_name and end_name.lower() != name:
                fail(
                    f'Unmatched end tag at byte offset {offset(begin)}, expected "</{name}>", '
                    f'found "</{end_name}>"'
                )
            entity = {"type": TAGS[name], "offset": start, "length": out_len - start}
            if name == "a":
                # No href: the link's own text is its URL.
                entity["url"] = argument or "".join(out[piece:])
            elif name == "pre" and argument:
                entity["language"] = argument
            elif name == "code" and stack and stack[-1][0] == "pre":
                # <pre><code class="language-x">: one pre entity, the language on it.
                if argument and not stack[-1][1]:
                    stack[-1] = ("pre", argument, *stack[-1][2:])
                continue
            elif name == "blockquote" and argument:
                entity["type"] = "expandable_blockquote"
            elif name == "tg-emoji":
                entity["custom_emoji_id"] = argument
            if entity["length"] > 0:
                entities.append(entity)
            continue
        # A start tag: <name attr="value" attr=token ...>.
        while i < n and text[i] not in SPACE and text[i] != ">":
            i += 1
        if i >= n:
            fail(f"Unclosed start tag at byte offset {offset(begin)}")
        name = text[begin + 1 : i].lower()
        if name not in TAGS:
            fail(f'Unsupported start tag "{name}" at byte offset {offset(begin)}')
        argument = ""
        while True:
            while i < n and text[i] in SPACE:
                i += 1
            if i >= n:
                fail(f'Unclosed start tag "{name}" at byte offset {offset(begin)}')
            if text[i] == ">":
                i += 1
                break
            attr_begin = i
            while i < n and text[i] not in SPACE and text[i] not in "=>":
                i += 1
            attr = text[attr_begin:i]
            if not attr:
                fail(f'Empty attribute name in the tag "{name}" at byte offset {offset(begin)}')
            while i < n and text[i] in SPACE:
                i += 1
            if i >= n or text[i] != "=":
                if name == "blockquote" and attr == "expandable":
                    argument = "1"
                    continue
                fail(
                    f'Expected equal sign in declaration of an attribute of the tag "{name}" '
                    f"at byte offset {offset(begin)}"
                )
            i += 1
            while i < n and text[i] in SPACE:
                i += 1
            if i >= n:
                fail(f'Unclosed start tag "{name}" at byte offset {offset(begin)}')
            if text[i] not in "'\"":
                token_begin = i
                while i < n and (text[i].isascii() and text[i].isalnum() or text[i] in ".-"):
                    i += 1
                value = text[token_begin:i].lower()
                if i >= n or (text[i] not in SPACE and text[i] != ">"):
                    fail(f"Unexpected end of name token at byte offset {offset(token_begin)}")
            else:
                quote = text[i]
                i += 1
                chars = []
                while i < n and text[i] != quote:
                    if text[i] == "&":
                        ref = reference_at(text, i)
                        if ref is not None:
                            chars.append(ref[0])
                            i = ref[1]
                            continue
                    chars.append(text[i])
                    i += 1
                if i >= n:
                    fail(f"Unclosed start tag at byte offset {offset(begin)}")
                i += 1
                value = "".join(chars)
            if name == "a" and attr == "href":
                argument = value
            elif name == "code" and attr == "class" and value.startswith("language-"):
                argument = value[len("language-") :]
            elif name == "span" and attr == "class" and value.startswith("tg-"):
                argument = value[len("tg-") :]
            elif name == "tg-emoji" and attr == "emoji-id":
                argument = value
        if name == "span" and argument != "spoiler":
            fail(f'Tag "span" must have class "tg-spoiler" at byte offset {offset(begin)}')
        if name == "tg-emoji" and not re.fullmatch(r"[1-9][0-9]{0,18}", argument):
            raise bad_request("Invalid custom emoji identifier specified")
        stack.append((name, argument, out_len, len(out)))
    if stack:
        fail(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def trim(text, entities):
    """Telegram trims the text's leading and trailing whitespace, moving the entities along."""
    stripped = text.strip(SPACE)
    if not stripped:
        return "", []
    lead = utf16_len(text[: len(text) - len(text.lstrip(SPACE))])
    end = utf16_len(stripped)
    kept = []
    for e in entities:
        start = max(e["offset"] - lead, 0)
        stop = min(e["offset"] + e["length"] - lead, end)
        if stop > start:
            kept.append({**e, "offset": start, "length": stop - start})
    return stripped, kept


def json_param(value, what):
    """A parameter that is a JSON object, given as one or as its JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {what} JSON object")
    if not isinstance(value, dict):
        raise bad_request(f"can't parse {what} JSON object")
    return value


def button_url_ok(url):
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return False
    try:
        host = parts.hostname or ""
        parts.port  # raises on a bad port
    except ValueError:
        return False
    labels = host.rstrip(".").split(".")
    if len(labels) < 2:
        return False
    label = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)|[^\x00-\x7f]+", re.IGNORECASE)
    if not all(label.fullmatch(part) for part in labels):
        return False
    tld = labels[-1]
    return bool(re.fullmatch(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}|[^\x00-\x7f]+", tld, re.I))


def check_reply_markup(value):
    markup = json_param(value, "reply keyboard markup")
    rows = markup.get("inline_keyboard")
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
    for row in rows:
        for button in row:
            if not isinstance(button, dict):
                raise bad_request("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
            if not isinstance(button.get("text"), str):
                raise bad_request('can\'t parse inline keyboard button: Field "text" must be of type String')
            if "url" in button:
                if not isinstance(button["url"], str):
                    raise bad_request('can\'t parse inline keyboard button: Field "url" must be of type String')
                if not button_url_ok(button["url"]):
                    raise bad_request("BUTTON_URL_INVALID")
            elif "callback_data" in button:
                if not isinstance(button["callback_data"], str):
                    raise bad_request(
                        'can\'t parse inline keyboard button: Field "callback_data" must be of type String'
                    )
                if not 1 <= len(button["callback_data"].encode("utf-8")) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
            else:
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                )
    return markup


def chat_key(chat_id):
    """The chat's id as an integer when numeric, else "@username"; its script key's tail."""
    if isinstance(chat_id, bool) or chat_id is None:
        raise bad_request("chat_id is empty")
    if isinstance(chat_id, int):
        return chat_id
    if isinstance(chat_id, float) and chat_id.is_integer():
        return int(chat_id)
    if not isinstance(chat_id, str) or not chat_id.strip():
        raise bad_request("chat_id is empty")
    s = chat_id.strip()
    if re.fullmatch(r"-?[0-9]{1,20}", s):
        return int(s)
    if re.fullmatch(r"@[A-Za-z][A-Za-z0-9_]{3,31}", s):
        return s
    raise bad_request("chat not found")


def send_message(params):
    """Checks sendMessage's parameters: (chat id, the result's fields but message_id/date)."""
    chat = chat_key(params.get("chat_id"))
    text = params.get("text")
    if not isinstance(text, str) or not text.strip(SPACE):
        raise bad_request("message text is empty")
    mode = params.get("parse_mode")
    if mode in (None, ""):
        plain, entities = text, []
    elif isinstance(mode, str) and mode.lower() == "html":
        plain, entities = parse_html(text)
    else:
        raise bad_request(f"unsupported parse_mode {mode!r} (the stand-in parses HTML only)")
    plain, entities = trim(plain, entities)
    if not plain:
        raise bad_request("message text is empty")
    if utf16_len(plain) > MAX_LENGTH:
        raise bad_request("message is too long")
    result = {"chat": {"id": chat}, "text": plain}
    if entities:
        result["entities"] = entities
    if params.get("reply_markup") is not None:
        result["reply_markup"] = check_reply_markup(params["reply_markup"])
    if params.get("link_preview_options") is not None:
        json_param(params["link_preview_options"], "link preview options")
    return chat, result



def check_telegram(t, where):
    """A scripted R's "telegram", checked; raises ValueError saying what is wrong."""
    if not isinstance(t, dict) or not isinstance(t.get("error_code"), int):
        raise ValueError(f'{where}: "telegram" needs an integer "error_code"')
    if not isinstance(t.get("description"), str):
        raise ValueError(f'{where}: "telegram" needs a "description" string')
    if not 100 <= t["error_code"] <= 599:
        raise ValueError(f'{where}: "error_code" is an HTTP status')


class State(standin.State):
    """What every connection's thread shares; each part behind the one lock."""

    mask = "<TOKEN>"

    def __init__(self, args):
        super().__init__(args)
        self.token = args.token
        self.message_id = 0

    def secrets(self):
        return [self.token] if self.token else []

    def next_message_id(self):
        with self.lock:
            self.message_id += 1
            return self.message_id


class Handler(standin.Handler):
    response_kinds = {"telegram": check_telegram}

    def serve(self, state, path, raw):
        answer = state.take(path)
        if answer is None:
            if path.startswith("/bot"):
                answer = self.telegram(state, path, raw)
            elif self.command == "POST":
                answer = {"status": 200, "body": "ok"}
            else:
                answer = {"status": 405, "headers": {"Allow": "POST"}, "body": "POST only"}
        body, parsed = standin.decode(raw)
        if "action" in answer:
            recorded = {"action": answer["action"]}
        else:
            recorded = {"status": answer["telegram"]["error_code"] if "telegram" in answer else answer["status"]}
        self.record(state, body, parsed, recorded)
        self.respond(state, answer)

    def telegram(self, state, path, raw):
        """The answer R of the Bot API to this request (before any chat script)."""
        m = re.fullmatch(r"/bot([^/]*)/([^/]*)", path)
        try:
            if not m or (state.token is not None and m.group(1) != state.token):
                raise TelegramError(401, "Unauthorized")
            if m.group(2).lower() != "sendmessage":
                raise TelegramError(404, "Not Found")
            chat, result = send_message(self.params(raw))
        except TelegramError as e:
            error = {"error_code": e.code, "description": e.description}
            if e.parameters:
                error["parameters"] = e.parameters
            return {"telegram": error}
        scripted = state.take(f"chat:{chat}")
        if scripted is not None:
            return scripted
        message = {"message_id": state.next_message_id(), "date": int(time.time()), **result}
        return {"status": 200, "body": {"ok": True, "result": message}}

    def params(self, raw):
        """sendMessage's parameters, from the query string and the body."""
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        text = raw.decode("utf-8", "replace")
        if ctype == "application/json":
            try:
                body = json.loads(text) if text.strip() else {}
            except ValueError as e:
                raise bad_request(f"can't parse JSON object: {e}")
            if not isinstance(body, dict):
                raise bad_request("can't parse JSON object: the body is not an object")
            params.update(body)
        elif ctype == "application/x-www-form-urlencoded":
            params.update(parse_qsl(text, keep_blank_values=True))
        elif raw:
            raise bad_request(f"the stand-in takes JSON or a form, not {ctype or 'no Content-Type'}")
        return params

    def render(self, answer):
        if "telegram" not in answer:
            return super().render(answer)
        t = answer["telegram"]
        status = t["error_code"]
        error = {"ok": False, "error_code": status, "description": t["description"]}
        if t.get("parameters") is not None:
            error["parameters"] = t["parameters"]
        return status, dict(standin.JSON), json.dumps(error, ensure_ascii=False).encode("utf-8")


def main():
    p = standin.parser(__doc__)
    p.add_argument("--token", help="the bot token the Bot API accepts (default: any)")
    standin.add_watch_stdin(p)
    standin.run(p.parse_args(), State, Handler)


if __name__ == "__main__":
    main()
