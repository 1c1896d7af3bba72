"""A snapshot of the home as Home Assistant exposes it to Assist, without I/O.

Built from what HA's own WebSocket API lists (`get_states`, the entity, device, area and
floor registries, `homeassistant/expose_entity/list`) the way HA's LLM API builds its
overview of exposed entities (`homeassistant/helpers/llm.py` `_get_exposed_entities` up to
2025.x, `homeassistant/components/homeassistant/llm.py` `async_get_exposed_entities` in
2026.x): names are the friendly name and the aliases, the area is the entity's own or else
its device's, and the model is never shown an entity id. The entity id stays inside, for
this program to find an entity again.

Matching is a little looser than HA's (HA compares `name.strip().casefold()`): case,
punctuation and runs of whitespace are ignored, so "kitchen-light" finds "Kitchen Light".
A caller should therefore send HA the matched entity's own name, which HA's stricter
comparison accepts, rather than what the model wrote.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import yaml

# The attributes HA's LLM API passes on (its `interesting_attributes`), plus a few that
# answer common questions ("is the heating running?", "is the TV muted?").
ATTRIBUTES = frozenset(
    {
        "temperature",
        "current_temperature",
        "temperature_unit",
        "brightness",
        "humidity",
        "current_humidity",
        "unit_of_measurement",
        "device_class",
        "current_position",
        "percentage",
        "volume_level",
        "is_volume_muted",
        "media_title",
        "media_artist",
        "media_album_name",
        "hvac_action",
    }
)
# HA's LLM API keeps these out of its entity overview: they get tools of their own.
OVERVIEW_SKIPPED_DOMAINS = frozenset({"script", "calendar"})
_APOSTROPHES = dict.fromkeys(map(ord, "'’`´ʼ"), None)


def normalize(text: str) -> str:
    """Fold a name for comparison: case, punctuation and whitespace runs do not count.

    Apostrophes vanish ("Kid's room" = "kids room"); other punctuation and symbols count
    as a space ("living-room" = "living room").
    """
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    spaced = "".join(" " if unicodedata.category(char)[0] in "PSZC" else char for char in folded)
    return " ".join(spaced.split())


@dataclass(frozen=True)
class HomeEntity:
    """One exposed entity as a model may see it (and its entity id, which it must not)."""

    names: tuple[str, ...]  # the friendly name first, then the aliases
    domain: str
    areas: tuple[str, ...]  # the area's name, then its aliases; () when it has none
    floor: str | None
    entity_id: str  # for this program only: never put in front of a model
    state: str
    device_class: str | None = None
    floor_aliases: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    @property
    def name(self) -> str:
        """The name HA shows first (the friendly name)."""
        return self.names[0] if self.names else self.entity_id

    @property
    def area(self) -> str | None:
        """The area's own name, or None."""
        return self.areas[0] if self.areas else None

    def describe(self, *, states: bool = False) -> dict[str, Any]:
        """A mapping for the overview: HA's LLM API keys, never the entity id."""
        info: dict[str, Any] = {"names": ", ".join(self.names), "domain": self.domain}
        if states:
            info["state"] = self.state
        if self.areas:
            info["areas"] = ", ".join(self.areas)
        if self.floor:
            info["floor"] = self.floor
        if states and self.attributes:
            info["attributes"] = dict(self.attributes)
        return info


@dataclass(frozen=True)
class Area:
    """An area from HA's registry, whether or not an exposed entity is in it."""

    name: str
    aliases: tuple[str, ...] = ()
    floor: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


class Home:
    """The exposed entities at one moment; immutable, so a reader never sees half an update."""

    def __init__(
        self,
        entities: Iterable[HomeEntity],
        areas: Iterable[Area] = (),
        floors: Mapping[str, tuple[str, ...]] | None = None,
        device_areas: Mapping[str, str] | None = None,
    ) -> None:
        self.entities: tuple[HomeEntity, ...] = tuple(
            sorted(entities, key=lambda entity: (entity.name.casefold(), entity.entity_id))
        )
        self.areas: tuple[Area, ...] = tuple(areas)
        # floor name -> its aliases
        self.floors: Mapping[str, tuple[str, ...]] = MappingProxyType(dict(floors or {}))
        self._by_id = {entity.entity_id: entity for entity in self.entities}
        # device id -> its area's name: where a satellite (HA passes its device) stands
        self._device_areas: Mapping[str, str] = MappingProxyType(dict(device_areas or {}))

    def __len__(self) -> int:
        return len(self.entities)

    def __repr__(self) -> str:
        return f"<Home {len(self.entities)} entities, {len(self.areas)} areas>"

    def get(self, entity_id: str) -> HomeEntity | None:
        """The entity with this id (for this program; ids are never shown to a model)."""
        return self._by_id.get(entity_id)

    def with_state(self, entity_id: str, state: Mapping[str, Any]) -> Home:
        """A new snapshot where one known entity has a new state (a `state_changed`)."""
        old = self._by_id.get(entity_id)
        if old is None:
            raise KeyError(entity_id)
        new = _with_state(old, state)
        entities = [new if entity is old else entity for entity in self.entities]
        return Home(entities, self.areas, self.floors, self._device_areas)

    def device_area(self, device_id: str | None) -> str | None:
        """The area of a device (a satellite's: "the lights" said there means its room)."""
        return self._device_areas.get(device_id) if device_id else None

    def overview(
        self, entities: Iterable[HomeEntity] | None = None, *, states: bool = False
    ) -> str:
        """YAML of the entities, as HA's LLM API puts it in its prompt; no entity ids.

        Without `states` it is HA's static context (names, domain, areas, and here also the
        floor); with it, also the state and the answering attributes (HA's live context).
        Scripts and calendars are left out of the whole-home overview as HA does.
        """
        if entities is None:
            entities = (e for e in self.entities if e.domain not in OVERVIEW_SKIPPED_DOMAINS)
        listed = [entity.describe(states=states) for entity in entities]
        if not listed:
            return ""
        return yaml.safe_dump(
            listed, allow_unicode=True, default_flow_style=False, sort_keys=False, width=1000
        )

    def match(
        self,
        name: str | None = None,
        area: str | None = None,
        floor: str | None = None,
        domain: str | Collection[str] | None = None,
        device_class: str | Collection[str] | None = None,
    ) -> tuple[HomeEntity, ...]:
        """The entities that fit every filter given (none given: all of them).

        `name` is any of an entity's names, `area` any name of its area, `floor` any name of
        its floor; `domain` and `device_class` one value or several.
        """
        found: Iterable[HomeEntity] = self.entities
        if name is not None:
            wanted = normalize(name)
            found = [e for e in found if any(normalize(n) == wanted for n in e.names)]
        if area is not None:
            wanted = normalize(area)
            found = [e for e in found if any(normalize(n) == wanted for n in e.areas)]
        if floor is not None:
            wanted = normalize(floor)
            found = [
                e
                for e in found
                if e.floor is not None
                and any(normalize(n) == wanted for n in (e.floor, *e.floor_aliases))
            ]
        if domain is not None:
            domains = _folded_set(domain)
            found = [e for e in found if e.domain.casefold() in domains]
        if device_class is not None:
            classes = _folded_set(device_class)
            found = [e for e in found if (e.device_class or "").casefold() in classes]
        return tuple(found)

    def find_area(self, name: str) -> Area | None:
        """The registry's area with this name or alias (it may hold no exposed entity)."""
        wanted = normalize(name)
        return next((a for a in self.areas if any(normalize(n) == wanted for n in a.names)), None)

    def near(self, name: str, limit: int = 3) -> tuple[str, ...]:
        """Entity names close to `name`, best first: the "did you mean" of a miss."""
        return _near(name, (n for e in self.entities for n in e.names), limit)

    def near_area(self, name: str, limit: int = 3) -> tuple[str, ...]:
        """Area names (and aliases) close to `name`, best first."""
        return _near(name, (n for a in self.areas for n in a.names), limit)


def _folded_set(value: str | Collection[str]) -> set[str]:
    values = [value] if isinstance(value, str) else value
    return {v.casefold() for v in values}


def _near(name: str, candidates: Iterable[str], limit: int) -> tuple[str, ...]:
    """Close names by difflib's ratio; a name holding every word asked for also counts.

    "kitchen" is far from "Kitchen Ceiling Light" by ratio alone, yet clearly meant.
    """
    wanted = normalize(name)
    if not wanted or limit <= 0:
        return ()
    words = set(wanted.split())
    scored: dict[str, float] = {}
    for candidate in candidates:
        folded = normalize(candidate)
        ratio = difflib.SequenceMatcher(None, wanted, folded).ratio()
        if words <= set(folded.split()):
            ratio = max(ratio, 0.75)
        if ratio >= 0.6 and ratio > scored.get(candidate, 0.0):
            scored[candidate] = ratio
    ranked = sorted(scored.items(), key=lambda item: (-item[1], item[0].casefold()))
    return tuple(candidate for candidate, _ in ranked[:limit])


def state_name(state: Mapping[str, Any]) -> str:
    """HA's `State.name`: the friendly name, else the object id with spaces."""
    friendly = (state.get("attributes") or {}).get("friendly_name")
    if isinstance(friendly, str) and friendly.strip():
        return friendly.strip()
    return str(state["entity_id"]).split(".", 1)[-1].replace("_", " ")


def ordered_aliases(entries: Iterable[Mapping[str, Any] | None]) -> bool:
    """Whether the registry speaks HA 2026's alias format (entity registry 1.22+).

    Then `aliases` is the whole, ordered list of names, `null` standing for the computed
    name (HA's COMPUTED_NAME, which its migration put first); a list without it means the
    user removed that name. An entry with `null`, or with `next_name_part` (its 1.24
    naming), shows the format; HA 2025.x has neither.
    """
    return any(
        entry is not None and ("next_name_part" in entry or None in (entry.get("aliases") or ()))
        for entry in entries
    )


def entity_names(
    state: Mapping[str, Any], entry: Mapping[str, Any] | None, ordered: bool = False
) -> tuple[str, ...]:
    """The names HA matches an entity by, the friendly name first; no repeats.

    Up to HA 2025.x: the friendly name, then the registry's aliases (a set: sorted here).
    With `ordered` (HA 2026): the aliases in the user's order, `null` replaced by the
    friendly name (HA's computed full name, which the friendly name normally is). An
    entity with no name left still gets its friendly name, to be shown by; HA would not
    match it by name then.
    """
    friendly = state_name(state)
    aliases = list((entry or {}).get("aliases") or [])
    if ordered and entry is not None:
        names = [friendly if alias is None else str(alias) for alias in aliases]
    else:
        names = [friendly, *sorted(str(alias) for alias in aliases if alias is not None)]
    unique: list[str] = []
    for candidate in (n.strip() for n in names):
        if candidate and candidate not in unique:
            unique.append(candidate)
    return tuple(unique) or (friendly,)


def _attributes(state: Mapping[str, Any]) -> Mapping[str, Any]:
    attributes = state.get("attributes") or {}
    kept = {key: value for key, value in attributes.items() if key in ATTRIBUTES}
    brightness = attributes.get("brightness")
    if str(state.get("entity_id", "")).startswith("light.") and isinstance(brightness, int):
        # HA's tools take brightness in percent; the attribute is 0-255 (as HA 2026 adds).
        percent = round(brightness / 255 * 100)
        kept["brightness_pct"] = max(percent, 1) if brightness > 0 else percent
    return MappingProxyType(kept)


def _with_state(entity: HomeEntity, state: Mapping[str, Any]) -> HomeEntity:
    attributes = state.get("attributes") or {}
    device_class = attributes.get("device_class") or entity.device_class
    return HomeEntity(
        names=entity.names,
        domain=entity.domain,
        areas=entity.areas,
        floor=entity.floor,
        floor_aliases=entity.floor_aliases,
        entity_id=entity.entity_id,
        state=str(state.get("state", "")),
        device_class=device_class,
        attributes=_attributes(state),
    )


def build_home(
    states: Mapping[str, Mapping[str, Any]],
    exposed: Collection[str],
    entries: Mapping[str, Mapping[str, Any] | None],
    devices: Mapping[str, Mapping[str, Any]],
    areas: Mapping[str, Mapping[str, Any]],
    floors: Mapping[str, Mapping[str, Any]],
) -> Home:
    """The Home from HA's lists, keyed by id: states by entity id, `entries` the entity
    registry's extended entries (`config/entity_registry/get_entries`), `devices`, `areas`
    and `floors` the registries' list results by device, area and floor id.

    An entity counts when it is exposed and has a state (HA's overview walks the states).
    """
    floor_names = {
        floor_id: (str(f["name"]), tuple(sorted(str(a) for a in f.get("aliases") or ())))
        for floor_id, f in floors.items()
    }

    def area_of(area_id: str | None) -> Mapping[str, Any] | None:
        return areas.get(area_id) if area_id else None

    home_areas = []
    for a in areas.values():
        floor = floor_names.get(a.get("floor_id") or "")
        home_areas.append(
            Area(
                name=str(a["name"]),
                aliases=tuple(sorted(str(x) for x in a.get("aliases") or ())),
                floor=floor[0] if floor else None,
            )
        )

    ordered = ordered_aliases(entries.values())
    entities = []
    for entity_id in exposed:
        state = states.get(entity_id)
        if state is None:
            continue
        entry = entries.get(entity_id)
        area = None
        if entry is not None:
            area = area_of(entry.get("area_id"))
            if area is None:  # none of its own (or a deleted one): its device's
                area = area_of(_device_area(devices, entry.get("device_id")))
        area_names: tuple[str, ...] = ()
        floor: tuple[str, tuple[str, ...]] | None = None
        if area is not None:
            area_names = (
                str(area["name"]),
                *sorted(str(x) for x in area.get("aliases") or ()),
            )
            floor = floor_names.get(area.get("floor_id") or "")
        attributes = state.get("attributes") or {}
        device_class = attributes.get("device_class")
        if device_class is None and entry is not None:
            device_class = entry.get("device_class") or entry.get("original_device_class")
        entities.append(
            HomeEntity(
                names=entity_names(state, entry, ordered),
                domain=entity_id.split(".", 1)[0],
                areas=area_names,
                floor=floor[0] if floor else None,
                floor_aliases=floor[1] if floor else (),
                entity_id=entity_id,
                state=str(state.get("state", "")),
                device_class=str(device_class) if device_class else None,
                attributes=_attributes(state),
            )
        )
    device_areas = {
        device_id: str(area["name"])
        for device_id in devices
        if (area := area_of(_device_area(devices, device_id))) is not None
    }
    return Home(entities, home_areas, dict(floor_names.values()), device_areas)


def _device_area(devices: Mapping[str, Mapping[str, Any]], device_id: str | None) -> str | None:
    """The device's area; a child device without one has its parent's (HA 2026)."""
    device = devices.get(device_id) if device_id else None
    if device is None:
        return None
    if device.get("area_id"):
        return str(device["area_id"])
    parent = devices.get(device.get("parent_device_id") or "")
    return str(parent["area_id"]) if parent and parent.get("area_id") else None
