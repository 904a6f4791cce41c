#!/usr/bin/env python3
# A minimal OTLP/HTTP sink: answers every POST /v1/traces with 200 and counts bytes.
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    total = 0
    def do_POST(self):
        n = int(self.headers.get('Content-Length', 0)); self.rfile.read(n); H.total += n
        self.send_response(200); self.send_header('Content-Type', 'application/x-protobuf'); self.send_header('Content-Length', '0'); self.end_headers()
        sys.stderr.write("bytes %d\n" % H.total); sys.stderr.flush()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
