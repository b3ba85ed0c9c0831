#!/usr/bin/env python3
"""Lab test double for GitLab's runner REST API (no real GitLab can run on the lab machine).

Implements the documented endpoints provision calls, with runners kept in memory:
  POST   /api/v4/user/runners     create a runner (PRIVATE-TOKEN with create_runner) -> glrt- token
  POST   /api/v4/runners          legacy registration with a registration token
  POST   /api/v4/runners/verify   200 if the token is a live runner's, else 403
  DELETE /api/v4/runners          delete the runner the token belongs to
  GET    /api/v4/personal_access_tokens/self   the PRIVATE-TOKEN's scopes (what `plan` checks)
and, for tests only: GET /lab/state (runners and calls), POST /lab/revoke (revoke every token),
POST /lab/reset (forget everything).
"""
import argparse
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"runners": [], "calls": [], "next_id": 1}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):  # quiet: calls are in /lab/state
        pass

    def reply(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return {}

    def create(self, prefix, body):
        rid = STATE["next_id"]
        STATE["next_id"] += 1
        token = prefix + secrets.token_hex(10)
        STATE["runners"].append({"id": rid, "token": token, "description": body.get("description", ""),
                                 "tag_list": body.get("tag_list", ""), "runner_type": body.get("runner_type"),
                                 "revoked": False})
        return self.reply(201, {"id": rid, "token": token, "token_expires_at": None})

    def handle_any(self, method):
        body = self.body() if method != "GET" else {}
        with LOCK:
            if not self.path.startswith("/lab/"):
                STATE["calls"].append(f"{method} {self.path}")
            token = body.get("token", "")
            live = [r for r in STATE["runners"] if r["token"] == token and not r["revoked"]]
            if (method, self.path) == ("GET", "/lab/state"):
                return self.reply(200, {"runners": STATE["runners"], "calls": STATE["calls"]})
            if (method, self.path) == ("POST", "/lab/revoke"):
                for r in STATE["runners"]:
                    r["revoked"] = True
                return self.reply(200, {})
            if (method, self.path) == ("POST", "/lab/reset"):
                STATE["runners"].clear()
                STATE["calls"].clear()
                return self.reply(200, {})
            if (method, self.path) == ("GET", "/api/v4/personal_access_tokens/self"):
                pat = self.headers.get("PRIVATE-TOKEN")
                if pat == ARGS.pat:
                    return self.reply(200, {"name": "lab", "scopes": ["create_runner"], "active": True, "revoked": False})
                if pat == ARGS.read_only_pat:
                    return self.reply(200, {"name": "lab-ro", "scopes": ["read_api"], "active": True, "revoked": False})
                return self.reply(401, {"message": "401 Unauthorized"})
            if (method, self.path) == ("POST", "/api/v4/user/runners"):
                if self.headers.get("PRIVATE-TOKEN") != ARGS.pat:
                    return self.reply(403, {"message": "403 Forbidden - insufficient_scope"})
                return self.create("glrt-", body)
            if (method, self.path) == ("POST", "/api/v4/runners"):
                if token != ARGS.registration_token:
                    return self.reply(403, {"message": "403 Forbidden"})
                return self.create("legacy-", body)
            if (method, self.path) == ("POST", "/api/v4/runners/verify"):
                return self.reply(200, {"id": live[0]["id"], "token": token}) if live else self.reply(403, {"message": "403 Forbidden"})
            if (method, self.path) == ("DELETE", "/api/v4/runners"):
                match = [r for r in STATE["runners"] if r["token"] == token]
                if not match:
                    return self.reply(403, {"message": "403 Forbidden"})
                STATE["runners"].remove(match[0])
                return self.reply(204)
            return self.reply(404, {"message": "404 Not Found"})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_DELETE(self):
        self.handle_any("DELETE")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=5998)
    p.add_argument("--pat", default="glpat-lab-create-runner")
    p.add_argument("--read-only-pat", default="glpat-lab-read-only")
    p.add_argument("--registration-token", default="GR1348941lab-registration")
    ARGS = p.parse_args()
    ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler).serve_forever()
