"""A stand-in for the parts of api.github.com the workflows call, plus a deploy hook, on 127.0.0.1.

Issue and pull-request comments and workflow dispatches live in memory; every request is recorded so tests can
assert on them.
The workflows reach it through GITHUB_API_URL, the variable GitHub itself sets on every runner.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class GitHubState:
    """What the stand-in holds: comments by pull-request number, issues, deploy-hook calls, every request."""

    repository: str
    token: str
    comments: dict[int, list[dict]] = field(default_factory=dict)
    issues: list[dict] = field(default_factory=list)
    hook_calls: list[dict] = field(default_factory=list)
    dispatches: list[dict] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    next_id: int = 1000

    def new_id(self) -> int:
        """A fresh id for a comment or issue."""
        self.next_id += 1
        return self.next_id


class Handler(BaseHTTPRequestHandler):
    """Routes the handful of REST calls .github/scripts/github_api.py makes, and POST /deploy-hook."""

    state: GitHubState
    lock = threading.Lock()

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        """Stay quiet: tests read the recorded requests instead."""

    def reply(self, status: int, body: object) -> None:
        """Send a JSON answer (no body with 204, as GitHub does)."""
        data = b"" if status == 204 else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self) -> dict:
        """The request's JSON body."""
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def handle_any(self, method: str) -> None:
        """Answer one request, after checking the token like GitHub does."""
        path = urlsplit(self.path).path
        state = self.state
        with self.lock:
            state.requests.append((method, self.path))
            if path == "/deploy-hook" and method == "POST":
                state.hook_calls.append(self.body())
                return self.reply(200, {"ok": True})
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                return self.reply(401, {"message": "Bad credentials"})
            repo = f"/repos/{state.repository}"
            if match := re.fullmatch(rf"{repo}/issues/(\d+)/comments", path):
                comments = state.comments.setdefault(int(match[1]), [])
                if method == "GET":
                    return self.reply(200, comments if "page=1" in self.path or "page" not in self.path else [])
                comment = {"id": state.new_id(), "body": self.body()["body"]}
                comment["html_url"] = f"https://github.com/{state.repository}/pull/{match[1]}#c{comment['id']}"
                comments.append(comment)
                return self.reply(201, comment)
            if (match := re.fullmatch(rf"{repo}/issues/comments/(\d+)", path)) and method == "PATCH":
                for comment in (c for cs in state.comments.values() for c in cs):
                    if comment["id"] == int(match[1]):
                        comment["body"] = self.body()["body"]
                        return self.reply(200, comment)
                return self.reply(404, {"message": "Not Found"})
            if path == f"{repo}/issues":
                if method == "GET":
                    open_issues = [i for i in state.issues if i["state"] == "open"]
                    return self.reply(200, open_issues if "page=1" in self.path else [])
                number = state.new_id()
                issue = {"number": number, "state": "open", **self.body()}
                issue["html_url"] = f"https://github.com/{state.repository}/issues/{number}"
                state.issues.append(issue)
                return self.reply(201, issue)
            if (match := re.fullmatch(rf"{repo}/issues/(\d+)", path)) and method == "PATCH":
                for issue in state.issues:
                    if issue["number"] == int(match[1]):
                        issue.update(self.body())
                        return self.reply(200, issue)
                return self.reply(404, {"message": "Not Found"})
            if (match := re.fullmatch(rf"{repo}/actions/workflows/([\w.-]+)/dispatches", path)) and method == "POST":
                state.dispatches.append({"workflow": match[1], **self.body()})
                return self.reply(204, None)
            return self.reply(404, {"message": f"the stand-in does not serve {method} {path}"})

    def do_GET(self):  # noqa: N802 - http.server's naming
        """GET."""
        self.handle_any("GET")

    def do_POST(self):  # noqa: N802
        """POST."""
        self.handle_any("POST")

    def do_PATCH(self):  # noqa: N802
        """PATCH."""
        self.handle_any("PATCH")


class GitHubStandIn:
    """Runs the stand-in on a free 127.0.0.1 port until stopped; use as a context manager."""

    def __init__(self, repository: str, token: str) -> None:
        """Serve ``repository`` to requests carrying ``token``."""
        self.state = GitHubState(repository, token)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> GitHubStandIn:
        """Start serving."""
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
