"""``multilingual``: the request in, or mixed with, another language - as far as rules can.

What the rules can do:

* ``multilingual.translation`` (params ``mode: "translation"``) - a real, whole translation
  into Spanish, French or German, but only when *every* sentence of the input is one the
  tables know: a fixed support sentence (:data:`SENTENCES`: ``Where is my order?``,
  ``When are you open?``, greetings, thanks ...) or one of a few question shapes
  (:data:`PATTERNS`: ``How do I X?``, ``Can I X?``, ``Where can I X?``, ``I want to X``,
  ``I need to X``) whose ``X`` is a verb phrase in :data:`VERB_PHRASES` (``get a refund``,
  ``reset my password``, ``cancel my order`` ... about thirty). A leading ``Hi,`` is kept as
  a greeting. Matching is exact (case, spacing and closing punctuation aside): there is no
  word-by-word guessing, so a translation is either right or not produced.
* ``multilingual.code_switch`` (params ``mode: "code_switch"``) - for any input: the English
  text with a greeting, a closing, a request for help or a ``please`` in the target language
  (``Hola, how do I start? Gracias``), as bilingual users write; an English ``Hi,`` or
  ``Thanks!`` already there is switched rather than doubled. Spanish, French, German,
  Portuguese and Italian; ``temperature`` adds more foreign parts. Whole translations, when
  there are any, come before the code-switched variations.

What they cannot do: translate free text, or translate into any other language. The target
language is ``language`` (or the persona's ``language``): a name or code the tables have
(``es``, ``es-MX``, ``Spanish``, ``español`` ...). English, or no language at all, means
"other languages": the variations then go round all the table languages. A language the
tables do not have raises :class:`UnsupportedStrategy` recommending LLM mode
(``--mode llm``), which translates anything. The input is assumed to be English.
"""

from __future__ import annotations

import random
import re
from typing import Any

from ._common import (
    GREETING_START,
    THANKS_END,
    Maker,
    Request,
    UnsupportedStrategy,
    Variation,
    collect,
    end_sentence,
    lowercase_first,
    split_sentences,
    split_terminal,
    word_spans,
)

__all__ = [
    "CODE_SWITCH",
    "LANGUAGE_NAMES",
    "PATTERNS",
    "SENTENCES",
    "TRANSLATION_LANGUAGES",
    "VERB_PHRASES",
    "multilingual",
    "resolve_language",
    "target_languages",
    "translate",
]

#: Words a bilingual user mixes into an English message, per language (ISO 639-1 code).
CODE_SWITCH: dict[str, dict[str, tuple[str, ...]]] = {
    "es": {
        "greeting": ("Hola", "Buenas", "Buenos días"),
        "closing": ("Gracias", "Muchas gracias", "Gracias de antemano", "Saludos"),
        "help": ("¿Me puede ayudar?", "Es urgente.", "No entiendo nada."),
        "please": ("por favor",),
    },
    "fr": {
        "greeting": ("Bonjour", "Salut", "Bonsoir"),
        "closing": ("Merci", "Merci beaucoup", "Merci d'avance", "Cordialement"),
        "help": ("Pouvez-vous m'aider ?", "C'est urgent.", "Je ne comprends pas."),
        "please": ("s'il vous plaît", "svp"),
    },
    "de": {
        "greeting": ("Hallo", "Guten Tag", "Moin"),
        "closing": ("Danke", "Vielen Dank", "Danke im Voraus", "Viele Grüße"),
        "help": ("Können Sie mir helfen?", "Es ist dringend.", "Ich verstehe das nicht."),
        "please": ("bitte",),
    },
    "pt": {
        "greeting": ("Olá", "Oi", "Bom dia"),
        "closing": ("Obrigado", "Muito obrigado", "Desde já, obrigado", "Abraços"),
        "help": ("Pode me ajudar?", "É urgente.", "Não estou entendendo."),
        "please": ("por favor",),
    },
    "it": {
        "greeting": ("Ciao", "Salve", "Buongiorno"),
        "closing": ("Grazie", "Grazie mille", "Grazie in anticipo", "Saluti"),
        "help": ("Mi può aiutare?", "È urgente.", "Non capisco."),
        "please": ("per favore",),
    },
}

#: Languages with whole-sentence translation tables.
TRANSLATION_LANGUAGES: tuple[str, ...] = ("es", "fr", "de")

#: Names and codes accepted for each table language (compared case-folded).
LANGUAGE_NAMES: dict[str, str] = {
    "en": "en", "english": "en", "eng": "en",
    "es": "es", "spanish": "es", "español": "es", "espanol": "es", "castellano": "es",
    "spa": "es",
    "fr": "fr", "french": "fr", "français": "fr", "francais": "fr", "fra": "fr", "fre": "fr",
    "de": "de", "german": "de", "deutsch": "de", "deu": "de", "ger": "de",
    "pt": "pt", "portuguese": "pt", "português": "pt", "portugues": "pt", "por": "pt",
    "it": "it", "italian": "it", "italiano": "it", "ita": "it",
}  # fmt: skip

#: Whole sentences (lower case, no closing punctuation, straight apostrophes) -> translation.
SENTENCES: dict[str, dict[str, str]] = {
    "where do i begin": {
        "es": "¿Por dónde empiezo?",
        "fr": "Par où commencer ?",
        "de": "Wo fange ich an?",
    },
    "where do i start": {
        "es": "¿Por dónde empiezo?",
        "fr": "Par où commencer ?",
        "de": "Wo fange ich an?",
    },
    "when are you open": {
        "es": "¿Cuándo abren?",
        "fr": "Quand êtes-vous ouverts ?",
        "de": "Wann haben Sie geöffnet?",
    },
    "what are your opening hours": {
        "es": "¿Cuál es su horario de apertura?",
        "fr": "Quels sont vos horaires d'ouverture ?",
        "de": "Wie sind Ihre Öffnungszeiten?",
    },
    "where is my order": {
        "es": "¿Dónde está mi pedido?",
        "fr": "Où est ma commande ?",
        "de": "Wo ist meine Bestellung?",
    },
    "where is my package": {
        "es": "¿Dónde está mi paquete?",
        "fr": "Où est mon colis ?",
        "de": "Wo ist mein Paket?",
    },
    "where is my parcel": {
        "es": "¿Dónde está mi paquete?",
        "fr": "Où est mon colis ?",
        "de": "Wo ist mein Paket?",
    },
    "i forgot my password": {
        "es": "Olvidé mi contraseña.",
        "fr": "J'ai oublié mon mot de passe.",
        "de": "Ich habe mein Passwort vergessen.",
    },
    "i need help": {
        "es": "Necesito ayuda.",
        "fr": "J'ai besoin d'aide.",
        "de": "Ich brauche Hilfe.",
    },
    "can you help me": {
        "es": "¿Me puede ayudar?",
        "fr": "Pouvez-vous m'aider ?",
        "de": "Können Sie mir helfen?",
    },
    "could you help me": {
        "es": "¿Me podría ayudar?",
        "fr": "Pourriez-vous m'aider ?",
        "de": "Könnten Sie mir helfen?",
    },
    "how much does it cost": {
        "es": "¿Cuánto cuesta?",
        "fr": "Combien ça coûte ?",
        "de": "Was kostet das?",
    },
    "my payment failed": {
        "es": "Mi pago ha fallado.",
        "fr": "Mon paiement a échoué.",
        "de": "Meine Zahlung ist fehlgeschlagen.",
    },
    "i want a refund": {
        "es": "Quiero un reembolso.",
        "fr": "Je voudrais un remboursement.",
        "de": "Ich möchte eine Rückerstattung.",
    },
    "i would like a refund": {
        "es": "Quisiera un reembolso.",
        "fr": "Je voudrais un remboursement.",
        "de": "Ich hätte gerne eine Rückerstattung.",
    },
    "my order has not arrived": {
        "es": "Mi pedido no ha llegado.",
        "fr": "Ma commande n'est pas arrivée.",
        "de": "Meine Bestellung ist nicht angekommen.",
    },
    "my order hasn't arrived": {
        "es": "Mi pedido no ha llegado.",
        "fr": "Ma commande n'est pas arrivée.",
        "de": "Meine Bestellung ist nicht angekommen.",
    },
    "do you ship internationally": {
        "es": "¿Hacen envíos internacionales?",
        "fr": "Livrez-vous à l'international ?",
        "de": "Liefern Sie ins Ausland?",
    },
    "what is your return policy": {
        "es": "¿Cuál es su política de devoluciones?",
        "fr": "Quelle est votre politique de retour ?",
        "de": "Wie sind Ihre Rückgabebedingungen?",
    },
    "the app doesn't work": {
        "es": "La aplicación no funciona.",
        "fr": "L'application ne fonctionne pas.",
        "de": "Die App funktioniert nicht.",
    },
    "the app is not working": {
        "es": "La aplicación no funciona.",
        "fr": "L'application ne fonctionne pas.",
        "de": "Die App funktioniert nicht.",
    },
    "hi": {"es": "¡Hola!", "fr": "Bonjour !", "de": "Hallo!"},
    "hello": {"es": "¡Hola!", "fr": "Bonjour !", "de": "Hallo!"},
    "hey": {"es": "¡Hola!", "fr": "Salut !", "de": "Hallo!"},
    "hi there": {"es": "¡Hola!", "fr": "Bonjour !", "de": "Hallo!"},
    "good morning": {"es": "¡Buenos días!", "fr": "Bonjour !", "de": "Guten Morgen!"},
    "thanks": {"es": "Gracias.", "fr": "Merci.", "de": "Danke."},
    "thank you": {"es": "Gracias.", "fr": "Merci.", "de": "Danke."},
    "thanks a lot": {"es": "Muchas gracias.", "fr": "Merci beaucoup.", "de": "Vielen Dank."},
    "thank you very much": {"es": "Muchas gracias.", "fr": "Merci beaucoup.", "de": "Vielen Dank."},
    "thanks in advance": {
        "es": "Gracias de antemano.",
        "fr": "Merci d'avance.",
        "de": "Danke im Voraus.",
    },
}

#: (name, English sentence shape with a verb-phrase slot, translation shape per language).
#: Every shape is first person, so the verb phrases below are written for "I" (French
#: reflexives as ``me connecter``, German separable verbs at the end).
PATTERNS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("how_to", r"how (?:do|can|could|should) i (?P<vp>.+)",
     {"es": "¿Cómo puedo {vp}?", "fr": "Comment puis-je {vp} ?", "de": "Wie kann ich {vp}?"}),
    ("where_can", r"where (?:can|do|should) i (?P<vp>.+)",
     {"es": "¿Dónde puedo {vp}?", "fr": "Où puis-je {vp} ?", "de": "Wo kann ich {vp}?"}),
    ("can_i", r"(?:can|could|may) i (?P<vp>.+)",
     {"es": "¿Puedo {vp}?", "fr": "Puis-je {vp} ?", "de": "Kann ich {vp}?"}),
    ("want_to", r"i (?:want|would like|'d like) to (?P<vp>.+)",
     {"es": "Quiero {vp}.", "fr": "Je voudrais {vp}.", "de": "Ich möchte {vp}."}),
    ("need_to", r"i need to (?P<vp>.+)",
     {"es": "Necesito {vp}.", "fr": "Je dois {vp}.", "de": "Ich muss {vp}."}),
)  # fmt: skip

#: English verb phrase (lower case) -> its infinitive phrase for a first-person subject.
VERB_PHRASES: dict[str, dict[str, str]] = {
    "get a refund": {
        "es": "obtener un reembolso",
        "fr": "obtenir un remboursement",
        "de": "eine Rückerstattung bekommen",
    },
    "request a refund": {
        "es": "solicitar un reembolso",
        "fr": "demander un remboursement",
        "de": "eine Rückerstattung beantragen",
    },
    "reset my password": {
        "es": "restablecer mi contraseña",
        "fr": "réinitialiser mon mot de passe",
        "de": "mein Passwort zurücksetzen",
    },
    "change my password": {
        "es": "cambiar mi contraseña",
        "fr": "changer mon mot de passe",
        "de": "mein Passwort ändern",
    },
    "cancel my order": {
        "es": "cancelar mi pedido",
        "fr": "annuler ma commande",
        "de": "meine Bestellung stornieren",
    },
    "cancel my subscription": {
        "es": "cancelar mi suscripción",
        "fr": "résilier mon abonnement",
        "de": "mein Abonnement kündigen",
    },
    "track my order": {
        "es": "seguir mi pedido",
        "fr": "suivre ma commande",
        "de": "meine Bestellung verfolgen",
    },
    "return an item": {
        "es": "devolver un artículo",
        "fr": "retourner un article",
        "de": "einen Artikel zurückgeben",
    },
    "return my order": {
        "es": "devolver mi pedido",
        "fr": "retourner ma commande",
        "de": "meine Bestellung zurückgeben",
    },
    "exchange an item": {
        "es": "cambiar un artículo",
        "fr": "échanger un article",
        "de": "einen Artikel umtauschen",
    },
    "change my email address": {
        "es": "cambiar mi dirección de correo electrónico",
        "fr": "changer mon adresse e-mail",
        "de": "meine E-Mail-Adresse ändern",
    },
    "change my address": {
        "es": "cambiar mi dirección",
        "fr": "changer mon adresse",
        "de": "meine Adresse ändern",
    },
    "change my delivery address": {
        "es": "cambiar mi dirección de entrega",
        "fr": "changer mon adresse de livraison",
        "de": "meine Lieferadresse ändern",
    },
    "update my payment method": {
        "es": "actualizar mi método de pago",
        "fr": "mettre à jour mon moyen de paiement",
        "de": "meine Zahlungsmethode aktualisieren",
    },
    "update my profile": {
        "es": "actualizar mi perfil",
        "fr": "mettre à jour mon profil",
        "de": "mein Profil aktualisieren",
    },
    "delete my account": {
        "es": "eliminar mi cuenta",
        "fr": "supprimer mon compte",
        "de": "mein Konto löschen",
    },
    "create an account": {
        "es": "crear una cuenta",
        "fr": "créer un compte",
        "de": "ein Konto erstellen",
    },
    "contact support": {
        "es": "contactar con el servicio de atención al cliente",
        "fr": "contacter le service client",
        "de": "den Kundenservice kontaktieren",
    },
    "contact customer support": {
        "es": "contactar con el servicio de atención al cliente",
        "fr": "contacter le service client",
        "de": "den Kundenservice kontaktieren",
    },
    "talk to a human": {
        "es": "hablar con una persona",
        "fr": "parler à quelqu'un",
        "de": "mit einem Menschen sprechen",
    },
    "speak to a human": {
        "es": "hablar con una persona",
        "fr": "parler à quelqu'un",
        "de": "mit einem Menschen sprechen",
    },
    "get started": {"es": "empezar", "fr": "commencer", "de": "anfangen"},
    "start": {"es": "empezar", "fr": "commencer", "de": "anfangen"},
    "begin": {"es": "empezar", "fr": "commencer", "de": "anfangen"},
    "log in": {"es": "iniciar sesión", "fr": "me connecter", "de": "mich anmelden"},
    "sign in": {"es": "iniciar sesión", "fr": "me connecter", "de": "mich anmelden"},
    "sign up": {"es": "registrarme", "fr": "m'inscrire", "de": "mich registrieren"},
    "pay": {"es": "pagar", "fr": "payer", "de": "bezahlen"},
    "pay by credit card": {
        "es": "pagar con tarjeta de crédito",
        "fr": "payer par carte de crédit",
        "de": "mit Kreditkarte bezahlen",
    },
    "download my invoice": {
        "es": "descargar mi factura",
        "fr": "télécharger ma facture",
        "de": "meine Rechnung herunterladen",
    },
    "change my plan": {
        "es": "cambiar mi plan",
        "fr": "changer de forfait",
        "de": "meinen Tarif ändern",
    },
    "find my order number": {
        "es": "encontrar mi número de pedido",
        "fr": "trouver mon numéro de commande",
        "de": "meine Bestellnummer finden",
    },
    "use a discount code": {
        "es": "usar un código de descuento",
        "fr": "utiliser un code de réduction",
        "de": "einen Rabattcode verwenden",
    },
    "check my balance": {
        "es": "consultar mi saldo",
        "fr": "consulter mon solde",
        "de": "meinen Kontostand prüfen",
    },
    "report a problem": {
        "es": "informar de un problema",
        "fr": "signaler un problème",
        "de": "ein Problem melden",
    },
}

_PATTERNS = tuple((name, re.compile(pattern), shapes) for name, pattern, shapes in PATTERNS)
#: "Hi, how do I ...": a greeting before a comma is translated as a greeting.
_GREETING_PREFIX = re.compile(r"(?P<greeting>hi|hello|hey)(?: there)?,\s*(?P<rest>.+)")
_GREETING_WORD = {"es": "Hola", "fr": "Bonjour", "de": "Hallo"}


def resolve_language(language: str | None) -> str | None:
    """``"es-MX"``/``"Spanish"``/``"español"`` -> ``"es"``; ``None`` for no language.

    Returns the text itself (case-folded, region removed) when it is not a table language.
    """
    if language is None or not language.strip():
        return None
    folded = language.strip().casefold().replace("_", "-")
    if folded in LANGUAGE_NAMES:
        return LANGUAGE_NAMES[folded]
    base = folded.split("-", 1)[0]
    return LANGUAGE_NAMES.get(base, base)


def _normal(sentence: str) -> str:
    body, _ = split_terminal(sentence)
    return " ".join(body.replace("’", "'").split()).casefold()


def _translate_sentence(sentence: str, language: str) -> tuple[str, str] | None:
    """``(translation, rule)`` of one sentence, or ``None`` when the tables do not cover it."""
    normal = _normal(sentence)
    if normal in SENTENCES:
        return SENTENCES[normal][language], "sentence"
    greeting = _GREETING_PREFIX.fullmatch(normal)
    if greeting:
        rest = _translate_sentence(greeting.group("rest"), language)
        if rest is None:
            return None
        return f"{_GREETING_WORD[language]}, {lowercase_first(rest[0])}", f"greeting+{rest[1]}"
    for name, pattern, shapes in _PATTERNS:
        match = pattern.fullmatch(normal)
        if match and match.group("vp") in VERB_PHRASES:
            return shapes[language].format(vp=VERB_PHRASES[match.group("vp")][language]), name
    return None


def translate(text: str, language: str) -> tuple[str, list[str]] | None:
    """The whole of ``text`` in ``language`` and the rules used, or ``None`` if any sentence
    is not covered (a partial translation would be a wrong one)."""
    if language not in TRANSLATION_LANGUAGES:
        return None
    parts: list[str] = []
    rules: list[str] = []
    for sentence in split_sentences(text):
        translated = _translate_sentence(sentence, language)
        if translated is None:
            return None
        parts.append(translated[0])
        rules.append(translated[1])
    return (" ".join(parts), rules) if parts else None


def _make_translation(request: Request, language: str) -> Maker | None:
    translated = translate(request.text, language)
    if translated is None:
        return None
    text, rules = translated
    params = {"language": language, "mode": "translation", "rules": rules}

    def make(rng: random.Random) -> Variation | None:
        return Variation(text, "multilingual.translation", dict(params))

    return make


def _with_please(text: str, please: str) -> str:
    """``please`` in place of the English one, else before the closing punctuation."""
    replaced, count = re.subn(r"(?<![\w'])please(?![\w'])", please, text, count=1, flags=re.I)
    if count:
        return replaced
    body, terminal = split_terminal(text)
    return f"{body}, {please}{terminal}"


def _make_code_switch(request: Request, languages: list[str]) -> Maker:
    # Cut the text into its English greeting, the request and its English thanks: a
    # bilingual writer switches those (``Hola, ... Gracias``) rather than adding to them.
    text = request.text.strip()
    greeting = GREETING_START.match(text)
    english_head = text[: greeting.end()] if greeting else ""
    rest = text[len(english_head) :]
    thanks = THANKS_END.search(rest)
    request_text = rest[: thanks.start()].rstrip() if thanks else rest
    english_tail = rest[thanks.start() :] if thanks else ""
    after_thanks = rest[thanks.end() :] if thanks else ""
    # "please" needs words to attach to ("???, por favor" is no request).
    parts = (
        ("greeting", "closing", "help", "please")
        if word_spans(request_text)
        else (
            "greeting",
            "closing",
            "help",
        )
    )

    def make(rng: random.Random) -> Variation | None:
        language = rng.choice(languages)
        words = CODE_SWITCH[language]
        most = 1 + round(request.strength * (len(parts) - 1))
        chosen = rng.sample(parts, rng.randint(1, most))
        picked: dict[str, Any] = {p: rng.randrange(len(words[p])) for p in parts if p in chosen}
        head, core, tail = english_head, request_text, english_tail
        if "please" in picked:
            core = _with_please(core, words["please"][picked["please"]])
        if "greeting" in picked:
            head = f"{words['greeting'][picked['greeting']]}, "
            core = lowercase_first(core)
        if "help" in picked:
            core = f"{end_sentence(core)} {words['help'][picked['help']]}".strip()
        if "closing" in picked:
            tail = words["closing"][picked["closing"]] + after_thanks
        if tail:
            core = end_sentence(core)
        text = f"{head}{core} {tail}" if tail else f"{head}{core}"
        params = {"language": language, "mode": "code_switch", "parts": picked}
        return Variation(text, "multilingual.code_switch", params)

    return make


def target_languages(request: Request) -> list[str]:
    """The languages this request's variations may use (see the module docstring).

    Raises:
        UnsupportedStrategy: the language asked for has no rule tables.
    """
    asked = request.language
    if asked is None and request.persona is not None:
        asked = request.persona.language
    resolved = resolve_language(asked)
    if resolved is None or resolved == "en":
        return list(CODE_SWITCH)
    if resolved not in CODE_SWITCH:
        raise UnsupportedStrategy(
            f"strategy 'multilingual': the deterministic rules have no tables for language "
            f"{asked!r} (they cover {', '.join(CODE_SWITCH)}, whole translations only for "
            f"{', '.join(TRANSLATION_LANGUAGES)}). Use LLM mode (--mode llm) to translate "
            "into any language, or set the persona's language to one of those",
            strategy="multilingual",
        )
    return [resolved]


def multilingual(request: Request) -> list[Variation]:
    """Translated or code-switched variations of ``request.text`` (see the module docstring).

    Whole translations come first (the real thing, when the tables cover the input); the
    code-switched variations fill the rest.
    """
    languages = target_languages(request)
    translations = [_make_translation(request, lang) for lang in languages]
    return collect(request, translations, [_make_code_switch(request, languages)])
