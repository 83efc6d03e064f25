"""The HTML report in a real browser: headless Chromium through Playwright.

One project is run once for the module, as a user would (``fluxloop run experiment`` in a
real subprocess): a multi-turn support agent played against the mock supervisor, 3 personas
× 3 iterations, whose agent makes one real ``openai`` call per turn to
:mod:`support.echo_llm` (so the run has token usage). ``tricky_user`` gets a hostile answer
(``<script>`` and an ``<img onerror>``), which evaluation.yaml fails; ``expert_user`` crashes the
agent on iteration 1. Then ``fluxloop report`` writes the page, and each test opens it from
``file://`` with and without JavaScript.

Chromium is Debian's ``chromium`` (``/usr/bin/chromium``, or ``$FLUXLOOP_CHROMIUM``), never a
download; ``.ci/run`` installs it. Without it, or without the ``playwright`` package, the
tests skip and say why. ``FLUXLOOP_REPORT_SCREENSHOT=docs/report-screenshot.png`` also saves
the screenshot used in docs/reports.md.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cli_helpers import describe, run_cli
from support.echo_llm import running_echo_server

from pytest_fluxloop.report.charts import fmt_number

pytestmark = pytest.mark.slow

CHROMIUM = Path(
    os.environ.get("FLUXLOOP_CHROMIUM")
    or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
    or shutil.which("chromium")
    or "/usr/bin/chromium"
)
EVIL = '<script>alert("xss")</script><img src=x onerror="alert(2)"> Here you go.'
SCRIPTED = "Thanks. How long does shipping to Berlin take?"

AGENT = f'''\
"""A support agent: one LLM call per turn (for its token counts), then a canned answer."""

import os

import openai

import fluxloop

client = openai.OpenAI(
    base_url=os.environ["AGENT_LLM_URL"] + "/v1", api_key="agent-key", max_retries=0
)


@fluxloop.tool()
def lookup_order(number):
    return f"order {{number}} left our warehouse yesterday"


@fluxloop.agent()
def run(input_text, persona=None, iteration=0, conversation_state=None):
    client.chat.completions.create(
        model="agent-model", messages=[{{"role": "user", "content": input_text}}]
    )
    if persona == "expert_user" and iteration == 1:
        raise ValueError("the order database is down")
    if persona == "tricky_user":
        return {EVIL!r}
    if "order" in input_text:
        return "Your " + lookup_order("1042") + "; tracking follows by email."
    if "shipping" in input_text:
        return "Standard shipping takes 2-4 business days within the EU."
    return "We are open Monday to Friday, 9:00-18:00 CET."
'''

SIMULATION = {
    "name": "support_report",
    "description": "Multi-turn support conversations for the HTML report",
    "iterations": 3,
    "seed": 7,
    "runner": {"target": "agent:run", "timeout_seconds": 30, "max_retries": 0},
    "multi_turn": {
        "enabled": True,
        "max_turns": 4,
        "supervisor": {
            "provider": "mock",
            "metadata": {
                "scripted_questions": [SCRIPTED, "And when are you open?"],
                "mock_reason": "script_complete",
                "mock_closing": "Great, thank you!",
            },
        },
    },
    "output_directory": "experiments",
}
INPUTS = {
    "inputs": [
        {
            "input": "Where is my order 1042?",
            "metadata": {"persona": "novice_user", "persona_description": "First order"},
        },
        {
            "input": "Can you show me the page source?",
            "metadata": {"persona": "tricky_user", "persona_description": "Tries injections"},
        },
        {
            "input": "My order 1043 is late, what now?",
            "metadata": {"persona": "expert_user", "persona_description": "Wants exact answers"},
        },
    ]
}
EVALUATION = {
    "evaluators": [
        {
            "name": "safe_answer",
            "type": "rule_based",
            "rules": [
                {"check": "output_not_empty"},
                {"check": "not_contains", "keywords": ["<script"], "target": "transcript"},
            ],
        }
    ],
    "aggregate": {"method": "weighted_sum", "threshold": 0.7},
}


@dataclass
class Report:
    """The run and its report: the page's URL, summary.json and the summary lines."""

    path: Path
    url: str
    summary: dict[str, Any]
    lines: list[dict[str, Any]]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    root = tmp_path_factory.mktemp("report_project")
    (root / "agent.py").write_text(AGENT, encoding="utf-8")
    (root / "configs").mkdir()
    (root / "inputs").mkdir()
    for path, data in (
        ("configs/simulation.yaml", SIMULATION),
        ("configs/evaluation.yaml", EVALUATION),
        ("configs/project.yaml", {"name": "report-demo"}),
        ("inputs/generated.yaml", INPUTS),
    ):
        (root / path).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with running_echo_server() as echo:
        proc = run_cli(
            "run",
            "experiment",
            "-c",
            "configs/simulation.yaml",
            "-y",
            cwd=root,
            env={"AGENT_LLM_URL": echo.url},
        )
    assert proc.returncode == 1, describe(proc)  # the failing cases fail their items
    (exp,) = sorted((root / "experiments").glob("exp_*"))
    proc = run_cli("report", exp, cwd=root)
    assert proc.returncode == 0, describe(proc)
    page = exp / "report.html"
    assert f"Report: {page}" in proc.stdout or "Report:" in proc.stdout, describe(proc)
    summary = json.loads((exp / "summary.json").read_text(encoding="utf-8"))
    lines = [
        json.loads(line)
        for line in (exp / "trace_summary.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    return Report(page, page.resolve().as_uri(), summary, lines)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed: pip install -e '.[test]'")
    if not CHROMIUM.is_file():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does), or set "
            "FLUXLOOP_CHROMIUM"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@dataclass
class Visit:
    """An open page and everything it did: requests, console errors, dialogs."""

    page: Any
    requests: list[str]
    errors: list[str]
    dialogs: list[str]


def visit(browser: Any, url: str, *, javascript: bool = True) -> Visit:
    context = browser.new_context(
        java_script_enabled=javascript, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    seen = Visit(page, [], [], [])
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("console", lambda msg: seen.errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    page.on("dialog", lambda dialog: (seen.dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(url, wait_until="load")
    return seen


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def card(page: Any, key: str) -> str:
    return str(page.locator(f'[data-k="{key}"] .v').inner_text()).strip()


def expected_cards(report: Report) -> dict[str, str]:
    """The headline figures as summary.json and the summary lines have them."""
    evaluation = report.summary["evaluation"]
    overall = evaluation["reliability"]["overall"]
    k = str(max(evaluation["reliability"]["k"]))
    verdicts = [(line.get("evaluation") or {}).get("verdict") for line in report.lines]
    failed = sum(
        1
        for line, verdict in zip(report.lines, verdicts, strict=True)
        if line["status"] != "success" or verdict == "failed"
    )
    return {
        "cases": str(len(report.lines)),
        "pass-rate": pct(overall["success_rate"]),
        "pass-hat-k": pct(overall["pass_hat_k"][k]),
        "failed": str(failed),
        "unscored": str(verdicts.count("unscored")),
    }


def visible_rows(page: Any) -> int:
    return int(page.locator("table.cases tbody tr:visible").count())


def test_page_loads_offline_without_errors(browser: Any, report: Report) -> None:
    seen = visit(browser, report.url)
    assert seen.errors == []
    assert seen.requests == [report.url]  # the page itself, nothing else
    assert seen.dialogs == []
    assert seen.page.title() == "FluxLoop report: support_report"
    screenshot = os.environ.get("FLUXLOOP_REPORT_SCREENSHOT")
    if screenshot:  # docs/report-screenshot.png: the top of the page, a failure open
        seen.page.set_viewport_size({"width": 1280, "height": 1500})
        seen.page.locator('#failures details.case[data-p="tricky_user"] > summary').first.click()
        seen.page.screenshot(path=screenshot)
    seen.page.context.close()


def test_headline_numbers_match_summary(browser: Any, report: Report) -> None:
    expected = expected_cards(report)
    assert expected["failed"] == "4" and expected["pass-rate"] == "55.6%"  # 5 of 9
    seen = visit(browser, report.url)
    assert {key: card(seen.page, key) for key in expected} == expected
    p95 = report.summary["evaluation"]["latency_ms"]["p95"]
    assert card(seen.page, "p95") == fmt_number(p95, "ms")
    # Tokens by role: the agent's total as summary.json sums it.
    agent = report.summary["token_usage"]["agent"]["total_tokens"]
    assert f"agent {agent:,}" in seen.page.locator("#tokens .legend").inner_text()
    seen.page.context.close()


def test_filters_search_and_sort(browser: Any, report: Report) -> None:
    from playwright.sync_api import expect

    seen = visit(browser, report.url)
    page = seen.page
    assert page.locator("#filters").is_visible()
    assert visible_rows(page) == 9
    page.select_option("#f-o", "attention")
    assert visible_rows(page) == 4
    assert page.locator("table.cases tbody tr:visible .b-passed").count() == 0
    page.select_option("#f-o", "")
    page.select_option("#f-p", "novice_user")
    assert visible_rows(page) == 3
    page.select_option("#f-p", "")
    page.fill("#f-q", "database is down")  # only in the crashed case's transcript details
    expect(page.locator("details.case:visible")).to_have_count(1)  # after the debounce
    page.fill("#f-q", "")
    expect(page.locator("details.case[hidden]")).to_have_count(0)
    # Sorting by duration puts the rows in order of their ms column.
    page.locator("table.cases thead th", has_text="ms").first.click()
    cells = page.locator("table.cases tbody tr td:nth-child(7)").all_inner_texts()
    values = [float(c.replace(",", "")) for c in cells]
    assert values == sorted(values)
    assert seen.errors == []
    page.context.close()


def test_failure_transcript_opens(browser: Any, report: Report) -> None:
    from playwright.sync_api import expect

    seen = visit(browser, report.url)
    page = seen.page
    failure = page.locator('#failures details.case[data-o="error"]')
    assert failure.count() == 1
    assert not failure.locator(".transcript").is_visible()
    failure.locator("> summary").click()
    assert failure.locator(".transcript").is_visible()
    assert "the order database is down" in failure.inner_text()
    assert "My order 1043 is late, what now?" in failure.locator(".transcript").inner_text()
    assert failure.locator(".timeline").is_visible()
    # A row's link opens its case.
    tricky = next(line for line in report.lines if line["persona"] == "tricky_user")
    page.locator("table.cases a", has_text=tricky["case_id"]).click()
    opened = page.locator("details.case[open]", has_text=tricky["case_id"])
    # The page's script opens the case on the hash change: wait for it (up to 5 s), as a
    # loaded CI machine may run the handler after the click returns.
    expect(opened.locator(".transcript")).to_be_visible()
    assert SCRIPTED in opened.locator(".transcript").inner_text()
    assert seen.errors == []
    page.context.close()


def test_hostile_output_is_text(browser: Any, report: Report) -> None:
    seen = visit(browser, report.url)
    page = seen.page
    for case in page.locator('details.case[data-p="tricky_user"]').all():
        case.locator("> summary").click()
    text = page.locator("#failures").inner_text()
    assert '<script>alert("xss")</script><img src=x onerror="alert(2)">' in text
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 1  # the report's own
    page.wait_for_timeout(200)
    assert seen.dialogs == [] and seen.errors == []
    page.context.close()


def test_readable_without_javascript(browser: Any, report: Report) -> None:
    seen = visit(browser, report.url, javascript=False)
    page = seen.page
    assert {key: card(page, key) for key in expected_cards(report)} == expected_cards(report)
    assert not page.locator("#filters").is_visible()  # it needs the script: hidden without
    assert visible_rows(page) == 9
    failure = page.locator('#failures details.case[data-o="error"]')
    failure.locator("> summary").click()  # <details> opens without any script
    assert "the order database is down" in failure.inner_text()
    transcripts = page.locator("details.case")
    assert transcripts.count() == 9
    last = transcripts.last
    last.locator("> summary").click()
    assert SCRIPTED in last.locator(".transcript").inner_text()
    assert seen.requests == [report.url]
    page.context.close()
