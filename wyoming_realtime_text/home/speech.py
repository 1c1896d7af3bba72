"""What the assistant says about commands when the model's own words will not do.

The model's text is used whenever it fits. These sentences cover the rest: a calls-only
response (nothing to speak but a confirmation), a risky command asked back, a call that
was refused. English has them per intent; the other languages have short general ones,
so nobody hears an English sentence for a French request. A state question's answer is a
template Home Assistant 2026 renders with the matched entity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..realtime.models import base_language
from .calls import Command

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "done": "Done.",
        "ask": "Do you want me to {action}? Say yes to confirm.",
        "unclear": "Sorry, I couldn't work out that command, so I didn't do anything.",
        "satellite": "I can only set timers from a voice satellite.",
        "one": "I can do one thing at a time here; please ask for the rest again.",
        "unsafe": "For safety, I can't do that from here; please use the Home Assistant app.",
        "missing": "I couldn't find {target} in your home.",
        "near": "Did you mean {names}?",
        "failed": "That didn't work: {why}",
    },
    "de": {
        "done": "Erledigt.",
        "ask": "Soll ich das wirklich tun: {target}? Sag ja zum Bestätigen.",
        "unclear": "Das habe ich nicht verstanden, deshalb habe ich nichts getan.",
        "satellite": "Timer kann ich nur an einem Sprachsatelliten stellen.",
        "one": "Hier kann ich nur eins nach dem anderen tun; bitte sag den Rest noch einmal.",
        "unsafe": "Aus Sicherheitsgründen geht das von hier aus nicht.",
        "missing": "Das habe ich nicht gefunden: {target}.",
        "near": "Meintest du {names}?",
        "failed": "Das hat nicht geklappt: {why}",
    },
    "fr": {
        "done": "C'est fait.",
        "ask": "Voulez-vous vraiment que je le fasse : {target} ? Dites oui pour confirmer.",
        "unclear": "Je n'ai pas compris cette commande, je n'ai donc rien fait.",
        "satellite": "Je ne peux régler des minuteurs que depuis un satellite vocal.",
        "one": "Je ne peux faire qu'une chose à la fois ici ; redemandez le reste.",
        "unsafe": "Par sécurité, je ne peux pas faire cela d'ici.",
        "missing": "Je n'ai pas trouvé : {target}.",
        "near": "Vouliez-vous dire {names} ?",
        "failed": "Cela n'a pas marché : {why}",
    },
    "es": {
        "done": "Hecho.",
        "ask": "¿Seguro que quieres que lo haga: {target}? Di sí para confirmar.",
        "unclear": "No entendí esa orden, así que no hice nada.",
        "satellite": "Solo puedo poner temporizadores desde un satélite de voz.",
        "one": "Aquí solo puedo hacer una cosa a la vez; pide lo demás de nuevo.",
        "unsafe": "Por seguridad, no puedo hacer eso desde aquí.",
        "missing": "No encontré: {target}.",
        "near": "¿Querías decir {names}?",
        "failed": "No funcionó: {why}",
    },
    "nl": {
        "done": "Gedaan.",
        "ask": "Wil je echt dat ik dit doe: {target}? Zeg ja om te bevestigen.",
        "unclear": "Dat commando begreep ik niet, dus ik heb niets gedaan.",
        "satellite": "Timers kan ik alleen vanaf een spraaksatelliet zetten.",
        "one": "Hier kan ik maar één ding tegelijk doen; vraag de rest opnieuw.",
        "unsafe": "Om veiligheidsredenen kan ik dat hier niet doen.",
        "missing": "Dat heb ik niet gevonden: {target}.",
        "near": "Bedoelde je {names}?",
        "failed": "Dat lukte niet: {why}",
    },
    "it": {
        "done": "Fatto.",
        "ask": "Vuoi davvero che lo faccia: {target}? Di' sì per confermare.",
        "unclear": "Non ho capito questo comando, quindi non ho fatto nulla.",
        "satellite": "Posso impostare timer solo da un satellite vocale.",
        "one": "Qui posso fare una cosa alla volta; chiedi di nuovo il resto.",
        "unsafe": "Per sicurezza non posso farlo da qui.",
        "missing": "Non ho trovato: {target}.",
        "near": "Intendevi {names}?",
        "failed": "Non ha funzionato: {why}",
    },
    "ja": {
        "done": "完了しました。",
        "ask": "本当に実行しますか：{target}？よろしければ「はい」と言ってください。",
        "unclear": "そのコマンドが分からなかったので、何もしていません。",
        "satellite": "タイマーは音声サテライトからのみ設定できます。",
        "one": "ここでは一度に一つだけ実行できます。残りはもう一度お願いします。",
        "unsafe": "安全のため、ここからは実行できません。",
        "missing": "{target}が見つかりませんでした。",
        "near": "{names}のことですか？",
        "failed": "うまくいきませんでした：{why}",
    },
}


def _table(language: str | None) -> str:
    base = base_language(language) or "en"
    return base if base in PHRASES else "en"


def phrase(language: str | None, key: str, **values: Any) -> str:
    """`key`'s sentence in `language` (English where there is none)."""
    return PHRASES[_table(language)][key].format(**values)


def english(language: str | None) -> bool:
    return _table(language) == "en"


def confirmation(command: Command, language: str | None) -> str:
    """The sentence for a command sent without words of the model's."""
    if not english(language):
        return phrase(language, "done")
    values = {slot: command.slots.get(slot, "") for slot in command.spec.slots}
    return command.spec.done.format(**{**values, "target": command.target})


def question(command: Command, language: str | None) -> str:
    """Asking before a risky command is sent."""
    if english(language):
        return phrase(language, "ask", action=_action(command))
    return phrase(language, "ask", target=command.target)


def _action(command: Command) -> str:
    text = " ".join(str(command.slots.get(k, "")) for k in ("name", "domain")).casefold()
    if command.spec.name != "HassTurnOff":
        return f"open {command.target}"
    if "alarm" in text:
        return f"disarm {command.target}"
    if "lock" in text:
        return f"unlock {command.target}"
    if "door" in text or "gate" in text:  # a lock or a cover: unlocking, or closing
        return f"unlock or close {command.target}"
    return f"turn off {command.target}"


def state_template(command: Command, language: str | None) -> str:
    """The answer to a state question, for HA to render with the state it matched."""
    unit = (
        "{% if state.attributes.unit_of_measurement %} "
        "{{ state.attributes.unit_of_measurement }}{% endif %}"
    )
    if not english(language):
        return "{% if state %}{{ state.name }}: {{ state.state }}" + unit + "{% endif %}"
    told = "{{ state.name }} is {{ state.state }}" + unit + "."
    if command.slots.get("state"):
        told = "{% if query.matched %}Yes{% else %}No{% endif %}, " + told
    return "{% if state %}" + told + "{% else %}I could not find that.{% endif %}"


def missing(command: Command, near: Sequence[str], language: str | None) -> str:
    """Nothing in the home matches: said so, with the closest names when there are any."""
    sentence = phrase(language, "missing", target=command.target)
    if near:
        sentence += " " + phrase(language, "near", names=_either(near, language))
    return sentence


def _either(names: Sequence[str], language: str | None) -> str:
    if len(names) == 1 or not english(language):
        return " / ".join(names) if not english(language) else names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def state_sentence(command: Command, entities: Sequence[Any], language: str | None) -> str:
    """A state question answered from the home's live state (any HA release)."""
    told = []
    for entity in entities[:5]:
        unit = entity.attributes.get("unit_of_measurement")
        state = f"{entity.state} {unit}" if unit else entity.state
        told.append(f"{entity.name} is {state}" if english(language) else f"{entity.name}: {state}")
    text = ", ".join(told) + "."
    asked = command.slots.get("state")
    if asked and english(language):
        yes = any(str(e.state).casefold() == str(asked).casefold() for e in entities)
        text = ("Yes, " if yes else "No, ") + text
    return text


def template_safe(text: str) -> str:
    """Model text HA 2026 will not render as a template (nor HA 2025 speak braces of)."""
    return text.replace("{", "").replace("}", "")
