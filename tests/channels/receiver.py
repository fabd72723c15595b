"""A webhook receiver that verifies nhacviec's signatures (Standard Webhooks), in 20 lines.

docs/channels.md shows this file; tests/it/channels.rs runs it on what the daemon sent, so
the example in the docs is known to work. Run it: WEBHOOK_SECRET=whsec_… python3 receiver.py
"""
import base64, hashlib, hmac, json, os, time
from http.server import BaseHTTPRequestHandler, HTTPServer

KEY = base64.b64decode(os.environ["WEBHOOK_SECRET"].removeprefix("whsec_"))

def verified(headers, body: bytes, now=None) -> bool:
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    if now is not None and abs(now - int(ts)) > 300:  # refuse replays older than 5 minutes
        return False
    mac = hmac.new(KEY, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    return any(hmac.compare_digest(expected, s) for s in headers["webhook-signature"].split())

class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        if not verified(self.headers, body, now=time.time()):
            return self.send_error(401)
        event = json.loads(body)  # event["type"], event["data"]["unit"]["name"], ...
        print(event["type"], event["data"].get("obligation"), flush=True)
        self.send_response(204); self.end_headers()

if __name__ == "__main__":
    HTTPServer(("127.0.0.1", 9000), Hook).serve_forever()
