# SPDX-License-Identifier: Apache-2.0
"""A fake GitHub REST API on loopback, for PyGithub pointed at it with ``base_url``.

It answers in GitHub's shapes (the recorded-shape templates in ``tests/data/github/``) with
GitHub's headers: ``Link`` pagination, ``ETag``/``If-None-Match`` → 304, ``X-RateLimit-*``.
Faults are scripted per path: a queue of canned answers (any status, headers, body) or a hang
that lasts until the test releases it. Every request is logged for assertions.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

DATA = Path(__file__).resolve().parent.parent / "data" / "github"
TOKEN = "ghp_fakeTokenForTests0000000000000000000"
COMPARE_COMMITS_CAP = 10_000  # the most commits a compare lists, over all its pages


def template(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())  # type: ignore[no-any-return]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeCommit:
    sha: str
    message: str
    author_time: float
    commit_time: float
    parents: list[str]
    files: list[str]
    # what the commit writes: a path's content (None: deleted); a listed file not here gets new content
    contents: dict[str, str | None] = field(default_factory=dict)
    renames: dict[str, str] = field(default_factory=dict)  # new path -> old path, content kept


@dataclass
class FakePull:
    number: int
    created_at: float
    merged_at: float | None
    commits: list[str]
    merge_sha: str | None


class FakeRepo:
    def __init__(self, owner: str, name: str) -> None:
        self.full_name = f"{owner}/{name}"
        self.commits: dict[str, FakeCommit] = {}
        self.order: list[str] = []
        self.refs: dict[str, str] = {}
        self.pulls: dict[int, FakePull] = {}
        self.commit_pulls: dict[str, list[int]] = {}
        self.issues: list[dict[str, Any]] = []
        self.head: str | None = None
        self.deployments: list[dict[str, Any]] = []  # oldest first; served newest first
        self.statuses: dict[int, list[dict[str, Any]]] = {}  # per deployment id, oldest first
        self._next_id = 5000000
        self.unavailable_diff = False  # every compare answers "this diff is taking too long to generate"

    def deployment(self, sha: str, environment: str, created: float, ref: str = "main") -> int:
        """A deployment (``POST /repos/{o}/{r}/deployments`` as a workflow would make it); its id."""
        self._next_id += 1
        raw = template("deployment")
        api = f"https://api.github.com/repos/{self.full_name}"
        raw.update(
            id=self._next_id,
            sha=sha,
            ref=ref,
            environment=environment,
            original_environment=environment,
            created_at=iso(created),
            updated_at=iso(created),
            url=f"{api}/deployments/{self._next_id}",
            statuses_url=f"{api}/deployments/{self._next_id}/statuses",
            repository_url=api,
        )
        self.deployments.append(raw)
        self.statuses[self._next_id] = []
        return self._next_id

    def status(self, deployment_id: int, state: str, when: float) -> None:
        """A deployment status (``queued``, ``in_progress``, ``success``, ``failure``, ...)."""
        self._next_id += 1
        raw = template("deployment_status")
        dep = next(d for d in self.deployments if d["id"] == deployment_id)
        raw.update(
            id=self._next_id,
            state=state,
            environment=dep["environment"],
            created_at=iso(when),
            updated_at=iso(when),
            url=f"{dep['url']}/statuses/{self._next_id}",
            deployment_url=dep["url"],
        )
        self.statuses[deployment_id].append(raw)
        dep["updated_at"] = iso(when)

    def commit(
        self,
        message: str,
        files: list[str],
        when: float,
        author_when: float | None = None,
        parents: list[str] | None = None,
        move_head: bool = True,
        contents: dict[str, str | None] | None = None,
        renames: dict[str, str] | None = None,
    ) -> str:
        sha = hashlib.sha1(f"{self.full_name}:{len(self.order)}:{message}:{when}".encode()).hexdigest()
        if parents is None:
            parents = [self.head] if self.head else []
        self.commits[sha] = FakeCommit(
            sha,
            message,
            author_when if author_when is not None else when,
            when,
            parents,
            files,
            dict(contents or {}),
            dict(renames or {}),
        )
        self.order.append(sha)
        if move_head:
            self.head = sha
        return sha

    def squash_pr(self, number: int, branch_commits: list[tuple[float, list[str]]], merged_at: float) -> str:
        """A pull request of branch commits (author times) squash-merged onto the head at ``merged_at``."""
        base = self.head
        shas = []
        parent = base
        for i, (t, files) in enumerate(branch_commits):
            parent = self.commit(f"wip {number}.{i}", files, t, parents=[parent] if parent else [], move_head=False)
            shas.append(parent)
        all_files = sorted({f for _, fs in branch_commits for f in fs})
        squash = self.commit(f"Feature #{number} (#{number})", all_files, merged_at, author_when=branch_commits[0][0])
        self.pulls[number] = FakePull(number, branch_commits[0][0] + 60, merged_at, shas, squash)
        self.commit_pulls[squash] = [number]
        return squash

    def open_pr(self, number: int, commits: list[str], created: float) -> None:
        """A pull request open on ``commits`` (branch commits, not on the default branch yet)."""
        self.pulls[number] = FakePull(number, created, None, commits, None)
        for sha in commits:
            self.commit_pulls.setdefault(sha, []).append(number)

    def merge_pr(self, number: int, when: float) -> str:
        """Merge an open pull request with a merge commit onto the head; the merge commit's SHA."""
        pr = self.pulls[number]
        merge = self.commit(
            f"Merge pull request #{number}", [], when, parents=[p for p in (self.head, pr.commits[-1]) if p]
        )
        pr.merged_at, pr.merge_sha = when, merge
        return merge

    def revert(self, sha: str, when: float) -> str:
        """A commit that puts ``sha``'s files back as they were before it (``git revert``)."""
        c = self.commits[sha]
        before = self.tree(c.parents[0]) if c.parents else {}
        return self.commit(f'Revert "{c.message}"', list(c.files), when, contents={f: before.get(f) for f in c.files})

    def tree(self, sha: str) -> dict[str, str]:
        """The files of a commit and their contents: its first parent's, other parents' changes
        since the merge base merged in, then its own writes and renames."""
        chain = []
        at: str | None = sha
        while at is not None:  # walked, not recursed: histories here run to 10,000 commits
            chain.append(at)
            parents = self.commits[at].parents
            at = parents[0] if parents else None
        out: dict[str, str] = {}
        for s in reversed(chain):
            c = self.commits[s]
            for other in c.parents[1:]:
                base = self.merge_base(c.parents[0], other)
                was, now = (self.tree(base) if base else {}), self.tree(other)
                for path in set(was) | set(now):
                    if was.get(path) != now.get(path):
                        if path in now:
                            out[path] = now[path]
                        else:
                            out.pop(path, None)
            for new, old in c.renames.items():
                if old in out:
                    out[new] = out.pop(old)
            for f in c.files:
                content = c.contents.get(f, f"{s}:{f}")
                if content is None:
                    out.pop(f, None)
                else:
                    out[f] = content
        return out

    def merge_base(self, a: str, b: str) -> str | None:
        """The newest common ancestor (the latest made, which in these histories is the best one)."""
        common = self.ancestors(a) & self.ancestors(b)
        position = {s: i for i, s in enumerate(self.order)}
        return max(common, key=position.__getitem__, default=None)

    def net_files(self, base: str, head: str) -> list[dict[str, Any]]:
        """A compare's ``files``: the net diff from the merge base to ``head`` (not every file a
        commit touched), a renamed file once as ``renamed`` with ``previous_filename``."""
        mb = self.merge_base(base, head)
        was, now = (self.tree(mb) if mb else {}), self.tree(head)
        changed = sorted(p for p in set(was) | set(now) if was.get(p) != now.get(p))
        renamed: dict[str, str] = {}
        in_range = self.ancestors(head) - (self.ancestors(mb) if mb else set())
        for s in in_range:
            for new, old in self.commits[s].renames.items():
                if new in now and new not in was and old in was and old not in now and now[new] == was[old]:
                    renamed[new] = old
        out: list[dict[str, Any]] = []
        for p in changed:
            if p in renamed.values():
                continue
            if p in renamed:
                entry = {"filename": p, "status": "renamed", "previous_filename": renamed[p]}
            else:
                status = "added" if p not in was else "removed" if p not in now else "modified"
                entry = {"filename": p, "status": status}
            out.append(entry | {"additions": 1, "deletions": 0, "changes": 1})
        return out

    def ancestors(self, sha: str) -> set[str]:
        seen: set[str] = set()
        todo = [sha]
        while todo:
            s = todo.pop()
            if s in seen or s not in self.commits:
                continue
            seen.add(s)
            todo.extend(self.commits[s].parents)
        return seen

    def issue(
        self,
        number: int,
        title: str,
        labels: list[str],
        opened: float,
        closed: float | None = None,
        pull_request: bool = False,
    ) -> dict[str, Any]:
        raw = template("issue")
        raw.update(
            id=number,
            number=number,
            title=title,
            labels=[{"id": i, "name": n, "color": "d73a4a", "default": False} for i, n in enumerate(labels)],
            created_at=iso(opened),
            updated_at=iso(closed or opened),
            closed_at=iso(closed) if closed else None,
            state="closed" if closed else "open",
            url=f"https://api.github.com/repos/{self.full_name}/issues/{number}",
            html_url=f"https://github.com/{self.full_name}/issues/{number}",
        )
        if pull_request:
            raw["pull_request"] = {
                "url": f"https://api.github.com/repos/{self.full_name}/pulls/{number}",
                "html_url": f"https://github.com/{self.full_name}/pull/{number}",
                "merged_at": None,
            }
        self.issues = [i for i in self.issues if i["number"] != number] + [raw]
        return raw

    def relabel(self, number: int, labels: list[str], when: float) -> None:
        """The issue's labels set to ``labels`` at ``when`` (adding or removing one updates the issue)."""
        for raw in self.issues:
            if raw["number"] == number:
                raw.update(
                    labels=[{"id": i, "name": n, "color": "d73a4a", "default": False} for i, n in enumerate(labels)],
                    updated_at=iso(when),
                )

    def update_issue(self, number: int, when: float, closed: float | None) -> None:
        for raw in self.issues:
            if raw["number"] == number:
                raw.update(
                    state="closed" if closed else "open",
                    closed_at=iso(closed) if closed else None,
                    updated_at=iso(when),
                )


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0


Answer = tuple[int, dict[str, str], Any]


@dataclass
class Fault:
    """Answers to serve, in order, to requests whose path contains ``match``; "hang" blocks until
    released, "slow:<seconds>" answers normally after that delay."""

    match: str
    answers: list[Answer | str] = field(default_factory=list)


class FakeGitHub:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.rate_limit = 5000
        self.rate_remaining = 5000
        self.rate_reset = int(time.time()) + 3600
        self.release = threading.Event()
        self.tokens = {token}  # accepted bearer tokens: the PAT, and installation tokens once issued
        self.app: tuple[str, bytes, int] | None = None  # GitHub App id, public key PEM, installation id
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.base_url = ""

    def repo(self, full_name: str) -> FakeRepo:
        if full_name not in self.repos:
            owner, name = full_name.split("/")
            self.repos[full_name] = FakeRepo(owner, name)
        return self.repos[full_name]

    def fault(self, match: str, *answers: Answer | str) -> None:
        with self._lock:
            self.faults.append(Fault(match, list(answers)))

    def hits(self, contains: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if contains in r.path]

    # -- server ---------------------------------------------------------------------------------

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle_post(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.base_url

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle_post(self, h: BaseHTTPRequestHandler) -> None:
        """``POST /app/installations/{id}/access_tokens`` with the App's RS256 JWT, as GitHub does."""
        import jwt

        url = urlsplit(h.path)
        req = Request(url.path, {}, {k.lower(): v for k, v in h.headers.items()})
        with self._lock:
            self.requests.append(req)
        h.rfile.read(int(h.headers.get("Content-Length") or 0))
        parts = url.path.strip("/").split("/")
        if self.app is None or parts[:2] != ["app", "installations"] or parts[3:] != ["access_tokens"]:
            self._send(h, req, 404, {}, {"message": "Not Found"})
            return
        app_id, public_key, installation = self.app
        try:
            claims = jwt.decode(req.headers.get("authorization", "").removeprefix("Bearer "), public_key, ["RS256"])
        except jwt.PyJWTError:
            self._send(h, req, 401, {}, {"message": "A JSON web token could not be decoded"})
            return
        if str(claims.get("iss")) != app_id or parts[2] != str(installation):
            self._send(h, req, 404, {}, {"message": "Not Found"})
            return
        token = f"ghs_installation{len(self.tokens)}"
        with self._lock:
            self.tokens.add(token)
        body = {
            "token": token,
            "expires_at": iso(time.time() + 3600),
            "permissions": {"contents": "read", "issues": "read", "metadata": "read", "pull_requests": "read"},
            "repository_selection": "all",
        }
        self._send(h, req, 201, {}, body)

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_remaining)),
            "X-RateLimit-Reset": str(self.rate_reset),
            "X-RateLimit-Used": str(self.rate_limit - max(0, self.rate_remaining)),
            "X-RateLimit-Resource": "core",
        }

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        req = Request(url.path, query, {k.lower(): v for k, v in h.headers.items()})
        with self._lock:
            self.requests.append(req)
            fault = next((f for f in self.faults if f.match in url.path and f.answers), None)
            answer = fault.answers.pop(0) if fault else None
        if answer == "hang":
            self.release.wait(30)
            answer = (502, {}, {"message": "Server Error"})
        elif isinstance(answer, str) and answer.startswith("slow:"):
            time.sleep(float(answer.removeprefix("slow:")))  # a slow GitHub: this answer comes late
            answer = None
        if isinstance(answer, tuple):
            status, headers, body = answer
            self._send(h, req, status, {**self._rate_headers(), **headers}, body)
            return
        auth = req.headers.get("authorization", "")
        if auth.removeprefix("token ").removeprefix("Bearer ") not in self.tokens:
            body = {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
            self._send(h, req, 401, self._rate_headers(), body)
            return
        status, headers, body = self._route(url.path, query)
        if status == 200:
            etag = 'W/"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest() + '"'
            headers["ETag"] = etag
            if req.headers.get("if-none-match") == etag:
                self._send(h, req, 304, {**self._rate_headers(), "ETag": etag}, None)
                return
        with self._lock:
            self.rate_remaining -= 1
        self._send(h, req, status, {**self._rate_headers(), **headers}, body)

    def _send(self, h: BaseHTTPRequestHandler, req: Request, status: int, headers: dict[str, str], body: Any) -> None:
        req.status = status
        data = b"" if body is None else json.dumps(body).encode()
        h.send_response(status)
        if body is not None:
            h.send_header("Content-Type", "application/json; charset=utf-8")
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        try:
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a read timeout under test): nothing to answer

    # -- routes ---------------------------------------------------------------------------------

    def _paged(
        self, path: str, query: dict[str, str], items: list[Any], default: int = 30
    ) -> tuple[list[Any], dict[str, str]]:
        per_page = min(100, int(query.get("per_page", default)))
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers: dict[str, str] = {}
        last = max(1, -(-len(items) // per_page))
        links = []
        if page < last:
            links.append(f'<{self.base_url}{path}?{urlencode({**query, "page": page + 1})}>; rel="next"')
            links.append(f'<{self.base_url}{path}?{urlencode({**query, "page": last})}>; rel="last"')
        if page > 1:
            links.append(f'<{self.base_url}{path}?{urlencode({**query, "page": 1})}>; rel="first"')
        if links:
            headers["Link"] = ", ".join(links)
        return chunk, headers

    def _commit_json(self, repo: FakeRepo, c: FakeCommit, with_files: bool) -> dict[str, Any]:
        raw = template("commit")
        api = f"{self.base_url}/repos/{repo.full_name}"
        raw.update(
            sha=c.sha, url=f"{api}/commits/{c.sha}", html_url=f"https://github.com/{repo.full_name}/commit/{c.sha}"
        )
        raw["commit"]["author"]["date"] = iso(c.author_time)
        raw["commit"]["committer"]["date"] = iso(c.commit_time)
        raw["commit"]["message"] = c.message
        raw["parents"] = [{"sha": p, "url": f"{api}/commits/{p}", "html_url": ""} for p in c.parents]
        file_tpl = raw["files"][0]
        if with_files:
            raw["files"] = [{**copy.deepcopy(file_tpl), "filename": f, "sha": c.sha} for f in c.files] + [
                {
                    **copy.deepcopy(file_tpl),
                    "filename": new,
                    "sha": c.sha,
                    "status": "renamed",
                    "previous_filename": old,
                }
                for new, old in c.renames.items()
            ]
        else:
            del raw["files"]
            del raw["stats"]
        return raw

    def _route(self, path: str, query: dict[str, str]) -> Answer:
        parts = path.strip("/").split("/")
        not_found: Answer = (404, {}, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
        if len(parts) < 3 or parts[0] != "repos" or f"{parts[1]}/{parts[2]}" not in self.repos:
            return not_found
        repo = self.repos[f"{parts[1]}/{parts[2]}"]
        rest = parts[3:]
        if not rest:  # GET /repos/{owner}/{repo}: the repository itself
            return 200, {}, {"full_name": repo.full_name, "default_branch": "main", "private": True}
        handler: Callable[[], Answer] | None = None
        if rest[0] == "commits" and len(rest) == 3 and rest[2] == "pulls":
            sha = rest[1]

            def handler() -> Answer:
                # "List pull requests associated with a commit": the merged pull request that brought
                # the commit in; for a commit not on the default branch yet, open ones as well
                on_default = repo.head is not None and sha in repo.ancestors(repo.head)
                pulls = [
                    self._pull_json(repo, repo.pulls[n])
                    for n in repo.commit_pulls.get(sha, [])
                    if repo.pulls[n].merged_at is not None or not on_default
                ]
                return 200, {}, pulls

        elif rest[0] == "commits" and len(rest) >= 2:
            ref = "/".join(rest[1:])
            sha = (
                repo.refs.get(ref) or next((s for s in repo.order if s.startswith(ref)), None)
                if len(ref) >= 7 or ref in repo.refs
                else None
            )

            def handler() -> Answer:
                if sha is None:
                    return 422, {}, {"message": f"No commit found for SHA: {ref}"}
                body = self._commit_json(repo, repo.commits[sha], True)
                files, headers = self._paged(path, query, body["files"], default=300)
                body["files"] = files
                return 200, headers, body

        elif rest[0] == "compare" and len(rest) == 2 and "..." in rest[1]:
            base, head = rest[1].split("...", 1)

            def handler() -> Answer:
                # GitHub's "Compare two commits" (docs.github.com/rest/commits/commits#compare-two-commits):
                # an unknown (or garbage-collected) base or head is a 404 "Not Found"; two commits that
                # share no history are a 404 "No common ancestor between <base> and <head>." (never a
                # 200 "diverged", which needs a merge base).
                if base not in repo.commits or head not in repo.commits:
                    return not_found
                if repo.unavailable_diff:
                    # GitHub gives up on some diffs ("Sorry, this diff is taking too long to generate.",
                    # code not_available); seen as 422 for API clients, the same answer on every retry
                    return (
                        422,
                        {},
                        {
                            "message": "Server Error: Sorry, this diff is taking too long to generate.",
                            "errors": [{"resource": "Comparison", "field": "diff", "code": "not_available"}],
                            "documentation_url": "https://docs.github.com/rest/commits/commits#compare-two-commits",
                        },
                    )
                of_base, of_head = repo.ancestors(base), repo.ancestors(head)
                if not of_base & of_head:
                    return (
                        404,
                        {},
                        {
                            "message": f"No common ancestor between {base} and {head}.",
                            "documentation_url": "https://docs.github.com/rest/commits/commits#compare-two-commits",
                        },
                    )
                behind = of_base - of_head
                only_head = of_head - of_base
                ahead = [s for s in repo.order if s in only_head]
                body = template("compare")
                body["status"] = (
                    "identical"
                    if not ahead and not behind
                    else "ahead"
                    if not behind
                    else "behind"
                    if not ahead
                    else "diverged"
                )
                body.update(ahead_by=len(ahead), behind_by=len(behind), total_commits=len(ahead))
                body["url"] = f"{self.base_url}/repos/{repo.full_name}/compare/{rest[1]}"
                # "files": the net diff from the merge base (GitHub compares the merge base with head,
                # the three-dot diff), a renamed file with "previous_filename"; at most 300 of them
                body["files"] = repo.net_files(base, head)[:300]
                # PyGithub 2.10 (Comparison.commits): "At most 10000 commits can be retrieved": pages
                # past the first 10,000 commits come back empty while total_commits counts them all
                chunk, headers = self._paged(path, query, ahead[:COMPARE_COMMITS_CAP], default=250)
                body["commits"] = [self._commit_json(repo, repo.commits[s], False) for s in chunk]
                return 200, headers, body

        elif rest[0] == "pulls" and len(rest) == 3 and rest[2] == "commits":
            number = int(rest[1])

            def handler() -> Answer:
                pr = repo.pulls.get(number)
                if pr is None:
                    return not_found
                items = [self._commit_json(repo, repo.commits[s], False) for s in pr.commits]
                chunk, headers = self._paged(path, query, items)
                return 200, headers, chunk

        elif rest == ["issues"]:

            def handler() -> Answer:
                # "List repository issues": labels is a comma-separated list, and an issue is listed
                # only while it carries every one of them now: once a label is removed, the issue
                # (and its later close) is no longer in a list filtered by that label
                wanted = {lbl for lbl in query.get("labels", "").split(",") if lbl}
                since = query.get("since")
                items = [
                    i
                    for i in sorted(repo.issues, key=lambda i: (i["updated_at"], i["number"]))
                    if wanted <= {lbl["name"] for lbl in i["labels"]} and (not since or i["updated_at"] >= since)
                ]
                chunk, headers = self._paged(path, query, items)
                return 200, headers, chunk

        elif rest[0] == "issues" and len(rest) == 2 and rest[1].isdigit():
            number = int(rest[1])

            def handler() -> Answer:
                # "Get an issue": one issue by number whatever its labels (a pull request too)
                raw = next((i for i in repo.issues if i["number"] == number), None)
                return (200, {}, raw) if raw is not None else not_found

        elif rest == ["deployments"]:

            def handler() -> Answer:
                chunk, headers = self._paged(path, query, list(reversed(repo.deployments)))
                return 200, headers, chunk

        elif rest[0] == "deployments" and len(rest) == 3 and rest[2] == "statuses":
            statuses = repo.statuses.get(int(rest[1]))

            def handler() -> Answer:
                if statuses is None:
                    return not_found
                chunk, headers = self._paged(path, query, list(reversed(statuses)))
                return 200, headers, chunk

        if handler is None:
            return not_found
        return handler()

    def _pull_json(self, repo: FakeRepo, pr: FakePull) -> dict[str, Any]:
        raw = template("pull")
        raw.update(
            id=pr.number,
            number=pr.number,
            created_at=iso(pr.created_at),
            updated_at=iso(pr.merged_at or pr.created_at),
            closed_at=iso(pr.merged_at) if pr.merged_at else None,
            merged_at=iso(pr.merged_at) if pr.merged_at else None,
            merge_commit_sha=pr.merge_sha,
            state="closed" if pr.merged_at else "open",
            url=f"{self.base_url}/repos/{repo.full_name}/pulls/{pr.number}",
        )
        return raw
