"""Put a report on GitHub: one pull-request comment or one open issue, updated in place, never repeated; or start
a workflow.

Uses only the standard library and the variables every Actions job has: GITHUB_API_URL, GITHUB_REPOSITORY,
GITHUB_SERVER_URL, GITHUB_RUN_ID, and GITHUB_TOKEN passed in by the step.

    python .github/scripts/github_api.py comment --pr 12 --body-file report.md
    python .github/scripts/github_api.py issue --title "Retraining blocked by the AUC gate" --body-file report.md
    python .github/scripts/github_api.py issue --marker production-monitor --title "..." --body-file report.md
    python .github/scripts/github_api.py dispatch --workflow retrain.yml --ref main --input week=4
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.request
from pathlib import Path

MARKER = "<!-- model-gate-report -->"
MAX_PAGES = 10


def api(method: str, path: str, body: dict | None = None) -> object:
    """Call the GitHub REST API and return the decoded JSON answer."""
    base = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {os.environ['GITHUB_TOKEN']}",
            "Content-Type": "application/json",
            "User-Agent": "model-gate-report",
            "X-GitHub-Api-Version": "2022-11-28",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def pages(path: str) -> list[dict]:
    """Every item of a paginated list (at most MAX_PAGES pages of 100)."""
    items: list[dict] = []
    separator = "&" if "?" in path else "?"
    for page in range(1, MAX_PAGES + 1):
        batch = api("GET", f"{path}{separator}per_page=100&page={page}")
        items += batch
        if len(batch) < 100:
            break
    return items


def document(report: str, marker: str = MARKER) -> str:
    """The report with the marker that finds it again and a link to the run that wrote it."""
    server, repository, run = (
        os.environ.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    link = f"\n\n[Workflow run]({server}/{repository}/actions/runs/{run})\n" if run else "\n"
    return f"{marker}\n{report.rstrip()}{link}"


def upsert_comment(repository: str, number: int, body: str) -> str:
    """Update the pull request's gate comment, or create it; return its URL."""
    for comment in pages(f"/repos/{repository}/issues/{number}/comments"):
        if MARKER in (comment.get("body") or ""):
            return api("PATCH", f"/repos/{repository}/issues/comments/{comment['id']}", {"body": body})["html_url"]
    return api("POST", f"/repos/{repository}/issues/{number}/comments", {"body": body})["html_url"]


def upsert_issue(repository: str, title: str, body: str, marker: str = MARKER) -> str:
    """Update the open issue carrying ``marker``, or open one; return its URL."""
    for issue in pages(f"/repos/{repository}/issues?state=open"):
        if "pull_request" not in issue and marker in (issue.get("body") or ""):
            return api("PATCH", f"/repos/{repository}/issues/{issue['number']}", {"title": title, "body": body})[
                "html_url"
            ]
    return api("POST", f"/repos/{repository}/issues", {"title": title, "body": body})["html_url"]


def dispatch(repository: str, workflow: str, ref: str, inputs: dict[str, str]) -> str:
    """Start a workflow that has a workflow_dispatch trigger; return what was started."""
    api("POST", f"/repos/{repository}/actions/workflows/{workflow}/dispatches", {"ref": ref, "inputs": inputs})
    return f"dispatched {workflow} on {ref}"


def word(text: str) -> str:
    """An argparse type: a marker word of lowercase letters, digits and dashes."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a word of lowercase letters, digits and dashes")
    return text


def pair(text: str) -> tuple[str, str]:
    """An argparse type: KEY=VALUE."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and post the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    comment = commands.add_parser("comment", help="one comment on a pull request")
    comment.add_argument("--pr", type=int, required=True)
    issue = commands.add_parser("issue", help="one open issue")
    issue.add_argument("--title", required=True)
    issue.add_argument("--marker", type=word, help="which issue: a word naming it (default: the gate's)")
    for sub in (comment, issue):
        sub.add_argument("--body-file", type=Path, required=True)
    start = commands.add_parser("dispatch", help="start a workflow")
    start.add_argument("--workflow", required=True, help="its file name, e.g. retrain.yml")
    start.add_argument("--ref", required=True, help="the branch to run it on")
    start.add_argument("--input", type=pair, action="append", default=[], help="KEY=VALUE, repeatable")
    args = parser.parse_args(argv)
    repository = os.environ["GITHUB_REPOSITORY"]
    if args.command == "dispatch":
        print(dispatch(repository, args.workflow, args.ref, dict(args.input)))
        return 0
    marker = f"<!-- {args.marker} -->" if getattr(args, "marker", None) else MARKER
    body = document(args.body_file.read_text(), marker)
    if args.command == "comment":
        url = upsert_comment(repository, args.pr, body)
    else:
        url = upsert_issue(repository, args.title, body, marker)
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
