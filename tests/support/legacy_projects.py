"""Projects laid out the way the earlier FluxLoop tool (``fluxloop-cli`` 0.2.x) made them.

The keys, shapes and layout follow what those releases generate (a FluxLoop root folder with
its own ``.env``, one folder per project with ``configs/`` holding four files, a sample
agent under ``examples/`` using the earlier SDK's decorators, and an inputs file in the
earlier generator's shape); the text is ours. ``STYLES`` names the three generations of
templates that differ in shape: 0.2.0 (mapping-style variation strategies, a root
``.env``), 0.2.21-0.2.29 (the long evaluation.yaml with report/advanced blocks, indented as
those releases wrote it) and 0.2.36 (the metrics/efficiency evaluation layout, a
multi_turn block and the pytest smoke test).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

STYLES = ("0.2.0", "0.2.21", "0.2.36")

ROOT_ENV = """\
# FluxLoop root settings (shared by every project below this folder)
FLUXLOOP_COLLECTOR_URL=http://localhost:8000
FLUXLOOP_ENABLED=true
FLUXLOOP_RECORD_ARGS=false
FLUXLOOP_SERVICE_NAME=shop-agent
LEGACY_ROOT_SETTING=from-root
SHARED_SETTING=root-value
"""

PROJECT_ENV = """\
# Project settings
FLUXLOOP_RECORDING_FILE=
OPENAI_API_KEY=
SHARED_SETTING=project-value
"""

PROJECT_YAML = """\
name: shop
description: Shop assistant simulations
version: 1.0.0
source_root: ""
collector_url: null
collector_api_key: null
tags:
  - simulation
metadata:
  team: support
  environment: local
{service_context}"""

INPUT_YAML = """\
personas:
  - name: new_customer
    description: Someone buying for the first time
    characteristics:
      - Writes short questions
      - Unsure about shop terms
    language: en
    expertise_level: novice
    goals:
      - Place a first order
  - name: returning_customer
    description: A regular who knows the shop
    characteristics:
      - Precise about order numbers
    language: en
    expertise_level: expert
    goals:
      - Change an existing order
base_inputs:
  - input: "How do I track my parcel?"
    expected_intent: tracking
  - input: "Can I change my delivery address?"
    expected_intent: address
variation_strategies:
{strategies}
variation_count: 2
variation_temperature: 0.7
inputs_file: inputs/generated.yaml
input_generation:
  mode: llm
  llm:
    enabled: true
    provider: openai
    model: gpt-4o-mini
    api_key: null
"""

STRATEGIES = {
    "0.2.0": "  - type: rephrase\n  - type: verbose\n",
    "0.2.21": "  - rephrase\n  - verbose\n",
    "0.2.36": "  - rephrase\n  - error_prone\n",
}

SIMULATION_YAML = """\
name: shop_experiment
{description}iterations: {iterations}
parallel_runs: 1
run_delay_seconds: 0
seed: 42
runner:
  module_path: "examples.support_agent"
  function_name: "run"
  target: "examples.support_agent:run"
  working_directory: .
  python_path:
  timeout_seconds: 60
  max_retries: 3
replay_args:
  enabled: false
  recording_file: recordings/args_recording.jsonl
  override_param_path: data.content
{multi_turn}output_directory: experiments
save_traces: true
save_aggregated_metrics: true
"""

MULTI_TURN_BLOCK = """\
multi_turn:
  enabled: false
  max_turns: 4
  auto_approve_tools: true
  persona_override: null
  supervisor:
    provider: mock
    model: gpt-4o-mini
    system_prompt: |
      You play the customer. Continue until the question is answered.
    metadata:
      scripted_questions:
        - "And how long does it take?"
      mock_decision: terminate
      mock_reason: script_complete
      mock_closing: "Thanks, that is all."
"""

EVALUATION_0_2_0 = """\
evaluators:
  - name: answered
    type: rule_based
    enabled: true
    rules:
      - check: output_not_empty
        weight: 1.0
  - name: helpfulness
    type: llm_judge
    enabled: false
    model: gpt-4o-mini
    prompt_template: |
      Rate the answer from 1 to 10.
      Question: {input}
      Answer: {output}
"""

# 0.2.21 - 0.2.29 wrote the whole document indented; it is still one valid mapping.
EVALUATION_0_2_21 = textwrap.indent(
    """\
evaluation_goal:
  text: |
    Answers are correct, short and polite.
evaluators:
  - name: answered
    type: rule_based
    enabled: true
    weight: 0.3
    rules:
      - check: output_not_empty
  - name: budget
    type: rule_based
    enabled: true
    weight: 0.2
    rules:
      - check: latency_under
        budget_ms: 1500
      - check: token_usage_under
        max_total_tokens: 4000
        max_prompt_tokens: 3000
        max_completion_tokens: 1000
  - name: wording
    type: rule_based
    enabled: true
    weight: 0.2
    rules:
      - check: contains
        target: output
        keywords: ["order", "parcel"]
        case_sensitive: false
      - check: matches_regex
        target: output
        pattern: "^[A-Z]"
        flags: ["IGNORECASE"]
      - check: similarity
        target: output
        expected_path: metadata.expected
        method: difflib
        min_score: 0.4
  - name: judge
    type: llm_judge
    enabled: false
    weight: 0.3
    model: gpt-4o-mini
    model_parameters:
      reasoning:
        effort: low
    prompt_template: |
      Persona: {persona}
      Question: {input}
      Answer: {output}
      Give "Score: N/10" and one reason line.
    max_score: 10
    parser: first_number_1_10
    metadata:
      sample_response: "Score: 8/10"
aggregate:
  method: weighted_sum
  threshold: 0.7
  by_persona: true
limits:
  sample_rate: 0.5
  max_llm_calls: 20
  timeout_seconds: 60
  cache: evaluation_cache.jsonl
success_criteria:
  performance:
    all_traces_successful: true
    avg_response_time:
      enabled: true
      threshold_ms: 2000
    error_rate:
      enabled: false
      threshold_percent: 5
  quality:
    judge: false
  functionality:
    tool_calling:
      enabled: false
additional_analysis:
  persona:
    enabled: false
    focus_personas: []
  performance:
    detect_outliers: false
    trend_analysis: false
  failures:
    enabled: false
    categorize_causes: false
  comparison:
    enabled: false
    baseline_path: ""
report:
  style: standard
  sections:
    executive_summary: true
    key_metrics: true
    detailed_results: true
    statistical_analysis: false
    failure_cases: true
    success_examples: false
    recommendations: true
    action_items: true
  visualizations:
    charts_and_graphs: true
    tables: true
    interactive: false
  tone: balanced
  output: both
  template_path: null
advanced:
  statistical_tests:
    enabled: false
    significance_level: 0.05
    confidence_interval: 0.95
  outliers:
    detection: true
    handling: analyze_separately
  alerts:
    enabled: false
    conditions:
      - metric: error_rate
        threshold: 10
        operator: ">"
""",
    "    ",
)

EVALUATION_0_2_36 = """\
evaluation_goal:
  text: "Answers are correct, short and polite."
metrics:
  task_completion:
    enabled: true
    thresholds: {good: 80, fair: 60}
  hallucination:
    enabled: true
    thresholds: {good: 5, fair: 15}
  relevance:
    enabled: true
    thresholds: {good: 90, fair: 80}
  tool_usage_appropriateness:
    enabled: false
    thresholds: {good: 90, fair: 80}
  user_satisfaction:
    enabled: true
    thresholds: {good: 70, fair: 50}
  clarity:
    enabled: true
    thresholds: {good: 90, fair: 80}
  persona_consistency:
    enabled: true
    thresholds: {good: 85, fair: 70}
efficiency:
  output_tokens: {enabled: true, outlier_mode: statistical, std_multiplier: 2}
  conversation_depth: {enabled: true, outlier_mode: statistical, std_multiplier: 2}
  latency: {enabled: true, outlier_mode: statistical, std_multiplier: 2}
  persona_gap:
    enabled: true
output:
  language: "en"
  summary_file: "summary.md"
  deep_analysis_file: "deep_analysis.md"
  templates:
    summary: "template.txt"
    deep_analysis: "template.txt"
advanced:
  llm_judge:
    model: "gpt-4o-mini"
    temperature: 0.0
  llm_concurrency: 2
  llm_retries: 3
  filters:
    personas: []
    include_trace_ids: []
    exclude_trace_ids: []
  overall_success:
    use_default_rules: true
"""

EVALUATIONS = {"0.2.0": EVALUATION_0_2_0, "0.2.21": EVALUATION_0_2_21, "0.2.36": EVALUATION_0_2_36}

# The sample agent: the earlier SDK's decorators, unchanged calling forms.
SUPPORT_AGENT = '''\
"""A shop assistant instrumented with the earlier FluxLoop SDK names."""

import fluxloop


@fluxloop.agent(name="ShopAgent")
def run(input_text: str) -> str:
    facts = classify(input_text)
    return compose(facts)


@fluxloop.tool(description="Work out what the customer wants")
def classify(text: str) -> dict:
    lowered = text.lower()
    topic = "tracking" if ("track" in lowered or "parcel" in lowered) else "other"
    if "address" in lowered:
        topic = "address"
    return {"topic": topic, "words": len(text.split())}


@fluxloop.prompt(model="house-model")
def compose(facts: dict) -> str:
    replies = {
        "tracking": "Your parcel can be tracked from the order page.",
        "address": "You can change the delivery address until the order ships.",
        "other": "Let me look into your order.",
    }
    return replies[facts["topic"]]


if __name__ == "__main__":
    with fluxloop.instrument("manual_check") as trace:
        print(run("Where is my parcel?"))
    print("observations:", len(trace.observations))
'''

SMOKE_TEST = '''\
"""Smoke test in the shape the 0.2.36 pytest template uses."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SIMULATION_CONFIG = PROJECT_ROOT / "configs/simulation.yaml"


def test_fluxloop_smoke(fluxloop_runner):
    result = fluxloop_runner(
        project_root=PROJECT_ROOT,
        simulation_config=SIMULATION_CONFIG,
        env={"PYTHONPATH": str(PROJECT_ROOT)},
    )
    result.require_success(label="fluxloop smoke")
'''

# What the earlier generator wrote: provenance at the top, persona inside each metadata.
GENERATED_INPUTS = """\
generated_at: 2025-10-14T09:30:12.123456
metadata:
  config_name: shop_experiment
  total_base_inputs: 2
  total_personas: 2
  strategies: [rephrase, verbose]
  limit: 3
  generation_mode: llm
  llm_provider: openai
  llm_model: gpt-4o-mini
inputs:
  - input: "Where can I follow my parcel?"
    metadata:
      strategy: rephrase
      base_index: 0
      persona: new_customer
      persona_description: Someone buying for the first time
      model: gpt-4o-mini
      provider: openai
      prompt_hash: 3f2a9c
      prompt: "Rephrase the question for the persona"
  - input: "Hello, I would like to know whether my order can go to another address."
    metadata:
      strategy: verbose
      base_index: 1
      persona: returning_customer
      persona_description: A regular who knows the shop
      model: gpt-4o-mini
      provider: openai
      prompt_hash: 8b1d44
      prompt: "Make the question longer"
  - input: "track parcel pls"
    metadata:
      strategy: rephrase
      base_index: 0
      persona: returning_customer
      persona_description: A regular who knows the shop
      model: gpt-4o-mini
      provider: openai
      prompt_hash: 77aa01
      prompt: "Rephrase the question for the persona"
"""


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def make_legacy_project(
    base: Path,
    style: str,
    *,
    iterations: int = 1,
    generated_inputs: bool = False,
    description: bool = True,
) -> Path:
    """Lay out ``base/fluxloop/shop`` as the earlier tool's release ``style`` did; returns
    the project folder (the one holding ``configs/``)."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; one of {STYLES}")
    root = base / "fluxloop"
    project = root / "shop"
    write(root / ".env", ROOT_ENV)
    write(project / ".env", PROJECT_ENV)
    context = '  service_context: "An online shop"\n' if style == "0.2.36" else ""
    write(project / "configs" / "project.yaml", PROJECT_YAML.format(service_context=context))
    write(project / "configs" / "input.yaml", INPUT_YAML.format(strategies=STRATEGIES[style]))
    write(
        project / "configs" / "simulation.yaml",
        SIMULATION_YAML.format(
            description="description: Shop assistant experiment\n" if description else "",
            iterations=iterations,
            multi_turn=MULTI_TURN_BLOCK if style == "0.2.36" else "",
        ),
    )
    write(project / "configs" / "evaluation.yaml", EVALUATIONS[style])
    write(project / "examples" / "__init__.py", "")
    write(project / "examples" / "support_agent.py", SUPPORT_AGENT)
    if style == "0.2.36":
        write(project / "tests" / "test_fluxloop_smoke.py", SMOKE_TEST)
    if generated_inputs:
        write(project / "inputs" / "generated.yaml", GENERATED_INPUTS)
    return project


# --------------------------------------------------------------------------- the tutorial

TUTORIAL_SIMULATION = """\
name: customer_support_tutorial
iterations: 1
seed: 7
runner:
  module_path: "support_bot.graph"
  function_name: "run_turn"
  target: "support_bot.graph:run_turn"
  working_directory: .
  timeout_seconds: 60
  max_retries: 1
  args:
    part: part4
    provider: offline
    overwrite_db: false
    thread_label: tutorial
multi_turn:
  enabled: false
  max_turns: 3
  supervisor:
    provider: mock
    metadata:
      scripted_questions:
        - "Can I move it to Friday instead?"
      mock_closing: "Great, thank you."
output_directory: experiments
"""

TUTORIAL_INPUT = """\
personas:
  - name: frequent_flyer
    description: Travels every week and wants quick changes
    characteristics: [impatient, knows the booking code]
    goals: [rebook a flight]
base_inputs:
  - input: "I need to change my flight to Zurich."
inputs_file: inputs/generated.yaml
"""

# A graph-style agent in the tutorial's manner: reads the earlier runner's parameters.
TUTORIAL_AGENT = '''\
"""Customer-support bot in the shape of the LangGraph tutorial's entry point."""

import fluxloop


@fluxloop.agent(name="support_graph")
def run_turn(
    user_message,
    persona=None,
    messages=None,
    part: str = "part1",
    provider: str = "openai",
    overwrite_db: bool = True,
    run_iteration: int = 0,
):
    turn = sum(1 for m in messages or [] if m["role"] == "user")
    who = persona.name if persona is not None else "anon"
    traits = ", ".join(persona.characteristics) if persona is not None else ""
    return (
        f"[{part}/{provider}/db={'new' if overwrite_db else 'kept'}] "
        f"{who} ({traits}) turn {turn}: booked change for '{user_message}'"
    )
'''

TUTORIAL_GENERATED = """\
generated_at: "2025-11-02T12:00:00"
metadata:
  config_name: customer_support_tutorial
  generation_mode: llm
inputs:
  - input: "Please move my Zurich flight to next week."
    metadata:
      strategy: rephrase
      base_index: 0
      persona: frequent_flyer
      persona_description: Travels every week and wants quick changes
  - input: "change flight zurich asap"
    metadata:
      strategy: error_prone
      base_index: 0
      persona: frequent_flyer
      persona_description: Travels every week and wants quick changes
"""


def make_tutorial_project(base: Path) -> Path:
    """A customer-support tutorial project: committed configs (with ``runner.args``, no
    ``description``) and a generated inputs file; returns the project folder."""
    project = base / "customer-support"
    write(project / "configs" / "simulation.yaml", TUTORIAL_SIMULATION)
    write(project / "configs" / "input.yaml", TUTORIAL_INPUT)
    write(project / "inputs" / "generated.yaml", TUTORIAL_GENERATED)
    write(project / "support_bot" / "__init__.py", "")
    write(project / "support_bot" / "graph.py", TUTORIAL_AGENT)
    return project
