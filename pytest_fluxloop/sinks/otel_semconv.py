"""The OpenTelemetry names the export uses, pinned to one semantic-conventions release.

:data:`SEMCONV_VERSION` is the release of the OpenTelemetry semantic conventions whose GenAI
span, attribute and event names these are, and the schema URL of the exporting tracer. It is
the last release that holds the GenAI conventions in the main semantic-conventions repository
(``docs/gen-ai/``; from 1.42.0 on they live in the separate GenAI conventions repository): a
backend reading ``schema_url`` knows exactly which names to expect. The ``fluxloop.*`` names
are this package's own.
"""

from __future__ import annotations

SEMCONV_VERSION = "1.41.1"
"""The OpenTelemetry semantic conventions the spans follow (the tracer's schema URL)."""

SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The OpenTelemetry GenAI instrumentations' switch for message content: ``true`` (or
``span_only`` / ``span_and_event``, its newer values) exports content; anything else, or
unset, exports none."""

# --- GenAI semantic conventions SEMCONV_VERSION --------------------------------------------

GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K = "gen_ai.request.top_k"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_SEED = "gen_ai.request.seed"
GEN_AI_REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_TOOL_DESCRIPTION = "gen_ai.tool.description"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
GEN_AI_EVALUATION_RESULT = "gen_ai.evaluation.result"
"""The event name of one evaluator's verdict."""
GEN_AI_EVALUATION_NAME = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"
ERROR_TYPE = "error.type"
ERROR_TYPE_OTHER = "_OTHER"
"""``error.type`` of a failure whose class is not known (the conventions' fallback)."""

INVOKE_AGENT = "invoke_agent"
EXECUTE_TOOL = "execute_tool"
CHAT = "chat"
TEXT_COMPLETION = "text_completion"
EMBEDDINGS = "embeddings"

# --- FluxLoop's own attributes -----------------------------------------------------------

FLUXLOOP_ROLE = "fluxloop.role"
FLUXLOOP_KIND = "fluxloop.kind"
FLUXLOOP_EXPERIMENT = "fluxloop.experiment"
FLUXLOOP_TRACE_ID = "fluxloop.trace_id"
FLUXLOOP_CASE_ID = "fluxloop.case_id"
FLUXLOOP_ITERATION = "fluxloop.iteration"
FLUXLOOP_PERSONA = "fluxloop.persona"
FLUXLOOP_STATUS = "fluxloop.status"
FLUXLOOP_ERROR_KIND = "fluxloop.error.kind"
FLUXLOOP_ERROR_MESSAGE = "fluxloop.error.message"
FLUXLOOP_ATTEMPTS = "fluxloop.attempts"
FLUXLOOP_SEED = "fluxloop.seed"
FLUXLOOP_WORKER = "fluxloop.worker"
FLUXLOOP_TEST_OUTCOME = "fluxloop.test_outcome"
FLUXLOOP_TURN = "fluxloop.turn"
FLUXLOOP_TURN_COUNT = "fluxloop.multi_turn.turn_count"
FLUXLOOP_TERMINATION_REASON = "fluxloop.multi_turn.termination_reason"
FLUXLOOP_OBSERVATIONS_DROPPED = "fluxloop.observations_dropped"
FLUXLOOP_USAGE = "fluxloop.usage"
"""Prefix of token totals on parent spans (``fluxloop.usage.agent.input_tokens`` on the case,
``fluxloop.usage.input_tokens`` on a turn): never ``gen_ai.usage.*``, which only LLM-call
spans carry, so a backend summing those counts each token once."""
FLUXLOOP_EVALUATION_VERDICT = "fluxloop.evaluation.verdict"
FLUXLOOP_EVALUATION_SCORE = "fluxloop.evaluation.score"
FLUXLOOP_EVALUATION_THRESHOLD = "fluxloop.evaluation.threshold"
FLUXLOOP_EVALUATION_TYPE = "fluxloop.evaluation.type"
FLUXLOOP_EVALUATION_MODEL = "fluxloop.evaluation.model"
FLUXLOOP_GENERATION_STATUS = "fluxloop.generation.status"
FLUXLOOP_SPAN_INCOMPLETE = "fluxloop.span.incomplete"
FLUXLOOP_OBSERVATION_TYPE = "fluxloop.observation.type"
FLUXLOOP_SUPERVISOR_DECISION = "fluxloop.supervisor.decision"
FLUXLOOP_SUPERVISOR_MODEL = "fluxloop.supervisor.model"
FLUXLOOP_SUPERVISOR_MESSAGE = "fluxloop.supervisor.message"
FLUXLOOP_INPUT = "fluxloop.input"
FLUXLOOP_OUTPUT = "fluxloop.output"
FLUXLOOP_METADATA = "fluxloop.metadata"

SUPERVISOR_DECISION = "supervisor_decision"
"""The span name of a supervisor's decision (and its observation type)."""
