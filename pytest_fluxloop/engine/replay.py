"""Replay of recorded calls (``replay_args``): each case calls the agent as it was really
called, with the case's input swapped in.

The pieces:

* :class:`ReplayPlan`: the recorded calls for the target (read once, before any case, by
  :func:`pytest_fluxloop.plan.recordings.read_recordings`), ``override_param_path`` checked
  in every one of them, ``runner.args`` laid over their keyword arguments;
  :meth:`ReplayPlan.check_target` checks that the agent's signature takes every recorded
  call shape (before any case runs, too).
* :class:`ReplayDriver`: wraps the driver a run would use anyway (single turn, or the
  multi-turn conversation) and hands it a binder that rebuilds the case's recorded call for
  every call of the agent: a fresh copy each time, the message (the case input, or a
  conversation's next user message) placed at the path. So every turn of a conversation
  reuses the recorded call with the new message.
* Stand-ins (:class:`StandIn`) for the values a recording could only describe:

  - a recorded callable (``{"__fluxloop__": "callable"}``, or the earlier SDK's
    ``"<callable:send>"`` / ``"<builtin:collector.send>"`` text) becomes a callable that
    records every call. Calling it returns an already finished awaitable, so ``send(x)``,
    ``await send(x)`` and ``asyncio.create_task(send(x))`` all work, for sync and async
    agents alike. Each call is an observation (``event`` named ``callback:<name>``, input
    the message). When the agent returns None, what it sent through its callbacks is the
    output: one message as it is, several as a list. Callbacks whose name says
    ``error``/``err`` are observed only, never output.
  - any other recorded object (``{"__fluxloop__": "object"}``, ``"<repr:...>"``, e.g. a
    websocket) becomes an inert stand-in: reading an attribute gives another stand-in,
    calling one records the call. Methods that send (``send*``, ``reply*``, ``respond*``,
    ``write*``, ``emit*``, ``publish*``: ``await websocket.send_json(x)``) count toward the
    output like callbacks; others (``close()``) are observed only. Names starting with
    ``_`` are not stood in for (so ``copy``, ``pickle`` and ``hasattr(x, "__iter__")``
    behave).
  - recorded bytes (``{"__fluxloop__": "bytes"}``) become ``b""``: the content was never
    recorded.

* No fixed waits. The call ends when the agent returns, and then, for an async agent, when
  the tasks its code started and did not await (``create_task(send(...))``) have finished.
  Those are known exactly (the shared loop's task factory remembers which call created each
  task), so other cases' tasks are never waited for. Should such a task still run when the
  case's ``timeout_seconds`` is nearly up (a heartbeat loop, say), it is cancelled and a
  ``notice`` observation says so; the agent's reply stands.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import inspect
import re
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, TargetError
from ..jsonsafe import PLACEHOLDER_KEY, to_jsonable
from ..plan.recordings import ArgPath, RecordedCall, Recordings
from ..sdk.context import TraceContext, current_trace
from .async_loop import started_tasks
from .drivers.base import Driver, DriverOutcome, Resolve

if TYPE_CHECKING:
    from ..plan import Case
    from .drivers.base import Binder
    from .target import Target

__all__ = ["ReplayDriver", "ReplayPlan", "StandIn"]

SETTLE_MARGIN_SECONDS = 0.5
"""How long before the case deadline waiting for the agent's unawaited tasks stops (at most
a twentieth of ``timeout_seconds``), so the reply is recorded rather than lost to a timeout."""

_SENDING = ("send", "reply", "respond", "write", "emit", "publish")
_ERRORISH = re.compile(r"error|(?<![a-z])err(?![a-z])")
_LEGACY_CALLABLE = re.compile(r"<(callable|builtin):(.+?)(:async)?>", re.DOTALL)
_LEGACY_REPR = re.compile(r"<repr:.*>", re.DOTALL)


@dataclass(frozen=True)
class ReplayPlan:
    """The recorded calls an experiment replays and where each case's input goes."""

    source: Path
    """The recording file (for messages and observations)."""
    calls: tuple[RecordedCall, ...]
    path: ArgPath
    runner_args: Mapping[str, Any] = field(default_factory=dict)
    """``runner.args``: they replace (or add) the recorded keyword arguments of the same name."""

    @classmethod
    def build(
        cls,
        recordings: Recordings,
        override_param_path: str,
        runner_args: Mapping[str, Any] | None = None,
    ) -> ReplayPlan:
        """The plan for ``recordings`` (already the target's: :meth:`Recordings.calls_for`).

        Raises:
            ConfigError: the path is malformed, or missing from a recorded call (the
                message names the line and the nearest paths that exist).
        """
        args = dict(runner_args or {})
        path = ArgPath.parse(override_param_path)
        calls = list(recordings.calls)
        if not calls:
            raise ConfigError(f"recording file {recordings.path} holds no recorded calls")
        # Checked as the agent will be called: runner.args may hold the path's first key.
        checked = [replace(c, kwargs={**c.kwargs, **args}) for c in calls] if args else calls
        path.check(checked, recordings.path)
        return cls(recordings.path, tuple(calls), path, args)

    def check_target(self, target: Target) -> None:
        """TargetError unless the agent's signature takes every recorded call (each shape
        of positional count and keyword names is checked once); the message names the line
        and the missing or unexpected parameters."""
        signature = target.signature
        if signature is None:
            return
        seen: set[tuple[int, frozenset[str]]] = set()
        for call in self.calls:
            kwargs = {**call.kwargs, **self.runner_args}
            shape = (len(call.args), frozenset(kwargs))
            if shape in seen:
                continue
            seen.add(shape)
            problems = _fit_problems(signature, call.args, kwargs)
            if problems:
                raise TargetError(
                    f"runner.target {target.spec!r} can't take the call recorded in "
                    f"{self.source}, line {call.line} (signature {signature}): "
                    f"{'; '.join(problems)}. Record the calls again for this signature, or "
                    "fix runner.target"
                )

    def assignment(self, cases: Iterable[Case]) -> dict[str, int]:
        """Which recorded call each case replays: the cases in run order (seeded) take the
        calls in turn, so every call is used once there are as many cases as calls."""
        n = len(self.calls)
        return {case.case_id: index % n for index, case in enumerate(cases)}

    def call_for(self, case: Case, assignment: Mapping[str, int]) -> RecordedCall:
        """The recorded call ``case`` replays (a case not in ``assignment``, e.g. one a
        hook added: a hash of its seed and id, so still deterministic)."""
        index = assignment.get(case.case_id)
        if index is None:
            digest = hashlib.sha256(f"{case.seed}:{case.case_id}".encode()).digest()
            index = int.from_bytes(digest[:4], "big") % len(self.calls)
        return self.calls[index]


class ReplayDriver:
    """Runs each case as its recorded call, through the driver a run uses anyway."""

    def __init__(
        self,
        plan: ReplayPlan,
        inner: Driver,
        cases: Iterable[Case] = (),
        signature: inspect.Signature | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        """``cases``: the experiment's cases in run order (see :meth:`ReplayPlan.assignment`);
        ``signature``: the agent's, to name positional callbacks by their parameter;
        ``timeout_seconds``: the case deadline the wait for unawaited tasks stays within."""
        self.plan = plan
        self.inner = inner
        self.assignment = plan.assignment(cases)
        self.timeout_seconds = timeout_seconds
        self.positional_names: tuple[str, ...] = ()
        if signature is not None:
            self.positional_names = tuple(
                p.name
                for p in signature.parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            )

    def run(
        self,
        agent: Callable[..., Any],
        case: Case,
        binding: Binder,
        values: dict[str, Any],
        resolve: Resolve,
    ) -> DriverOutcome:
        """Run the attempt with the case's recorded call (``binding`` and ``values`` are not
        used: the recorded call brings every argument)."""
        call = self.plan.call_for(case, self.assignment)
        ctx = current_trace()
        if ctx is not None:
            ctx.add(
                "event",
                "replay",
                metadata={
                    "recording_file": str(self.plan.source),
                    "line": call.line,
                    "target": call.target,
                    "timestamp": call.timestamp,
                    "override_param_path": self.plan.path.text,
                },
            )
        deadline = None
        if self.timeout_seconds:
            margin = min(SETTLE_MARGIN_SECONDS, self.timeout_seconds / 20)
            deadline = time.monotonic() + self.timeout_seconds - margin
        session = _Session(self, call, ctx, deadline)
        return self.inner.run(session.wrap(agent), case, session, values, resolve)


class _Session:
    """One attempt of one case: rebuilds its recorded call for every call of the agent."""

    def __init__(
        self,
        driver: ReplayDriver,
        call: RecordedCall,
        ctx: TraceContext | None,
        deadline: float | None,
    ) -> None:
        self.driver = driver
        self.call = call
        self.ctx = ctx
        self.deadline = deadline
        self.turns = 0
        self.current: _Turn | None = None

    def bind(self, text: Any, values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The recorded call, rebuilt (a fresh copy, live stand-ins), with ``text`` at the
        override path (``values`` are not used)."""
        self.turns += 1
        turn = _Turn(self, self.turns)
        args = [turn.live(v, ("args", i)) for i, v in enumerate(self.call.args)]
        kwargs = {k: turn.live(v, (k,)) for k, v in self.call.kwargs.items()}
        kwargs.update(copy.deepcopy(dict(self.driver.plan.runner_args)))
        self.driver.plan.path.assign(args, kwargs, text, self.call.arg_names)
        self.current = turn
        return tuple(args), kwargs

    def wrap(self, agent: Callable[..., Any]) -> Callable[..., Any]:
        """``agent``, made to return what it sent through its callbacks when it returns
        None, after the tasks it started have finished (async agents)."""

        def replayed(*args: Any, **kwargs: Any) -> Any:
            turn = self.current  # set by bind(), which the driver calls just before
            result = agent(*args, **kwargs)
            if turn is None:
                return result
            if inspect.isawaitable(result):
                return turn.finish(result)
            return turn.output(result)

        return replayed


class _Turn:
    """One call of the agent: its stand-ins and what was sent through them."""

    def __init__(self, session: _Session, number: int) -> None:
        self.session = session
        self.number = number
        self.sent: list[Any] = []
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- building the call

    def live(self, value: Any, path: tuple[str | int, ...]) -> Any:
        """A fresh copy of recorded ``value`` with stand-ins for its placeholders."""
        if isinstance(value, dict):
            kind = value.get(PLACEHOLDER_KEY)
            if isinstance(kind, str):
                return self._stand_in(kind, value, path)
            return {k: self.live(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.live(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and value.startswith("<") and value.endswith(">"):
            # The earlier SDK wrote callables and objects as text ("<callable:send>").
            legacy = _LEGACY_CALLABLE.fullmatch(value)
            if legacy is not None:
                name, recorded = self._name(path), legacy.group(2)
                return StandIn(self, name, "callable", recorded, not _errorish(name, recorded))
            if _LEGACY_REPR.fullmatch(value):
                return StandIn(self, self._name(path), "object", value[6:-1], False)
        return value

    def _stand_in(self, kind: str, placeholder: dict[str, Any], path: tuple[str | int, ...]) -> Any:
        name = self._name(path)
        if kind == "bytes":
            return b""
        if kind == "callable":
            recorded = str(placeholder.get("name") or name)
            return StandIn(self, name, "callable", recorded, not _errorish(name, recorded))
        recorded = str(placeholder.get("type") or placeholder.get("repr") or kind)
        return StandIn(self, name, "object", recorded, False)

    def _name(self, path: tuple[str | int, ...]) -> str:
        """The argument path, with a positional argument named by its parameter."""
        parts = [str(p) for p in path]
        if path and path[0] == "args" and len(path) > 1:
            names = self.session.driver.positional_names
            index = path[1]
            if isinstance(index, int) and index < len(names):
                parts = [names[index], *parts[2:]]
        return ".".join(parts)

    # ---------------------------------------------------------------- during the call

    def called(self, stand_in: StandIn, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Remember one call of a stand-in (any thread) and observe it."""
        message = _message(args, kwargs)
        counts = stand_in._fl_output and bool(args or kwargs)
        if counts:
            snapshot = _snapshot(message)  # the agent may reuse the dict it sent
            with self._lock:
                self.sent.append(snapshot)
        ctx = self.session.ctx
        if ctx is not None:
            ctx.add(
                "event",
                f"callback:{stand_in._fl_name}",
                input=to_jsonable(message),
                metadata={
                    "turn": self.number,
                    "recorded": stand_in._fl_recorded,
                    "output": counts,
                },
            )

    # ---------------------------------------------------------------- after the call

    def output(self, result: Any) -> Any:
        """The agent's return value; when None, what it sent (one message, or a list)."""
        if result is not None:
            return result
        with self._lock:
            sent = list(self.sent)
        if not sent:
            return None
        return sent[0] if len(sent) == 1 else sent

    async def finish(self, awaitable: Awaitable[Any]) -> Any:
        """Await the agent, then the tasks its code started; then :meth:`output`."""
        result = await awaitable
        await self._settle()
        return self.output(result)

    async def _settle(self) -> None:
        """Wait for the tasks the agent started and left running (no fixed wait: exactly
        those, until they end), within the case deadline."""
        finished: list[asyncio.Task[Any]] = []
        try:
            while True:
                pending = started_tasks()
                if not pending:
                    break
                deadline = self.session.deadline
                timeout = None if deadline is None else deadline - time.monotonic()
                done: set[asyncio.Task[Any]] = set()
                if timeout is None or timeout > 0:
                    done, _ = await asyncio.wait(pending, timeout=timeout)
                    finished.extend(done)
                if len(done) < len(pending) and timeout is not None:
                    self._cancel_late(started_tasks())
                    break
        except asyncio.CancelledError:
            # The case was given up (its deadline): what the agent left running goes too.
            for task in started_tasks():
                task.cancel()
            raise
        self._report_failures(finished)

    def _cancel_late(self, tasks: list[asyncio.Task[Any]]) -> None:
        for task in tasks:
            task.cancel()
        ctx = self.session.ctx
        if ctx is not None and tasks:
            ctx.add(
                "notice",
                "replay:tasks_cancelled",
                error=(
                    f"{len(tasks)} task(s) the agent started were still running when the "
                    "case's timeout_seconds was nearly up; they were cancelled and the reply "
                    "so far was kept"
                ),
                metadata={"turn": self.number, "tasks": [t.get_name() for t in tasks][:20]},
            )

    def _report_failures(self, tasks: list[asyncio.Task[Any]]) -> None:
        ctx = self.session.ctx
        for task in tasks:
            if task.cancelled():
                continue
            exc = task.exception()  # retrieved here, so asyncio does not log it at exit
            if exc is not None and ctx is not None:
                ctx.add(
                    "error",
                    "replay:task_failed",
                    error=f"{type(exc).__name__}: {exc}"[:500],
                    metadata={"turn": self.number, "task": task.get_name()},
                )


class StandIn:
    """A recorded value with no JSON form, alive again for one call of the agent.

    Calling it records the call (see the module docstring) and returns a finished
    awaitable; reading a public attribute gives a further stand-in (the same one each
    time, so ``ws.send is ws.send``).
    """

    def __init__(
        self, turn: _Turn, name: str, kind: str, recorded: str | None, output: bool
    ) -> None:
        own = self.__dict__
        own["_fl_turn"] = turn
        own["_fl_name"] = name
        own["_fl_kind"] = kind
        own["_fl_recorded"] = recorded
        own["_fl_output"] = output
        own["__name__"] = name.rsplit(".", 1)[-1]

    _fl_turn: _Turn
    _fl_name: str
    _fl_kind: str
    _fl_recorded: str | None
    _fl_output: bool

    def __call__(self, *args: Any, **kwargs: Any) -> _Finished:
        self._fl_turn.called(self, args, kwargs)
        return _Finished()

    def __getattr__(self, name: str) -> StandIn:
        if name.startswith("_"):
            raise AttributeError(name)
        child = StandIn(
            self._fl_turn,
            f"{self._fl_name}.{name}",
            "attribute",
            None,
            name.lower().startswith(_SENDING) and not _errorish(name),
        )
        self.__dict__[name] = child
        return child

    def __copy__(self) -> StandIn:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> StandIn:
        # A copy would drag the whole case along (and record nowhere).
        return self

    def __repr__(self) -> str:
        recorded = f" ({self._fl_recorded})" if self._fl_recorded else ""
        return f"<fluxloop stand-in for recorded {self._fl_kind} {self._fl_name!r}{recorded}>"


class _Finished(Coroutine[Any, Any, None]):
    """What a stand-in call returns: an awaitable that is already done (``await``,
    ``create_task`` and ``gather`` all accept it), and no "never awaited" warning when a
    sync agent ignores it."""

    __slots__ = ()

    def send(self, value: Any) -> Any:
        raise StopIteration(None)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        raise typ if val is None else val

    def close(self) -> None:
        return None

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator that returns at once: `await` gives None


def _errorish(*names: str | None) -> bool:
    return any(name and _ERRORISH.search(name.lower()) for name in names)


def _message(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What one callback call sent: the one argument, the keyword arguments, or both."""
    if len(args) == 1 and not kwargs:
        return args[0]
    if not args:
        return dict(kwargs) if kwargs else None
    if not kwargs:
        return list(args)
    return {"args": list(args), "kwargs": dict(kwargs)}


def _snapshot(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except Exception:  # an object that can't be copied is kept as it is
        return value


def _fit_problems(
    signature: inspect.Signature, args: list[Any], kwargs: Mapping[str, Any]
) -> list[str]:
    """What keeps ``signature`` from taking ``(args, kwargs)``: missing and unexpected
    parameters, surplus positional arguments ([] when it fits)."""
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        reason = str(exc)
    else:
        return []
    params = list(signature.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var_positional = any(p.kind is p.VAR_POSITIONAL for p in params)
    var_keyword = any(p.kind is p.VAR_KEYWORD for p in params)
    by_name = {p.name: p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    filled = {p.name for p in positional[: len(args)]}
    problems: list[str] = []
    if len(args) > len(positional) and not var_positional:
        problems.append(
            f"{len(args)} positional argument(s) recorded, it takes at most {len(positional)}"
        )
    twice = sorted(k for k in kwargs if k in filled)
    if twice:
        problems.append(f"given both by position and by name: {', '.join(twice)}")
    unexpected = sorted(
        k
        for k in kwargs
        if not var_keyword
        and (k not in by_name or by_name[k].kind is inspect.Parameter.POSITIONAL_ONLY)
    )
    if unexpected:
        problems.append(f"unexpected parameter(s): {', '.join(unexpected)}")
    missing = [
        p.name
        for p in by_name.values()
        if p.default is p.empty
        and p.name not in filled
        and (p.name not in kwargs or p.kind is p.POSITIONAL_ONLY)
    ]
    if missing:
        problems.append(f"missing parameter(s): {', '.join(missing)}")
    return problems or [reason]
