"""Lone surrogates (issue 8, item 11).

In an input file or ``input.yaml`` (only an escape such as ``"\\ud800"`` can put one there),
a lone surrogate is refused with the file, line and key of every occurrence and the fix;
an escaped *pair* is the character it spells. In agent output or metadata it becomes U+FFFD
(files are UTF-8), and the record says where in ``metadata.replaced_invalid_unicode``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cli_helpers import describe, run_cli
from support.engine_helpers import isolated_imports, make_case, target_of
from support.experiment_helpers import only_experiment_dir, read_jsonl
from support.plugin_helpers import Project

from pytest_fluxloop.config.loader import Overrides, load_config
from pytest_fluxloop.engine import CaseExecutor, RunSettings
from pytest_fluxloop.errors import ConfigError
from pytest_fluxloop.jsonsafe import REPLACED_INVALID_UNICODE, to_jsonable
from pytest_fluxloop.run import Experiment

SIMULATION = 'name: t\ndescription: d\nrunner:\n  target: "agent:run"\n'
AGENT = "def run(input_text):\n    return 'ok: ' + input_text\n"


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_imports():
        yield


def _project(root: Path, *, inputs: str | None = None, input_yaml: str | None = None) -> Path:
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "simulation.yaml").write_text(SIMULATION, encoding="utf-8")
    (root / "agent.py").write_text(AGENT, encoding="utf-8")
    if inputs is not None:
        (root / "inputs").mkdir(exist_ok=True)
        (root / "inputs" / "generated.yaml").write_text(inputs, encoding="utf-8")
    if input_yaml is not None:
        (root / "configs" / "input.yaml").write_text(input_yaml, encoding="utf-8")
    return root / "configs" / "simulation.yaml"


def _load_error(config: Path) -> str:
    with pytest.raises(ConfigError) as info:
        Experiment.load(config)
    message = str(info.value)
    message.encode("utf-8")  # printable: no raw surrogate in the message itself
    return message


# --------------------------------------------------------------------------- inputs


def test_lone_surrogate_in_inputs_file_names_file_line_key_and_fix(tmp_path: Path) -> None:
    config = _project(
        tmp_path,
        inputs='inputs:\n  - input: "fine"\n  - input: "hi \\ud800 there"\n',
    )
    message = _load_error(config)
    inputs_file = tmp_path / "inputs" / "generated.yaml"
    assert f"{inputs_file}:3: inputs[1].input: lone surrogate U+D800 at character 4" in message
    assert "\\ud800" in message  # shown as the escape that made it
    assert "Write the character itself" in message
    assert "unable to parse raw data" not in message


def test_every_lone_surrogate_is_listed_at_once(tmp_path: Path) -> None:
    config = _project(
        tmp_path,
        inputs=(
            "inputs:\n"
            '  - input: "a \\udc00"\n'
            '    metadata: {note: "\\ud801", "k\\udfff": 1}\n'
            '  - input: "b \\U0000d802"\n'
        ),
    )
    message = _load_error(config)
    assert "4 text(s) hold a lone surrogate" in message
    for place in (
        ":2: inputs[0].input",
        ":3: inputs[0].metadata.note",
        ":3: the key inputs[0].metadata.k\\udfff",
        ":4: inputs[1].input",
    ):
        assert place in message, message


def test_lone_surrogate_in_base_inputs_names_input_yaml(tmp_path: Path) -> None:
    config = _project(
        tmp_path, input_yaml='base_inputs:\n  - input: "ok"\n  - input: "bad \\udcff"\n'
    )
    message = _load_error(config)
    where = tmp_path / "configs" / "input.yaml"
    assert f"{where}:3: base_inputs[1].input: lone surrogate U+DCFF" in message


def test_escaped_surrogate_pair_is_the_character(tmp_path: Path) -> None:
    config = _project(tmp_path, inputs='inputs:\n  - input: "smile \\ud83d\\ude00"\n')
    assert [case.input for case in Experiment.load(config).cases] == ["smile 😀"]


def test_lone_surrogate_in_an_override_says_what_and_how(tmp_path: Path) -> None:
    config = _project(tmp_path, inputs='inputs:\n  - input: "x"\n')
    with pytest.raises(ConfigError) as info:
        load_config(config, Overrides(experiment_name="run \udcff"))
    assert "--experiment-name" in str(info.value) and "lone surrogate" in str(info.value)


@pytest.mark.slow
def test_cli_reports_it_without_a_traceback(tmp_path: Path) -> None:
    _project(tmp_path, inputs='inputs:\n  - input: "hi \\ud800"\n')
    proc = run_cli("run", "experiment", "-y", cwd=tmp_path)
    assert proc.returncode == 4, describe(proc)
    assert "inputs[0].input: lone surrogate U+D800" in proc.stderr, describe(proc)
    assert "Traceback" not in proc.stderr and "[INFO]" not in proc.stdout


def test_plugin_reports_it_as_a_usage_error(pytester: pytest.Pytester) -> None:
    project = Project(pytester).setup(inputs='inputs:\n  - input: "hi \\ud800"\n')
    result = pytester.runpytest("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*inputs[[]0[]].input: lone surrogate U+D800*"])


# --------------------------------------------------------------------------- records


def test_to_jsonable_lists_what_it_replaced() -> None:
    replaced: list[str] = []
    data = {"a": ["ok", "bad \udcff"], "k\ud800": {"x": "\udfff"}, "fine": "é"}
    out = to_jsonable(data, replaced=replaced, path="output")
    assert out == {"a": ["ok", "bad \ufffd"], "k\ufffd": {"x": "\ufffd"}, "fine": "é"}
    assert replaced == ["output.a[1]", "output.k\ufffd (key)", "output.k\ufffd.x"]
    assert to_jsonable("clean", replaced=replaced) == "clean" and len(replaced) == 3


def _record(output: Any, **case: Any) -> dict[str, Any]:
    def run(input_text: str) -> Any:
        return output

    executor = CaseExecutor(target_of(run), RunSettings(max_retries=0, timeout_seconds=10.0))
    record = executor.run(make_case(**case)).record
    data: dict[str, Any] = json.loads(record.model_dump_json())
    return data


def test_record_says_where_output_and_metadata_lost_a_surrogate() -> None:
    data = _record({"text": "bad \udcff decode"}, metadata={"source": "x\ud800"})
    assert data["output"] == {"text": "bad \ufffd decode"}
    assert data["metadata"]["source"] == "x\ufffd"
    assert data["metadata"][REPLACED_INVALID_UNICODE] == {
        "count": 2,
        "paths": ["output.text", "metadata.source"],
    }


def test_clean_record_has_no_note() -> None:
    data = _record("all fine \ufffd is a real character here")
    assert REPLACED_INVALID_UNICODE not in data["metadata"]


def test_note_reaches_traces_jsonl(pytester: pytest.Pytester) -> None:
    agent = "def run(input_text, persona=None):\n    return 'bad \\udcff'\n"
    project = Project(pytester).setup(agent=agent)
    result = pytester.runpytest("--fluxloop-config", project.config, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    traces = read_jsonl(only_experiment_dir(project.root) / "traces.jsonl")
    assert {t["output"] for t in traces} == {"bad \ufffd"}
    assert all(
        t["metadata"][REPLACED_INVALID_UNICODE] == {"count": 1, "paths": ["output"]} for t in traces
    )
