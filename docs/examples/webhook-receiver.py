# A webhook receiver with nothing but Python 3's standard library: it checks
# the Standard Webhooks signature (webhook-id "." webhook-timestamp "." body,
# HMAC-SHA256, base64) against every signature in webhook-signature, and the
# timestamp's age, then answers 200 (verified) or 401.
import base64, hashlib, hmac, http.server, json, os, time

SECRET = os.environ["WEBHOOK_SECRET"]
KEY = base64.b64decode(SECRET[len("whsec_"):]) if SECRET.startswith("whsec_") else SECRET.encode()

class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        msg_id, ts = self.headers["webhook-id"], self.headers["webhook-timestamp"]
        mac = hmac.new(KEY, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
        expected = base64.b64encode(mac).decode()
        received = [s.split(",", 1)[1] for s in self.headers["webhook-signature"].split()]
        ok = abs(time.time() - int(ts)) < 300 and any(hmac.compare_digest(expected, s) for s in received)
        event = json.loads(body)
        print("verified" if ok else "REJECTED", event["type"], "event", event["id"], "delivery", msg_id, flush=True)
        self.send_response(200 if ok else 401)
        self.end_headers()

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "3000"))), Hook).serve_forever()
