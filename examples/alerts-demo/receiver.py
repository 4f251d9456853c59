#!/usr/bin/env python3
"""A webhook receiver for hardcap's signed JSON alerts: it checks each Standard Webhooks signature,
drops ids it has seen, and prints one line per alert.

    HARDCAP_WEBHOOK_SECRET=whsec_... python3 receiver.py [PORT]
"""
import base64, hashlib, hmac, http.server, json, os, sys, time

SECRET = os.environ["HARDCAP_WEBHOOK_SECRET"]
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))
SEEN = set()


def verify(headers, body: bytes) -> bool:
    msg_id, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "0")
    if abs(time.time() - int(ts)) > 300:
        return False
    mac = hmac.new(KEY, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    want = "v1," + base64.b64encode(mac).decode()
    return any(hmac.compare_digest(want, s) for s in headers.get("webhook-signature", "").split())


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if not verify(self.headers, body):
            self.send_response(401)
            self.end_headers()
            print("REFUSED: bad signature", flush=True)
            return
        a = json.loads(body)
        if a["id"] not in SEEN:
            SEEN.add(a["id"])
            print(f'{a["id"]} {a["type"]} {a["action"]} | {a["message"]}', flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9911
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
