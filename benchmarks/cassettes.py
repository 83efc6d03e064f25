#!/usr/bin/env python3
"""LLM-call cassettes (issue 14): a multi-turn experiment live, recorded, and replayed.

The project: ``--conversations`` multi-turn conversations (benchmark 1's layout, one
iteration, ``parallel_runs`` 1, ``save_traces: true``) whose agent makes one
``client.chat.completions.create`` call per turn with the real ``openai`` client, and whose
supervisor is ``provider: openai``. Both talk to an OpenAI-compatible server on 127.0.0.1 (a
thread of this process) that sleeps ``--delay`` seconds (default 0.2) before every answer:
the agent gets ``echo: <its message>``, the supervisor a decision that continues until the
transcript holds 3 agent replies, then ends. Each conversation is 3 turns, 6 LLM calls.

Three sides, each a real ``python -m pytest --fluxloop-config configs/simulation.yaml
--fluxloop-cassettes MODE -p no:cacheprovider -q`` process, one run of each per round
(``off``, ``record``, ``replay``), ``--repeat`` rounds, medians:

* ``off``: live, no cassettes (what a run costs without this feature);
* ``record``: live, every call recorded (the cassette folder is deleted before each run, so
  every case records: ``record`` replays a case that already has a cassette);
* ``replay``: every call answered from the cassettes the ``record`` run just wrote.

Every run is checked: ``summary.json`` complete with every conversation passed; the server
answered exactly 6 calls per conversation on the live sides and **none** while replaying
(it keeps running and counting); ``summary.json`` ``cassettes`` says every call was
recorded (``record``) or replayed with no miss and nothing unused (``replay``).

    python benchmarks/cassettes.py                  # 50 conversations, 200 ms a call, 3 rounds
    python benchmarks/cassettes.py --repeat 1 --json out.json
    python benchmarks/cassettes.py --conversations 20 --delay 0.05
    python benchmarks/cassettes.py --smoke          # 3 conversations, 10 ms, 1 round (~15 s)

Children run as in ``run.py`` (bytecode cache in ``benchmarks/.cache/pycache``,
PYTEST_ADDOPTS dropped), plus ``-p no:langsmith_plugin`` (``--with-langsmith`` keeps it), as
``evaluation.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from harness import (
    BenchError,
    ChatServer,
    Run,
    Runner,
    chat_server,
    child_env,
    fluxloop_cmd,
    machine_info,
    pytest_session_seconds,
    run_experiment,
    workspace,
    write_project,
)

TURNS = 3
"""Agent replies after which the simulated user ends the conversation."""
CALLS_PER_CONVERSATION = 2 * TURNS  # an agent call and a supervisor decision per turn
SIDES = ("off", "record", "replay")
DECISION_SCHEMA = "supervisor_decision"
API_KEY = "bench-openai-key-0123456789"  # the supervisor's, while live; no real key's shape

AGENT = '''\
"""A support agent: one OpenAI chat call per turn (SIM_URL: the benchmark's server)."""

import os

import openai

client = openai.OpenAI(
    base_url=os.environ["SIM_URL"], api_key="bench-agent-key", max_retries=0, timeout=60
)


def run(input_text: str) -> str:
    reply = client.chat.completions.create(
        model="agent-bench",
        messages=[
            {"role": "system", "content": "You are a concise support agent."},
            {"role": "user", "content": input_text},
        ],
    )
    return reply.choices[0].message.content or ""
'''

MULTI_TURN = """\
multi_turn:
  enabled: true
  max_turns: 6
  supervisor:
    provider: openai
    model: supervisor-bench
"""


# --------------------------------------------------------------------------- the server


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _answer(body: dict[str, Any]) -> str:
    """The reply's content: the supervisor's decision, else ``echo: <last message>``."""
    messages = body.get("messages") or []
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("name")
    if schema != DECISION_SCHEMA:
        last = _text(messages[-1].get("content")) if messages else ""
        return f"echo: {last}"
    prompt = " ".join(_text(m.get("content")) for m in messages)
    replies = len(re.findall(r"echo:", prompt))
    go_on = replies < TURNS
    return json.dumps(
        {
            "decision": "continue" if go_on else "terminate",
            "next_user_message": f"question {replies + 1}" if go_on else None,
            "termination_reason": None if go_on else "user_satisfied",
            "closing_user_message": None if go_on else "thanks",
        }
    )


# --------------------------------------------------------------------------- runs


def check_cassettes(run: Run, side: str, conversations: int, calls: int) -> dict[str, Any]:
    """The server calls and ``summary.json`` ``cassettes`` must be what the side means."""
    summary = json.loads((Path(run.info["experiment_dir"]) / "summary.json").read_text())
    block = summary.get("cassettes")
    total = conversations * CALLS_PER_CONVERSATION
    problems = []
    want_calls = 0 if side == "replay" else total
    if calls != want_calls:
        problems.append(f"{calls} LLM calls reached the server, expected {want_calls}")
    if side == "off" and block is not None:
        problems.append(f"a cassettes block {block}, expected none")
    if side != "off":
        block = block or {}
        want = {
            "mode": side,
            "replayed": total if side == "replay" else 0,
            "recorded": total if side == "record" else 0,
            "missed": 0,
            "unused_interactions": 0,
            "cassettes_written": conversations if side == "record" else 0,
        }
        seen = {key: block.get(key) for key in want}
        if seen != want:
            problems.append(f"cassettes {seen}, expected {want}")
    if problems:
        raise BenchError(f"{side} ({run.log}): {'; '.join(problems)}")
    return block or {}


def measure(
    runner: Runner, cmd: list[str], project: Path, side: str, conversations: int, server: ChatServer
) -> tuple[Run, int]:
    """One checked run of ``side``; the run and the LLM calls the server answered."""
    if side == "record":
        shutil.rmtree(project / "cassettes", ignore_errors=True)
    before = server.calls
    mode = ["--fluxloop-cassettes", side] if side != "off" else []
    run = run_experiment(runner, project, [*cmd, *mode], conversations)
    calls = server.calls - before
    check_cassettes(run, side, conversations, calls)
    return run, calls


def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    conversations, delay = args.conversations, args.delay
    project = write_project(
        tmp / "cassettes-bench", n_inputs=conversations, iterations=1, agent=AGENT
    )
    config = project / "configs" / "simulation.yaml"
    config.write_text(config.read_text() + MULTI_TURN)
    cmd = fluxloop_cmd()
    if not args.with_langsmith:
        cmd += ["-p", "no:langsmith_plugin"]
    walls: dict[str, list[float]] = {side: [] for side in SIDES}
    sessions: dict[str, list[float]] = {side: [] for side in SIDES}
    calls: dict[str, list[int]] = {side: [] for side in SIDES}
    print(
        f"\n{conversations} conversations x {TURNS} turns ({CALLS_PER_CONVERSATION} LLM calls "
        f"each: agent + openai supervisor), server delay {delay * 1000:.0f} ms per call, "
        f"{args.repeat} round(s) of {', '.join(SIDES)}"
    )
    with chat_server(_answer, delay=delay) as server:
        runner = Runner(tmp, dict(args.env, SIM_URL=server.base_url), verbose=not args.quiet)
        runner.env["OPENAI_BASE_URL"] = server.base_url
        for round_no in range(args.repeat):
            if not args.quiet:
                print(f"  round {round_no + 1}")
            for side in SIDES:
                run, made = measure(runner, cmd, project, side, conversations, server)
                walls[side].append(run.wall_s)
                sessions[side].append(pytest_session_seconds(run.log) or float("nan"))
                calls[side].append(made)
    med = {side: statistics.median(values) for side, values in walls.items()}
    print(
        f"\n  {'side':8s} {'wall (median)':>14s} {'pytest session':>15s} {'LLM calls':>10s}  runs"
    )
    for side in SIDES:
        session = statistics.median(sessions[side])
        print(
            f"  {side:8s} {med[side]:12.2f} s {session:13.2f} s {max(calls[side]):10d}  "
            + ", ".join(f"{v:.2f}" for v in walls[side])
        )
    live_ratio = med["record"] / med["replay"]
    print(
        f"\n  live (record) / replay: {live_ratio:.1f}x faster replaying; "
        f"off / replay: {med['off'] / med['replay']:.1f}x; "
        f"record / off: {med['record'] / med['off']:.2f}x (the cost of recording)"
    )
    print(
        f"  replay made {max(calls['replay'])} LLM calls (target 0); live made "
        f"{max(calls['record'])} ({conversations} x {CALLS_PER_CONVERSATION})"
    )
    return {
        "conversations": conversations,
        "delay_s": delay,
        "walls": walls,
        "pytest_sessions": sessions,
        "calls": calls,
        "medians": med,
        "live_over_replay": live_ratio,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=None, help="default 50")
    parser.add_argument("--delay", type=float, default=None, help="seconds per call (0.2)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 3)")
    parser.add_argument("--smoke", action="store_true", help="3 conversations, 10 ms, 1 round")
    parser.add_argument("--keep", action="store_true", help="keep the project and run logs")
    parser.add_argument("--quiet", action="store_true", help="no per-run lines")
    parser.add_argument("--json", type=Path, help="write the raw numbers to this file")
    parser.add_argument(
        "--with-langsmith", action="store_true", help="let langsmith's pytest plugin load"
    )
    args = parser.parse_args(argv)
    args.conversations = args.conversations or (3 if args.smoke else 50)
    args.delay = args.delay if args.delay is not None else (0.01 if args.smoke else 0.2)
    args.repeat = args.repeat or (1 if args.smoke else 3)
    env = child_env(inherit=False)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CI", "PYTEST_XDIST_WORKER"):
        env.pop(name, None)
    env["OPENAI_API_KEY"] = API_KEY
    args.env = {k: v for k, v in env.items() if not k.startswith("FLUXLOOP_")}
    print("machine:")
    for key, value in machine_info().items():
        print(f"  {key:16s} {value}")
    started = time.perf_counter()
    try:
        with workspace(args.keep) as tmp:
            raw = {"machine": machine_info(), "smoke": args.smoke, **bench(args, tmp)}
    except BenchError as exc:
        print(f"\nERROR: {exc}")
        return 1
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s"
        + ("  (smoke: the numbers mean nothing)" if args.smoke else "")
    )
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
