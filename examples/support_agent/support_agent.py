"""A small deterministic customer-support agent (no network, no API key).

It matches the message against a few intents and answers in the persona's register.
"""

from __future__ import annotations

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


@fluxloop.agent()
def run(input_text: str, persona: str | None = None) -> str:
    """Answer one customer message."""
    intent = classify(input_text)
    answer = ANSWERS.get(intent, "I'm not sure yet; let me connect you with a colleague.")
    if persona == "novice_user":
        return f"Happy to help! {answer} Anything else I can do for you?"
    return answer
