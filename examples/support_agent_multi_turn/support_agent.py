"""A deterministic multi-turn support agent (no network, no API key).

It declares ``conversation_state`` and ``auto_approve``, so FluxLoop passes it the dialogue so
far (a copy: changing it does not change the recorded transcript) and the
``multi_turn.auto_approve_tools`` setting.
"""

from __future__ import annotations

from typing import Any

import fluxloop

ANSWERS = {
    "refund": "Refunds go back to your original payment method within 5 business days.",
    "shipping": "Standard shipping takes 2-4 business days within the EU.",
    "password": "Use 'Forgot password' on the sign-in page; the reset link lasts one hour.",
    "hours": "We are open Monday to Friday, 9:00-18:00 CET.",
    "order": "Your order is on its way; you will get a tracking link by email.",
}
KEYWORDS = {
    "refund": ("refund", "money back", "return"),
    "shipping": ("shipping", "deliver", "arrive"),
    "password": ("password", "log in", "login"),
    "hours": ("open", "hours"),
    "order": ("order", "tracking"),
}


@fluxloop.tool()
def classify(message: str) -> str:
    """The first intent whose keywords appear in the message, else ``unknown``."""
    text = message.lower()
    for intent, words in KEYWORDS.items():
        if any(word in text for word in words):
            return intent
    return "unknown"


@fluxloop.tool()
def open_refund_ticket(approved: bool) -> str:
    """A tool call that needs approval; with auto-approve off it waits for a human."""
    return "ticket RF-1 opened" if approved else "waiting for approval"


@fluxloop.agent()
def run(
    input_text: str,
    persona: str | None = None,
    conversation_state: dict[str, Any] | None = None,
    auto_approve: bool = False,
) -> str:
    """Answer the latest customer message; greet only on the first turn."""
    turns = (conversation_state or {}).get("turns", [])
    first_turn = sum(1 for turn in turns if turn["role"] == "user") <= 1
    intent = classify(input_text)
    answer = ANSWERS.get(intent, "I'm not sure yet; let me connect you with a colleague.")
    if intent == "refund":
        answer += f" ({open_refund_ticket(auto_approve)})"
    if first_turn and persona == "novice_user":
        answer = f"Happy to help! {answer}"
    return answer
