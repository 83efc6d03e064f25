"""The real collector as a subprocess, a real PostgreSQL server, and a small HTTP client.

:func:`start_collector` runs ``fluxloop collector serve`` (or ``python -m
pytest_fluxloop.collector``) on a free port of 127.0.0.1 and waits, at most
:data:`START_TIMEOUT` seconds, for ``GET /health``; its output goes to a file (a pipe nobody
reads would fill and stall the server). :class:`PostgresServer` runs ``initdb`` and
``pg_ctl`` as the ``postgres`` system user in a temporary folder on a free port; each test
gets its own database (:meth:`PostgresServer.new_database`).
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN = "tok-" + uuid.uuid4().hex
"""The bearer token the test collectors require (random: a leak is easy to grep for)."""

START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the collector ----------------------------------------------------------------------------


def serve_command(launcher: str = "module") -> list[str]:
    """The command line that starts the collector: ``module`` (``python -m
    pytest_fluxloop.collector``) or ``cli`` (``fluxloop collector serve`` when the command is
    attached to the group, else the same click command run on its own)."""
    if launcher == "module":
        return [sys.executable, "-m", "pytest_fluxloop.collector"]
    from pytest_fluxloop.cli.collector_cmd import collector_group

    fluxloop = Path(sys.executable).with_name("fluxloop")
    if "serve" in collector_group.commands and fluxloop.exists():
        return [str(fluxloop), "collector", "serve"]
    return [
        sys.executable,
        "-c",
        "from pytest_fluxloop.cli.collector_serve_cmd import serve; "
        "serve(prog_name='fluxloop collector serve')",
    ]


@dataclass
class Reply:
    """An HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Collector:
    """A running collector process and a client for it."""

    proc: subprocess.Popen[bytes]
    port: int
    db: str
    token: str | None
    log_path: Path
    command: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | bool | None = True,
    ) -> Reply:
        """One request on a fresh connection; ``token=True`` sends the collector's token,
        ``None``/``False`` none, a string that string."""
        sent = dict(headers or {})
        bearer = self.token if token is True else (token or None)
        if bearer:
            sent["Authorization"] = f"Bearer {bearer}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post_batch(self, batch: Mapping[str, Any], compress: bool = True) -> Reply:
        raw = json.dumps(batch).encode()
        headers = {"Content-Type": "application/json"}
        if compress:
            raw = gzip.compress(raw)
            headers["Content-Encoding"] = "gzip"
        return self.request("POST", "/api/v1/batches", raw, headers)

    def all_traces(self, limit: int = 500, **filters: str) -> list[dict[str, Any]]:
        """Every trace matching ``filters``, page by page (at most 1000 pages)."""
        from urllib.parse import urlencode

        found: list[dict[str, Any]] = []
        cursor = None
        for _ in range(1000):
            params = {**filters, "limit": str(limit)}
            if cursor:
                params["cursor"] = cursor
            reply = self.get("/api/traces?" + urlencode(params))
            assert reply.status == 200, reply.body
            page = reply.json()
            found.extend(page["traces"])
            cursor = page["next_cursor"]
            if not cursor:
                return found
        raise AssertionError("more than 1000 pages")

    def experiment(self, name: str) -> dict[str, Any] | None:
        reply = self.get("/api/experiments")
        assert reply.status == 200, reply.body
        return next((e for e in reply.json()["experiments"] if e["name"] == name), None)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then wait (SIGKILL after ``timeout``); the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no checkpoint (a crash)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=15)


def start_collector(
    folder: Path,
    db: str | None = None,
    *,
    token: str | None = TOKEN,
    host: str = "127.0.0.1",
    args: Sequence[str] = (),
    launcher: str = "module",
    port: int | None = None,
    timeout: float = START_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> Collector:
    """Start the collector in ``folder`` (its cwd; the SQLite default is made there) and wait
    for ``/health``. ``token`` goes in ``$FLUXLOOP_COLLECTOR_TOKEN``; ``db=""`` passes no
    ``--db`` (the default file in ``folder``); ``env`` adds variables.

    Raises:
        RuntimeError: it exited or did not answer within ``timeout`` (the log is included).
    """
    full_env = {k: v for k, v in os.environ.items() if k != "FLUXLOOP_COLLECTOR_TOKEN"}
    if token:
        full_env["FLUXLOOP_COLLECTOR_TOKEN"] = token
    full_env.update(env or {})
    full_env["PYTHONUNBUFFERED"] = "1"
    db_url = f"sqlite:///{folder / 'collector.db'}" if db is None else db
    db_args = ["--db", db_url] if db_url else []
    for attempt in range(3):  # another process may take the free port first
        chosen = port or free_port()
        log_path = folder / f"collector-{chosen}-{uuid.uuid4().hex[:6]}.log"
        command = [
            *serve_command(launcher),
            "--host",
            host,
            "--port",
            str(chosen),
            *db_args,
            *args,
        ]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                command, cwd=folder, env=full_env, stdout=log, stderr=subprocess.STDOUT
            )
        collector = Collector(proc, chosen, db_url, token, log_path, command)
        if _wait_healthy(collector, timeout):
            return collector
        collector.kill()
        text = collector.log()
        if "address already in use" in text.lower() and attempt < 2 and port is None:
            continue
        raise RuntimeError(f"the collector did not start ({command}):\n{text}")
    raise AssertionError("unreachable")


def run_collector(
    folder: Path, args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run the collector's command expecting it to stop by itself (it refuses to start)."""
    full_env = {k: v for k, v in os.environ.items() if k != "FLUXLOOP_COLLECTOR_TOKEN"}
    full_env.update(env or {})
    return subprocess.run(
        [*serve_command("cli"), *args],
        cwd=folder,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _wait_healthy(collector: Collector, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if collector.proc.poll() is not None:
            return False
        try:
            reply = collector.request("GET", "/health", token=None)
            if reply.status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


# --- trace data -------------------------------------------------------------------------------


def make_trace(
    trace_id: str,
    *,
    persona: str | None = "novice",
    status: str = "success",
    started_at: str = "2026-01-01T00:00:00+00:00",
    observations: int = 0,
    case_id: str = "case-1",
) -> dict[str, Any]:
    """A valid ``TraceRecord`` JSON (``observations`` observations included)."""
    success = status == "success"
    return {
        "trace_id": trace_id,
        "case_id": case_id,
        "iteration": 0,
        "persona": persona,
        "input": f"hello from {trace_id}",
        "output": "hi" if success else None,
        "duration_ms": 12.5,
        "success": success,
        "status": status,
        "started_at": started_at,
        "completed_at": started_at,
        "observations": [
            {
                "trace_id": trace_id,
                "type": "event",
                "name": f"step-{n}",
                "timestamp": started_at,
                "metadata": {"n": n},
            }
            for n in range(observations)
        ],
    }


def make_summary(
    experiment: str, run_id: str, status: str = "complete", total: int = 1
) -> dict[str, Any]:
    """A valid ``summary.json``."""
    return {
        "experiment_name": experiment,
        "run_id": run_id,
        "status": status,
        "total_cases": total,
        "total_traces": total,
        "successful": total,
        "failed": 0,
        "avg_duration_ms": 12.5,
        "started_at": "2026-01-01T00:00:00+00:00",
        "completed_at": None if status == "running" else "2026-01-01T00:01:00+00:00",
    }


# --- senders --------------------------------------------------------------------------------


@dataclass
class SendTally:
    """What one sender saw: trace items stored and duplicate, and answers other than 200."""

    stored: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def send_traces(
    port: int,
    token: str | None,
    experiment: str,
    trace_ids: Sequence[str],
    per_batch: int = 5,
    observations: int = 2,
) -> SendTally:
    """Send ``trace_ids`` (with observations) in batches of ``per_batch`` over one keep-alive
    connection, as a sender does; the per-item results of trace items."""
    tally = SendTally()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        for start in range(0, len(trace_ids), per_batch):
            items = []
            for trace_id in trace_ids[start : start + per_batch]:
                trace = make_trace(trace_id, observations=observations)
                items.append(
                    {
                        "kind": "trace",
                        "id": trace_id,
                        "data": {k: v for k, v in trace.items() if k != "observations"},
                    }
                )
                items.extend(
                    {"kind": "observation", "id": f"{trace_id}/{n}", "data": o}
                    for n, o in enumerate(trace["observations"])
                )
            batch = {
                "fluxloop_batch": 1,
                "batch_id": uuid.uuid4().hex,
                "sent_at": "2026-01-01T00:00:00+00:00",
                "source": {
                    "experiment": experiment,
                    "run_id": f"run-{experiment}",
                    "host": f"pid-{os.getpid()}",
                },
                "items": items,
            }
            body = gzip.compress(json.dumps(batch).encode())
            conn.request("POST", "/api/v1/batches", body=body, headers=headers)
            resp = conn.getresponse()
            answer = resp.read()
            if resp.status != 200:
                tally.failures.append(f"{resp.status}: {answer[:200]!r}")
                continue
            for result in json.loads(answer)["results"]:
                if result["kind"] == "trace":
                    getattr(tally, result["status"]).append(result["id"])
                elif result["status"] == "rejected":
                    tally.failures.append(str(result))
    finally:
        conn.close()
    return tally


def sender_main() -> None:
    """A sender process: ``argv[1]`` is JSON (port, token, experiment, trace_ids); prints its
    :class:`SendTally` as JSON."""
    args = json.loads(sys.argv[1])
    tally = send_traces(args["port"], args["token"], args["experiment"], args["trace_ids"])
    print(json.dumps(tally.__dict__))


def sender_process(
    port: int, token: str | None, experiment: str, trace_ids: Sequence[str]
) -> subprocess.Popen[str]:
    """Start :func:`sender_main` in another process (stdout piped: a few lines of JSON)."""
    tests = Path(__file__).resolve().parents[1]
    code = (
        f"import sys; sys.path.insert(0, {str(tests)!r}); "
        "from support.collector_server import sender_main; sender_main()"
    )
    payload = json.dumps(
        {"port": port, "token": token, "experiment": experiment, "trace_ids": list(trace_ids)}
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, payload],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --- PostgreSQL -------------------------------------------------------------------------------


def postgres_unavailable() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None when it can."""
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        return "initdb / pg_ctl are not installed"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (the extra collector-postgres)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        if os.geteuid() != 0:
            return "not root and no postgres user"
        return "there is no postgres system user to run the server as"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "postgres":
        return "initdb must run as the postgres user: tests run neither as root nor as postgres"
    return None


class PostgresServer:
    """A throwaway PostgreSQL cluster (trust auth on 127.0.0.1, a free port)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="fluxloop-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        user = pwd.getpwnam("postgres")
        self._uid, self._gid = user.pw_uid, user.pw_gid
        # /tmp's pytest folders are private to root; this one is the postgres user's.
        os.chown(self.folder, self._uid, self._gid)

    def _run(self, *command: str, timeout: float = 120) -> None:
        as_postgres: dict[str, Any] = {}
        if os.geteuid() == 0:
            as_postgres = {"user": self._uid, "group": self._gid, "extra_groups": []}
        proc = subprocess.run(
            list(command),
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
            **as_postgres,
        )
        if proc.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{command[0]} failed:\n{proc.stdout}\n{proc.stderr}\n{tail}")

    def start(self) -> None:
        initdb = shutil.which("initdb")
        pg_ctl = shutil.which("pg_ctl")
        assert initdb and pg_ctl
        self._run(
            initdb,
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.data} -c fsync=off -c max_connections=200"
        )
        self._run(
            pg_ctl,
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        pg_ctl = shutil.which("pg_ctl")
        try:
            if pg_ctl and (self.data / "postmaster.pid").exists():
                self._run(pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
