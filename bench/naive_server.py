"""The naive design: a standard-library HTTP server that opens SQLite and commits once per event."""
import json
import sqlite3
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock


def main(port: int, path: str) -> None:
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("CREATE TABLE IF NOT EXISTS events (event_id TEXT UNIQUE, visitor_id TEXT, variant TEXT, "
               "event_type TEXT, ts INTEGER)")
    lock = Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.reply(200, {"status": "ok"})

        def do_POST(self):
            event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                db.execute("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?)",
                           (event["event_id"], event["visitor_id"], event["variant"], event["event_type"], 0))
                db.commit()
            self.reply(202, {"accepted": 1, "duplicates": 0})

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
