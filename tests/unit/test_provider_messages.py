"""Provider error messages read as sentences: the server's own final period is not doubled.

The real openai client calls the loopback fake server; real provider messages end with a
period ("... check your plan and billing details."), and our advice follows them.
"""

from __future__ import annotations

import re

import pytest
from support.llm_server import CHAT, FakeLLMServer, llm_server, openai_error

from pytest_fluxloop.llm import LLMError, LLMRequest, create_client

__all__ = ["llm_server"]  # the fixture, imported for pytest

REQUEST = LLMRequest(system="s", user="u", schema={"type": "object"}, schema_name="x")
QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs."
)


def error_for(server: FakeLLMServer, status: int, message: str, code: str | None) -> str:
    server.script(CHAT, openai_error(status, message, code=code))
    client = create_client(
        "openai", api_key="k-0123456789", base_url=server.openai_base_url, model="m", role="judge"
    )
    with pytest.raises(LLMError) as info:
        client.call(REQUEST)
    return str(info.value)


@pytest.mark.parametrize(
    ("status", "message", "code", "advice"),
    [
        (429, QUOTA, "insufficient_quota", "read the docs. The account has no quota left"),
        (401, "Incorrect API key provided.", "invalid_api_key", "provided. check the API key"),
        (404, "The model `m` does not exist.", "model_not_found", "does not exist. check"),
        (401, "no key", "invalid_api_key", "no key. check the API key"),
    ],
)
def test_no_doubled_period_before_the_advice(
    llm_server: FakeLLMServer, status: int, message: str, code: str, advice: str
) -> None:
    text = error_for(llm_server, status, message, code)
    assert advice in text
    assert not re.search(r"[^.]\.\.(?!\.)", text), text  # ".." but not an ellipsis "..."
