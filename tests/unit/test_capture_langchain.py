"""LangChain / LangGraph capture: real runnables, fake chat models, real LangGraph graphs.

No test passes ``callbacks=``: the handler is attached by ``case_capture`` alone.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import operator
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypedDict

import openai
import pytest
from langchain_core.callbacks import (
    BaseCallbackHandler,
    CallbackManagerForLLMRun,
    CallbackManagerForRetrieverRun,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.documents import Document
from langchain_core.language_models import (
    BaseChatModel,
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from support.llm_server import CHAT, FakeLLMServer, chat_completion, llm_server

import fluxloop
from pytest_fluxloop.integrations import case_capture, langchain_handler, uninstall
from pytest_fluxloop.integrations import langchain as lc
from pytest_fluxloop.records import Observation
from pytest_fluxloop.sdk.context import (
    CaptureSettings,
    TraceContext,
    framework_generation,
    trace_context,
)

__all__ = ["llm_server"]  # the fixture, imported for pytest

HIDDEN = ["langsmith:hidden"]


@pytest.fixture
def case() -> Callable[..., _Case]:
    """``with case() as ctx:`` a FluxLoop case's trace with LangChain capture on (and the
    provider capture off unless asked for: these tests are about LangChain's own runs)."""

    def open_case(**capture: Any) -> _Case:
        return _Case(CaptureSettings(**{"llm": False, **capture}))

    return open_case


class _Case:
    def __init__(self, capture: CaptureSettings) -> None:
        self.capture = capture

    def __enter__(self) -> TraceContext:
        self._trace = trace_context("t", capture=self.capture)
        ctx = self._trace.__enter__()
        self._capture = case_capture(ctx)
        self.notices = self._capture.__enter__()
        return ctx

    def __exit__(self, *exc: Any) -> None:
        self._capture.__exit__(*exc)
        self._trace.__exit__(*exc)


def starts(ctx: TraceContext, kind: str | None = None) -> list[Observation]:
    return [o for o in ctx.observations if o.type == "span_start" and kind in (None, o.kind)]


def ends(ctx: TraceContext, kind: str | None = None) -> list[Observation]:
    return [o for o in ctx.observations if o.type == "span_end" and kind in (None, o.kind)]


def named(observations: list[Observation], name: str) -> Observation:
    found = [o for o in observations if o.name == name]
    assert len(found) == 1, [o.name for o in observations]
    return found[0]


def chat(*replies: str, **message: Any) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=r, **message) for r in replies]))


class Shelf(BaseRetriever):
    """A small retriever: every document whose text contains the query."""

    docs: list[str]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [Document(page_content=d, metadata={"i": i}) for i, d in enumerate(self.docs)]


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


# --------------------------------------------------------------------------- runs and nesting


def test_chain_tool_and_retriever_nest_under_the_agent_span(case: Any) -> None:
    shelf = Shelf(docs=["Paris is in France"])

    def plan(question: str) -> dict[str, Any]:
        docs = shelf.invoke(question)
        return {
            "docs": [d.page_content for d in docs],
            "weather": weather.invoke({"city": "Paris"}),
        }

    pipeline = RunnableLambda(plan).with_config(run_name="pipeline")

    @fluxloop.agent()
    def agent(question: str) -> Any:
        return pipeline.invoke(question)

    with case() as ctx:
        result = agent("Paris?")

    assert result == {"docs": ["Paris is in France"], "weather": "sunny in Paris"}
    agent_span = named(starts(ctx, "agent"), "agent")
    chain = named(starts(ctx, "chain"), "pipeline")
    retriever = named(starts(ctx, "retriever"), "Shelf")
    tool_run = named(starts(ctx, "tool"), "weather")
    assert chain.parent_id == agent_span.observation_id
    assert retriever.parent_id == tool_run.parent_id == chain.observation_id
    assert retriever.input == {"query": "Paris?"}
    assert tool_run.input == {"city": "Paris"}
    assert chain.input == "Paris?"
    assert chain.metadata["framework"] == "langchain"
    end = named(ends(ctx, "retriever"), "Shelf")
    assert end.observation_id == retriever.observation_id
    assert end.output == [{"page_content": "Paris is in France", "metadata": {"i": 0}}]
    assert named(ends(ctx, "tool"), "weather").output == "sunny in Paris"
    chain_end = named(ends(ctx, "chain"), "pipeline")
    assert chain_end.output == result and chain_end.duration_ms is not None
    assert all(o.role == "agent" for o in ctx.observations)


def test_chat_model_is_one_generation_with_model_usage_and_output(case: Any) -> None:
    model = chat(
        "hello there",
        usage_metadata={
            "input_tokens": 12,
            "output_tokens": 4,
            "total_tokens": 16,
            "input_token_details": {"cache_read": 3},
            "output_token_details": {"reasoning": 1},
        },
        response_metadata={"model_name": "fake-large", "finish_reason": "stop"},
    )
    with case() as ctx:
        reply = model.invoke([HumanMessage("hi")])

    assert reply.content == "hello there"
    (start,) = starts(ctx)
    (end,) = ends(ctx)
    assert start.kind == end.kind == "generation"
    assert start.name == "GenericFakeChatModel"
    assert start.parent_id is None
    assert start.input == {"messages": [{"role": "user", "content": "hi"}]}
    assert start.metadata["operation"] == "chat"
    assert end.output == "hello there"
    assert end.metadata["model"] == "fake-large"
    assert end.metadata["finish_reason"] == "stop"
    assert end.metadata["usage"] == {
        "input_tokens": 12,
        "output_tokens": 4,
        "cached_tokens": 3,
        "reasoning_tokens": 1,
        "total_tokens": 16,
    }
    assert end.metadata["usage_source"] == "response"


def test_missing_usage_is_none_not_zero(case: Any) -> None:
    with case() as ctx:
        FakeListChatModel(responses=["ok"]).invoke("hi")
    (end,) = ends(ctx, "generation")
    assert end.metadata["usage"] is None
    assert end.metadata["usage_source"] == "missing"


def test_llm_run_is_a_completion_generation(case: Any) -> None:
    with case() as ctx:
        FakeListLLM(responses=["a poem"]).invoke("write a poem")
    (start,) = starts(ctx, "generation")
    (end,) = ends(ctx, "generation")
    assert start.metadata["operation"] == "completion"
    assert start.input == {"prompt": "write a poem"}
    assert end.output == "a poem"


def test_tool_calls_are_part_of_the_generation_output(case: Any) -> None:
    call = {"name": "weather", "args": {"city": "Oslo"}, "id": "call_1", "type": "tool_call"}
    with case() as ctx:
        chat("", tool_calls=[call]).invoke("weather?")
    (end,) = ends(ctx, "generation")
    assert end.output == {"content": "", "tool_calls": [call]}


def test_errors_end_the_span_and_still_raise(case: Any) -> None:
    def boom(_: Any) -> None:
        raise ValueError("bad input")

    with case() as ctx, pytest.raises(ValueError, match="bad input"):
        RunnableLambda(boom).invoke(1)
    (end,) = ends(ctx, "chain")
    assert end.error == "ValueError: bad input" and end.output is None


def test_a_streamed_chain_records_its_input_at_its_end(case: Any) -> None:
    pipeline = (RunnableLambda(lambda q: q.upper()) | chat("a b")).with_config(run_name="flow")
    with case() as ctx:
        assert [c.content for c in pipeline.stream("q")] == ["a", " ", "b"]
    end = named(ends(ctx, "chain"), "flow")
    assert end.input == "q"
    assert named(starts(ctx, "generation"), "GenericFakeChatModel").input == {
        "messages": [{"role": "user", "content": "Q"}]
    }
    assert named(ends(ctx, "generation"), "GenericFakeChatModel").output == "a b"


def test_content_off_keeps_structure_without_inputs_or_outputs(case: Any) -> None:
    with case(content=False) as ctx:
        (RunnableLambda(lambda q: q) | chat("secret reply")).invoke("secret question")
    assert starts(ctx, "chain") and starts(ctx, "generation")
    for obs in ctx.observations:
        assert obs.input is None and obs.output is None
    (end,) = ends(ctx, "generation")
    assert end.metadata["status"] == "ok"


def test_callbacks_passed_by_the_user_still_work_and_nothing_is_doubled(case: Any) -> None:
    class Counter(BaseCallbackHandler):
        chains = 0

        def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
            Counter.chains += 1

    inner = RunnableLambda(lambda x: x + 1).with_config(run_name="inner")
    outer = RunnableLambda(lambda x: inner.invoke(x) * 2).with_config(run_name="outer")
    with case() as ctx:
        assert outer.invoke(1, config={"callbacks": [Counter()]}) == 4
    assert Counter.chains == 2
    assert [o.name for o in starts(ctx)] == ["outer", "inner"]


# --------------------------------------------------------------------------- LangGraph


class State(TypedDict):
    messages: Annotated[list[BaseMessage], operator.add]


def two_node_graph(model: BaseChatModel) -> Any:
    def think(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    async def athink(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def review(state: State) -> dict[str, Any]:
        return {"messages": [AIMessage("reviewed")]}

    graph = StateGraph(State)
    graph.add_node("think", think)
    graph.add_node("review", review)
    graph.add_edge(START, "think")
    graph.add_edge("think", "review")
    graph.add_edge("review", END)
    agraph = StateGraph(State)
    agraph.add_node("think", athink)
    agraph.add_node("review", review)
    agraph.add_edge(START, "think")
    agraph.add_edge("think", "review")
    agraph.add_edge("review", END)
    return graph.compile(), agraph.compile()


def assert_graph_recorded(ctx: TraceContext) -> None:
    graph = named(starts(ctx, "chain"), "LangGraph")
    think = named(starts(ctx, "chain"), "think")
    review = named(starts(ctx, "chain"), "review")
    (generation,) = starts(ctx, "generation")
    assert think.parent_id == review.parent_id == graph.observation_id
    assert (think.metadata["langgraph_node"], think.metadata["langgraph_step"]) == ("think", 1)
    assert (review.metadata["langgraph_node"], review.metadata["langgraph_step"]) == ("review", 2)
    assert generation.parent_id == think.observation_id
    assert generation.metadata["langgraph_node"] == "think"
    assert named(ends(ctx, "chain"), "review").output == {
        "messages": [{"role": "assistant", "content": "reviewed"}]
    }
    (end,) = ends(ctx, "generation")
    assert end.output == "thought" and end.metadata["usage"]["total_tokens"] == 7
    # every span ended, with its own id
    assert sorted(o.observation_id or "" for o in starts(ctx)) == sorted(
        o.observation_id or "" for o in ends(ctx)
    )


USAGE = {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}


def test_langgraph_nodes_are_chains_with_node_and_step(case: Any) -> None:
    graph, _ = two_node_graph(chat("thought", usage_metadata=USAGE))
    with case() as ctx:
        result = graph.invoke({"messages": [HumanMessage("go")]})
    assert [m.content for m in result["messages"]] == ["go", "thought", "reviewed"]
    assert_graph_recorded(ctx)


def test_langgraph_async_and_astream(case: Any) -> None:
    _, agraph = two_node_graph(chat("thought", usage_metadata=USAGE))

    async def run() -> list[Any]:
        return [chunk async for chunk in agraph.astream({"messages": [HumanMessage("go")]})]

    with case() as ctx:
        chunks = asyncio.run(run())
    assert [next(iter(c)) for c in chunks] == ["think", "review"]
    assert_graph_recorded(ctx)


def test_async_chat_model_stream_and_framework_flag_released(case: Any) -> None:
    model = chat("one two three", "plain")
    seen: list[Any] = []

    async def run() -> None:
        async for _ in model.astream("hi"):
            seen.append(bool(framework_generation.get()))
        await model.ainvoke("again")  # LangChain ends this run from another task
        seen.append(bool(framework_generation.get()))

    with case() as ctx:
        asyncio.run(run())
    stream_end, plain_end = ends(ctx, "generation")
    assert stream_end.output == "one two three"
    assert stream_end.metadata["stream"] is True and "ttft_ms" in stream_end.metadata
    assert plain_end.output == "plain" and plain_end.metadata["stream"] is False
    assert seen[-1] is False  # nothing left claiming a model run after it ended
    assert framework_generation.get() is None


def test_custom_events_are_events_of_their_run(case: Any) -> None:
    def sync_step(x: int) -> int:
        dispatch_custom_event("progress", {"done": x})
        return x

    async def async_step(x: int) -> int:
        await adispatch_custom_event("checkpoint", {"at": x})
        return x

    with case() as ctx:
        RunnableLambda(sync_step).invoke(1)
        asyncio.run(RunnableLambda(async_step).ainvoke(2))
    progress = named([o for o in ctx.observations if o.type == "event"], "progress")
    checkpoint = named([o for o in ctx.observations if o.type == "event"], "checkpoint")
    assert progress.kind == checkpoint.kind == "event"
    assert progress.parent_id == named(starts(ctx), "sync_step").observation_id
    assert checkpoint.parent_id == named(starts(ctx), "async_step").observation_id
    assert progress.metadata["data"] == {"done": 1}
    assert checkpoint.metadata["data"] == {"at": 2}


# --------------------------------------------------------------------------- hidden runs


def hidden_pipeline() -> Any:
    model = chat("inside")

    def internal(x: str) -> str:
        dispatch_custom_event("note", {})
        return str(model.invoke(x).content)

    hidden = RunnableLambda(internal).with_config(run_name="internal", tags=HIDDEN)
    return RunnableLambda(lambda x: hidden.invoke(x)).with_config(run_name="visible")


def test_hidden_runs_are_skipped_and_their_children_reattached(case: Any) -> None:
    with case() as ctx:
        assert hidden_pipeline().invoke("q") == "inside"
    visible = named(starts(ctx), "visible")
    assert [o.name for o in starts(ctx, "chain")] == ["visible"]
    assert not [o for o in ctx.observations if o.name == "internal"]
    (generation,) = starts(ctx, "generation")  # a model call is always recorded
    assert generation.parent_id == visible.observation_id
    note = named(ctx.observations, "note")
    assert note.parent_id == visible.observation_id


def test_hidden_runs_are_recorded_with_langchain_hidden(case: Any) -> None:
    with case(langchain_hidden=True) as ctx:
        hidden_pipeline().invoke("q")
    internal = named(starts(ctx), "internal")
    assert internal.metadata["hidden"] is True
    assert internal.parent_id == named(starts(ctx), "visible").observation_id
    assert starts(ctx, "generation")[0].parent_id == internal.observation_id


def test_a_visible_run_under_a_hidden_one_attaches_to_the_nearest_visible_ancestor() -> None:
    # Tags are normally inherited, so a visible child of a hidden run needs a hand-built tree.
    with trace_context("t") as ctx:
        handler = langchain_handler.FluxloopCallbackHandler(ctx)
        top, mid, low = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        handler.on_chain_start({}, {}, run_id=top, name="top")
        handler.on_chain_start({}, {}, run_id=mid, parent_run_id=top, tags=HIDDEN, name="mid")
        handler.on_chain_start({}, {}, run_id=low, parent_run_id=mid, name="low")
        for run in (low, mid, top):
            handler.on_chain_end({}, run_id=run)
    assert [o.name for o in starts(ctx)] == ["top", "low"]
    assert named(starts(ctx), "low").parent_id == named(starts(ctx), "top").observation_id
    assert [o.name for o in ends(ctx)] == ["low", "top"]


# --------------------------------------------------------------------------- case boundaries


def test_nothing_is_recorded_outside_a_case(case: Any) -> None:
    model = chat("before", "after")
    with trace_context("no-capture") as bare:  # a trace, but no case_capture
        model.invoke("x")
    assert bare.observations == []
    with case() as ctx:
        pass
    model.invoke("y")
    assert ctx.observations == []
    assert lc._handler.get() is None


def test_a_run_outliving_its_case_is_ignored_then_abandoned(case: Any) -> None:
    stream = RunnableLambda(lambda x: x).with_config(run_name="slow").stream(1)
    with case() as ctx:
        assert next(stream) == 1
    count = len(ctx.observations)
    assert list(stream) == []  # ends after the case: not recorded
    assert len(ctx.observations) == count
    assert ctx.close_open_spans() == 1
    end = ends(ctx)[-1]
    assert end.name == "slow" and end.metadata["status"] == "abandoned"


def test_concurrent_cases_in_threads_keep_their_own_runs(case: Any) -> None:
    barrier = threading.Barrier(2, timeout=10)
    model = FakeListChatModel(responses=["r"] * 10)

    def step(x: str) -> str:
        barrier.wait()  # both cases are inside their runs at the same time
        return str(model.invoke(x).content) + x

    pipeline = RunnableLambda(step).with_config(run_name="step")
    traces: dict[str, TraceContext] = {}

    def one_case(label: str) -> None:
        with case() as ctx:
            traces[label] = ctx
            pipeline.invoke(label)

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(one_case, label))
        for label in ("a", "b")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for label in ("a", "b"):
        ctx = traces[label]
        assert [o.name for o in starts(ctx)] == ["step", "FakeListChatModel"]
        assert named(ends(ctx), "step").output == "r" + label
        assert named(starts(ctx), "step").input == label


def test_capture_langchain_off_attaches_nothing(case: Any) -> None:
    with case(langchain=False) as ctx:
        chat("x").invoke("x")
        assert lc._handler.get() is None
    assert ctx.observations == []


# --------------------------------------------------------------------------- robustness


def test_a_handler_failure_never_breaks_the_run(
    case: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(value: Any) -> Any:
        raise RuntimeError("cannot convert")

    monkeypatch.setattr(langchain_handler, "jsonable", broken)
    monkeypatch.setattr(langchain_handler, "_logged", False)
    with caplog.at_level(logging.WARNING, logger="pytest_fluxloop.capture"), case() as ctx:
        assert RunnableLambda(lambda x: x * 2).invoke(2) == 4
        assert RunnableLambda(lambda x: x * 3).invoke(2) == 6
    errors = [o for o in ctx.observations if o.name == "capture_error"]
    assert len(errors) == 2  # each chain's start (the failed starts end nothing)
    assert errors[0].kind == "event" and errors[0].error == "RuntimeError: cannot convert"
    assert errors[0].metadata == {"source": "langchain", "callback": "on_chain_start"}
    assert len([r for r in caplog.records if "LangChain capture failed" in r.message]) == 1


def test_version_notice_names_the_minimum() -> None:
    notice = lc.version_notice("0.2.43")
    assert notice is not None
    assert "langchain-core>=0.3" in notice and "0.2.43" in notice
    assert lc.version_notice("0.3.0") is None
    assert lc.version_notice("1.8.3") is None
    assert lc.version_notice("not a version") is None


def test_an_old_langchain_core_gives_a_notice_once_and_runs_uncaptured(
    case: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lc, "_installed_version", lambda: "0.2.5")
    monkeypatch.setattr(lc, "_reported", set())
    first = case()
    with first as ctx:
        chat("x").invoke("x")
    with case() as ctx2:
        pass
    assert len(first.notices) == 1 and "langchain-core>=0.3" in first.notices[0]
    assert ctx.observations == [] and ctx2.observations == []


# ----------------------------------------------------------------- one call, one generation


SEEN_FLAG: list[Any] = []


class OpenAIBackedChat(BaseChatModel):
    """A custom chat model calling the real openai client (against the fake server)."""

    base_url: str

    @property
    def _llm_type(self) -> str:
        return "openai-backed"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        SEEN_FLAG.append(framework_generation.get())
        client = openai.OpenAI(base_url=self.base_url, api_key="k", max_retries=0)
        response = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": str(messages[-1].content)}]
        )
        usage = response.usage
        assert usage is not None
        message = AIMessage(
            content=response.choices[0].message.content or "",
            usage_metadata={
                "input_tokens": usage.prompt_tokens,
                "output_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
            response_metadata={"model_name": response.model},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def test_framework_flag_is_set_while_the_model_runs(case: Any, llm_server: FakeLLMServer) -> None:
    llm_server.script(CHAT, chat_completion("hi"))
    SEEN_FLAG.clear()
    with case() as ctx:
        OpenAIBackedChat(base_url=llm_server.openai_base_url).invoke("q")
        after = framework_generation.get()
    assert SEEN_FLAG == ["langchain"] and not after
    assert len(starts(ctx, "generation")) == 1


@pytest.fixture
def provider_capture() -> Iterator[None]:
    """The provider capture may be installed by the test (case_capture with llm on)."""
    yield
    uninstall()


def direct_call(server: FakeLLMServer) -> None:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    client.chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": "direct"}]
    )


@pytest.mark.usefixtures("provider_capture")
def test_a_langchain_model_calling_openai_records_one_generation(
    case: Any, llm_server: FakeLLMServer
) -> None:
    llm_server.script(CHAT, chat_completion("via langchain"), chat_completion("direct"))
    model = OpenAIBackedChat(base_url=llm_server.openai_base_url)
    with case(llm=True) as ctx:  # openai is imported: case_capture installs its capture
        model.invoke("q")
        direct_call(llm_server)  # after the model run: the provider capture records it
    generations = starts(ctx, "generation")
    assert [g.metadata["provider"] for g in generations] == ["openaibacked", "openai"]
    (langchain_end, openai_end) = ends(ctx, "generation")
    assert langchain_end.output == "via langchain"
    assert langchain_end.metadata["usage"]["total_tokens"] == 120
    assert langchain_end.metadata["model"] == "test-model"
    assert openai_end.output is not None


@pytest.mark.usefixtures("provider_capture")
def test_after_an_async_model_run_the_provider_capture_records_again(
    case: Any, llm_server: FakeLLMServer
) -> None:
    # LangChain ends an ainvoke's run from another task, where the caller's context can't be
    # reset: the value left behind is false, and the provider capture must see it as such.
    llm_server.script(CHAT, chat_completion("via langchain"), chat_completion("direct"))
    model = OpenAIBackedChat(base_url=llm_server.openai_base_url)

    async def agent() -> None:
        await model.ainvoke("q")
        direct_call(llm_server)

    with case(llm=True) as ctx:
        asyncio.run(agent())
    generations = starts(ctx, "generation")
    assert [g.metadata["provider"] for g in generations] == ["openaibacked", "openai"]


def test_capture_survives_langchain_reloading_its_hooks_module(
    case: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LangChain imports ``langchain_core.tracers.context`` lazily; a host that unloads the
    modules it imported (pytester after an in-process run) leaves a fresh one behind, with
    no hooks, and a stale one on the package. Capture registers in the one LangChain reads,
    once."""
    import sys

    runnable = RunnableLambda(lambda x: x + 1, name="step")
    with case() as ctx:
        assert runnable.invoke(1) == 2
    assert [o.name for o in starts(ctx, "chain")] == ["step"]
    monkeypatch.delitem(sys.modules, "langchain_core.tracers.context")
    for _ in range(2):
        with case() as ctx:
            assert runnable.invoke(1) == 2
        assert [o.name for o in starts(ctx, "chain")] == ["step"]  # recorded, once
