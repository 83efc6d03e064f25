"""``--fluxloop-otel`` end to end: the application's tracer provider (the SDK's in-memory
exporter, set by the project's conftest.py), OTLP/HTTP to a receiver on 127.0.0.1, xdist,
content capture, the export off, the extra missing. Every run is a real pytest subprocess."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from support.cassette_project import (
    AGENT_TURNS,
    RECORD_KEY,
    SIM_TURNS,
    SUPERVISOR_MODEL,
    CassetteProject,
    environment,
    jsonl,
    results_dir,
    summary,
)
from support.otlp_receiver import OtlpReceiver, ReceivedSpan, running_otlp_receiver
from support.plugin_helpers import Project
from support.sim_llm import running_sim_server

from pytest_fluxloop.sinks.otel import INSTALL_HINT
from pytest_fluxloop.sinks.otel_semconv import SCHEMA_URL, SEMCONV_VERSION

# A pytest subprocess each (1-4 s).
pytestmark = pytest.mark.slow

QUIET = ("-p", "no:cacheprovider", "-p", "no:langsmith_plugin")
OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SDK_DISABLED",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
)

# The application sets a tracer provider globally (here in conftest.py, as an application
# would at import): the export must use it. The controller writes what it got at the end.
MEMORY_CONFTEST = """\
import json

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXPORTER = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "my-app"}))
provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(provider)


def _span(span):
    return {
        "name": span.name,
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "parent_id": format(span.parent.span_id, "016x") if span.parent else "",
        "start": span.start_time,
        "end": span.end_time,
        "attributes": dict(span.attributes),
        "events": [[e.name, dict(e.attributes)] for e in span.events],
        "status": span.status.status_code.name,
        "resource": dict(span.resource.attributes),
        "schema_url": span.instrumentation_scope.schema_url,
    }


def pytest_unconfigure(config):
    if hasattr(config, "workerinput"):
        return  # an xdist worker exports nothing
    with open("spans.json", "w", encoding="utf-8") as out:
        json.dump([_span(s) for s in EXPORTER.get_finished_spans()], out)
"""

# What the run imported of OpenTelemetry, written by the controller at the very end.
MODULES_CONFTEST = """\
import json
import sys


def pytest_unconfigure(config):
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
    with open("otel_modules.json", "w", encoding="utf-8") as out:
        json.dump(loaded, out)
"""

# The extra not installed: its modules cannot be imported.
MISSING_EXTRA_CONFTEST = """\
import sys

for name in [m for m in sys.modules if m.split(".")[0] == "opentelemetry"]:
    del sys.modules[name]
sys.modules["opentelemetry"] = None
"""


@pytest.fixture
def clean_otel_env() -> Iterator[None]:
    """No OTEL_* variable of the developer's shell reaches the runs."""
    with environment(dict.fromkeys(OTEL_VARIABLES)):
        yield


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with running_otlp_receiver() as running:
        yield running


def run(project: Project, *args: str, env: dict[str, str | None] | None = None) -> Any:
    with environment(env or {}):
        return project.pytester.runpytest_subprocess(
            "--fluxloop-config", project.config, *QUIET, *args, timeout=180
        )


def children(span: ReceivedSpan, spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return sorted((s for s in spans if s.parent_span_id == span.span_id), key=lambda s: s.start_ns)


def roots(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [s for s in spans if not s.parent_span_id]


# --------------------------------------------------------------------------- application provider


def test_the_application_tracer_provider_gets_every_case(
    project: Project, clean_otel_env: None
) -> None:
    project.setup(extra="otel:\n  enabled: true\n")  # from the config, no option
    project.write("conftest.py", MEMORY_CONFTEST)
    result = run(project)
    result.assert_outcomes(passed=2, failed=1)
    spans: list[dict[str, Any]] = json.loads((project.root / "spans.json").read_text())
    cases = [s for s in spans if not s["parent_id"]]
    assert sorted(s["attributes"]["fluxloop.case_id"] for s in cases) == sorted(
        t["case_id"] for t in project.jsonl(project.only_experiment() / "traces.jsonl")
    )
    ids = {s["span_id"]: s for s in spans}
    for case in cases:
        assert case["name"] == "invoke_agent run"
        attributes = case["attributes"]
        assert attributes["gen_ai.operation.name"] == "invoke_agent"
        assert attributes["gen_ai.agent.name"] == "run"
        assert attributes["gen_ai.conversation.id"] == attributes["fluxloop.trace_id"]
        assert attributes["fluxloop.role"] == "agent"
        # The @fluxloop.agent span under the case, in the same trace.
        (agent,) = [s for s in spans if s["parent_id"] == case["span_id"]]
        assert agent["name"] == "run" and agent["trace_id"] == case["trace_id"]
        assert case["start"] <= agent["start"] <= agent["end"] <= case["end"]
        # The application's resource, our schema.
        assert case["resource"]["service.name"] == "my-app"
        assert case["schema_url"] == SCHEMA_URL
    assert all(not s["parent_id"] or s["parent_id"] in ids for s in spans)
    (crashed,) = [c for c in cases if c["attributes"]["fluxloop.status"] == "error"]
    assert crashed["status"] == "ERROR"
    assert crashed["attributes"]["error.type"] == "ValueError"
    report = project.summary(project.only_experiment())["otel"]
    assert report == {
        "spans": len(spans),
        "traces": 3,
        "exporter": "application tracer provider",
        "semconv": SEMCONV_VERSION,
        "content": False,
        "flushed": True,
        "errors": 0,
    }
    result.stdout.fnmatch_lines(
        [f"otel: {len(spans)} spans of 3 cases exported to application tracer provider *"]
    )


# --------------------------------------------------------------------------- OTLP


@pytest.mark.parametrize("content", [False, True], ids=["no-content", "content"])
def test_otlp_export_of_multi_turn_conversations(
    pytester: pytest.Pytester, clean_otel_env: None, receiver: OtlpReceiver, content: bool
) -> None:
    project = CassetteProject(pytester).setup_cassettes(inputs=2)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
    if content:
        env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
    with running_sim_server(turns=SIM_TURNS) as server:
        result = project.run("--fluxloop-otel", url=server.openai_url, keys=True, env=env)
    assert result.ret == 0, result.stdout.str()
    spans = receiver.received()
    exp = results_dir(result.stdout.str())
    traces = {t["case_id"]: t for t in jsonl(exp / "traces.jsonl")}
    # Per case: the case, its turns, 2 agent calls per turn, a decision and its call per turn.
    per_case = 1 + AGENT_TURNS * (1 + 2 + 1 + 1)
    assert len(spans) == len(traces) * per_case
    assert len({s.span_id for s in spans}) == len(spans)
    ids = {s.span_id: s for s in spans}
    assert all(ids.get(s.parent_span_id) is not None for s in spans if s.parent_span_id)
    for case in roots(spans):
        trace = traces[case.attributes["fluxloop.case_id"]]
        assert case.name == "invoke_agent run"
        assert case.schema_url == SCHEMA_URL
        assert case.resource["service.name"] == "fluxloop"
        assert {s.trace_id for s in spans if _root_of(s, ids) is case} == {case.trace_id}
        kids = children(case, spans)
        assert [k.name for k in kids] == [
            name for n in range(1, AGENT_TURNS + 1) for name in (f"turn {n}", "supervisor_decision")
        ]
        for kid in kids:
            calls = children(kid, spans)
            if kid.name.startswith("turn "):
                assert [c.name for c in calls] == ["chat agent-model"] * 2
                assert {c.attributes["fluxloop.role"] for c in calls} == {"agent"}
            else:
                assert [c.name for c in calls] == [f"chat {SUPERVISOR_MODEL}"]
                assert calls[0].attributes["fluxloop.role"] == "supervisor"
            for call in calls:
                assert call.attributes["gen_ai.provider.name"] == "openai"
                assert call.kind == 3  # SPAN_KIND_CLIENT
                assert kid.start_ns <= call.start_ns <= call.end_ns <= kid.end_ns
        # Usage only on the calls, summing to the trace's token_usage role by role.
        case_spans = [s for s in spans if s.trace_id == case.trace_id]
        for span in case_spans:
            usage = [k for k in span.attributes if k.startswith("gen_ai.usage.")]
            assert bool(usage) == span.name.startswith("chat "), span.name
        for role in ("agent", "supervisor"):
            summed = sum(
                s.attributes["gen_ai.usage.input_tokens"]
                for s in case_spans
                if s.name.startswith("chat ") and s.attributes["fluxloop.role"] == role
            )
            assert summed == trace["token_usage"][role]["input_tokens"]
            assert summed == case.attributes[f"fluxloop.usage.{role}.input_tokens"]
    dumped = repr([(s.attributes, [e.attributes for e in s.events]) for s in spans])
    assert ("gen_ai.input.messages" in dumped) is content
    assert ("hello there" in dumped) is content  # a case's first user message
    assert RECORD_KEY not in dumped
    report = summary(exp)["otel"]
    assert report["exporter"] == f"OTLP {receiver.url}/v1/traces"
    assert (report["spans"], report["delivered"], report["failed"]) == (len(spans), len(spans), 0)
    assert report["traces"] == len(traces) and report["content"] is content


def _root_of(span: ReceivedSpan, ids: dict[str, ReceivedSpan]) -> ReceivedSpan:
    while span.parent_span_id:
        span = ids[span.parent_span_id]
    return span


def test_xdist_workers_export_nothing_and_every_case_once(
    project: Project, clean_otel_env: None, receiver: OtlpReceiver
) -> None:
    pytest.importorskip("xdist")
    project.setup(iterations=2)
    result = run(
        project, "--fluxloop-otel", "-n", "2", env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
    )
    result.assert_outcomes(passed=4, failed=2)
    cases = roots(receiver.received())
    case_ids = [c.attributes["fluxloop.case_id"] for c in cases]
    traces = project.jsonl(project.only_experiment() / "traces.jsonl")
    assert sorted(case_ids) == sorted(t["case_id"] for t in traces)
    assert len(set(case_ids)) == 6
    assert {c.attributes["fluxloop.worker"] for c in cases} == {"gw0", "gw1"}
    assert project.summary(project.only_experiment())["otel"]["traces"] == 6


# --------------------------------------------------------------------------- off, missing


@pytest.mark.parametrize(
    ("config", "args"),
    [("", ()), ("otel:\n  enabled: true\n", ("--fluxloop-no-otel",))],
    ids=["not-asked", "turned-off"],
)
def test_without_the_export_nothing_is_sent_and_opentelemetry_is_not_imported(
    project: Project,
    clean_otel_env: None,
    receiver: OtlpReceiver,
    config: str,
    args: tuple[str, ...],
) -> None:
    project.setup(extra=config)
    project.write("conftest.py", MODULES_CONFTEST)
    result = run(project, *args, env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    result.assert_outcomes(passed=2, failed=1)
    assert json.loads((project.root / "otel_modules.json").read_text()) == []
    assert receiver.requests == 0
    assert project.summary(project.only_experiment())["otel"] is None
    assert "otel:" not in result.stdout.str()


def test_without_the_extra_the_run_stops_before_any_case_with_the_fix(
    project: Project, clean_otel_env: None
) -> None:
    project.setup()
    project.write("conftest.py", MISSING_EXTRA_CONFTEST)
    result = run(project, "--fluxloop-otel")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    stderr = result.stderr.str()
    assert "--fluxloop-otel: the OpenTelemetry export needs the optional extra" in stderr
    assert INSTALL_HINT in stderr
    assert project.experiments() == []


def test_the_receiver_refuses_what_it_cannot_parse(receiver: OtlpReceiver) -> None:
    """The test receiver itself: a body it cannot read is never a silent 200."""
    import urllib.error
    import urllib.request

    def post(body: bytes, media: str) -> int:
        request = urllib.request.Request(
            f"{receiver.url}/v1/traces", data=body, headers={"Content-Type": media}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    assert post(b"{}", "application/json") == 415
    assert post(b"\xff\xff\xff", "application/x-protobuf") == 400
    assert receiver.requests == 0
