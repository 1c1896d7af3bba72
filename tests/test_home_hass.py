"""HomeAssistantApi, black box, against tests/ha_standin.py (HA's APIs as 2025.12 and 2026.11
shape them): auth, the exposed home, updates, intents, restarts, timeouts and cleanup."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
import yaml
from ha_standin import TOKEN, HaStandIn

from wyoming_realtime_text.home.hass import (
    HomeAssistantApi,
    HomeAssistantAuthError,
    IntentResult,
    parse_url,
)
from wyoming_realtime_text.home.home import Home, HomeEntity

VERSIONS = ["2025.12.5", "2026.11.0"]
LOGGER = "wyoming_realtime_text.home"
WRONG_TOKEN = "wrong-token-7d1e0b"
FAST = {
    "request_timeout": 2.0,
    "intent_timeout": 2.0,
    "reconnect_delay": 0.05,
    "max_reconnect_delay": 0.2,
    "reload_delay": 0.05,
}


async def furnish(ha: HaStandIn) -> None:
    """A small home: two floors, four areas, devices, exposed and unexposed entities."""
    await ha.add_floor("ground", "Ground Floor", ["downstairs"])
    await ha.add_floor("first", "First Floor")
    await ha.add_area("kitchen", "Kitchen", ["Cooking area"], floor_id="ground")
    await ha.add_area("living", "Living Room", floor_id="ground")
    await ha.add_area("bedroom", "Bedroom", floor_id="first")
    await ha.add_area("garage", "Garage")
    await ha.add_device("hue", "Hue bulb", area_id="kitchen")
    await ha.add_device("tv_box", "TV box", area_id="living")
    # no area of its own: the entity's area comes from its device
    await ha.add_entity("light.kitchen_ceiling", "Kitchen Ceiling", aliases=["Big light"],
                        device_id="hue")  # fmt: skip
    await ha.add_entity("light.bedroom", "Bedroom Lamp", "on", area_id="bedroom",
                        attributes={"brightness": 128})  # fmt: skip
    await ha.add_entity("switch.coffee", "Coffee Machine", aliases=["Espresso"],
                        area_id="kitchen")  # fmt: skip
    await ha.add_entity("sensor.living_temperature", "Living Room Temperature", "21.5",
                        area_id="living", original_device_class="temperature",
                        attributes={"unit_of_measurement": "°C"})  # fmt: skip
    await ha.add_entity("media_player.tv", "TV", device_id="tv_box")
    await ha.add_entity("light.secret", "Secret Light", area_id="bedroom", exposed=False)
    await ha.add_entity("light.porch", "Porch Light", exposed=False,
                        exposed_elsewhere=["cloud.alexa"])  # fmt: skip
    await ha.add_entity("cover.garage_door", "Garage Door", "closed", area_id="garage",
                        original_device_class="garage")  # fmt: skip
    await ha.add_entity("input_boolean.guest", "Guest Mode", registered=False)
    await ha.add_entity("script.goodnight", "Goodnight")


EXPOSED = {
    "light.kitchen_ceiling",
    "light.bedroom",
    "switch.coffee",
    "sensor.living_temperature",
    "media_player.tv",
    "cover.garage_door",
    "input_boolean.guest",
    "script.goodnight",
}


@pytest_asyncio.fixture(params=VERSIONS)
async def ha(request: pytest.FixtureRequest) -> AsyncIterator[HaStandIn]:
    async with HaStandIn(version=request.param) as standin:
        await furnish(standin)
        yield standin


@pytest_asyncio.fixture
async def api(ha: HaStandIn) -> AsyncIterator[HomeAssistantApi]:
    client = HomeAssistantApi(ha.url, TOKEN, **FAST)
    await client.start()
    yield client
    await client.close()


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Everything the client logs, down to DEBUG, is seen by the token checks."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)


async def eventually(check: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def home(api: HomeAssistantApi) -> Home:
    snapshot = api.home
    assert snapshot is not None
    return snapshot


def entity(api: HomeAssistantApi, entity_id: str) -> HomeEntity:
    found = home(api).get(entity_id)
    assert found is not None, entity_id
    return found


def snapshot_entity(snapshot: Home, entity_id: str) -> HomeEntity:
    found = snapshot.get(entity_id)
    assert found is not None, entity_id
    return found


def entity_ids(api: HomeAssistantApi) -> set[str]:
    return {e.entity_id for e in home(api).entities}


async def only_this_task_left(seconds: float = 2.0) -> None:
    """No task but the test's own (the stand-in's per-connection ones end with them)."""
    me = asyncio.current_task()
    await eventually(lambda: asyncio.all_tasks() == {me}, seconds)


# --- connecting -------------------------------------------------------------------------


async def test_connects_and_loads_only_exposed_entities(
    ha: HaStandIn, api: HomeAssistantApi
) -> None:
    assert api.connected
    assert api.ha_version == ha.version
    # light.secret is exposed to no assistant, light.porch to Alexa only: not to Assist
    assert entity_ids(api) == EXPOSED
    subscribed = {c.get("event_type") for c in ha.commands if c["type"] == "subscribe_events"}
    assert subscribed == {
        "entity_registry_updated",
        "device_registry_updated",
        "area_registry_updated",
        "floor_registry_updated",
        "state_changed",
    }


async def test_refused_token_is_a_clear_error_without_the_token(
    ha: HaStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    client = HomeAssistantApi(ha.url, WRONG_TOKEN, **FAST)
    with pytest.raises(HomeAssistantAuthError) as refused:
        await client.start()
    message = str(refused.value)
    assert "refused the access token" in message
    assert "Invalid access token or password" in message  # HA's own reason
    assert WRONG_TOKEN not in message and WRONG_TOKEN not in caplog.text
    assert TOKEN not in caplog.text
    assert ha.auth_attempts == 1  # no retrying a token that HA refused
    assert client.home is None
    await only_this_task_left()
    assert ha.connections == 0


async def test_a_user_who_is_not_admin_is_told_why(caplog: pytest.LogCaptureFixture) -> None:
    async with HaStandIn(admin=False) as ha:
        await furnish(ha)
        client = HomeAssistantApi(ha.url, TOKEN, **FAST)
        with pytest.raises(HomeAssistantAuthError, match="not an administrator"):
            await client.start()
        await only_this_task_left()
    assert TOKEN not in caplog.text


async def test_unreachable_home_assistant_does_not_fail_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with HaStandIn() as ha:
        url = ha.url  # a port that nothing listens on once the stand-in stops
    client = HomeAssistantApi(url, TOKEN, **FAST)
    began = time.monotonic()
    await client.start()
    assert time.monotonic() - began < 2.0
    assert client.home is None and not client.connected
    assert not await client.wait_ready(0.3)
    await client.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot reach Home Assistant" in warnings[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)
    await only_this_task_left()


# --- the home ---------------------------------------------------------------------------


async def test_names_aliases_areas_and_floors(ha: HaStandIn, api: HomeAssistantApi) -> None:
    snapshot = home(api)
    ceiling = snapshot.get("light.kitchen_ceiling")
    assert ceiling is not None
    assert ceiling.names == ("Kitchen Ceiling", "Big light")  # friendly name first
    assert ceiling.areas == ("Kitchen", "Cooking area")  # from its device: none of its own
    assert ceiling.floor == "Ground Floor" and ceiling.floor_aliases == ("downstairs",)
    tv = snapshot.get("media_player.tv")
    assert tv is not None and tv.areas == ("Living Room",)
    guest = snapshot.get("input_boolean.guest")  # no registry entry: the state's name only
    assert guest is not None and guest.names == ("Guest Mode",) and guest.areas == ()
    garage = snapshot.get("cover.garage_door")
    assert garage is not None and garage.floor is None and garage.device_class == "garage"
    sensor = snapshot.get("sensor.living_temperature")
    assert sensor is not None
    assert sensor.state == "21.5" and sensor.device_class == "temperature"
    assert sensor.attributes["unit_of_measurement"] == "°C"
    lamp = snapshot.get("light.bedroom")
    assert lamp is not None and lamp.attributes["brightness_pct"] == 50
    assert [a.name for a in snapshot.areas] == ["Kitchen", "Living Room", "Bedroom", "Garage"]


async def test_a_child_device_takes_its_parents_area() -> None:
    """HA 2026's child devices list `parent_device_id` and no area of their own."""
    async with HaStandIn(version="2026.11.0") as ha:
        await furnish(ha)
        await ha.add_device("tv_remote", "TV remote", parent_device_id="tv_box")
        await ha.add_entity("remote.tv", "TV Remote", "on", device_id="tv_remote")
        client = HomeAssistantApi(ha.url, TOKEN, **FAST)
        await client.start()
        try:
            remote = home(client).get("remote.tv")
            assert remote is not None and remote.areas == ("Living Room",)
        finally:
            await client.close()


async def test_2026_aliases_keep_their_order_and_the_computed_name() -> None:
    """In 2026 `aliases` is ordered, null for the computed name; one can put it last."""
    async with HaStandIn(version="2026.11.0") as ha:
        await ha.add_entity("light.desk", "Desk Lamp", aliases=["Study light"])
        ha.entities["light.desk"].computed_name_alias = False  # the user removed it
        await ha.add_entity("light.hall", "Hall Light", aliases=["Corridor"])
        client = HomeAssistantApi(ha.url, TOKEN, **FAST)
        await client.start()
        try:
            snapshot = home(client)
            assert snapshot_entity(snapshot, "light.hall").names == ("Hall Light", "Corridor")
            assert snapshot_entity(snapshot, "light.desk").names == ("Study light",)
        finally:
            await client.close()


async def test_overview_is_yaml_of_names_without_entity_ids(
    ha: HaStandIn, api: HomeAssistantApi
) -> None:
    snapshot = home(api)
    for text in (snapshot.overview(), snapshot.overview(states=True)):
        for entity_id in ha.entities:
            assert entity_id not in text
        assert not re.search(r"\b(light|switch|sensor|media_player|cover|input_boolean)\.", text)
    listed = yaml.safe_load(snapshot.overview())
    assert {"names": "Kitchen Ceiling, Big light", "domain": "light",
            "areas": "Kitchen, Cooking area", "floor": "Ground Floor"} in listed  # fmt: skip
    assert all(set(item) <= {"names", "domain", "areas", "floor"} for item in listed)
    assert "Goodnight" not in snapshot.overview()  # scripts: a tool of their own in HA
    assert snapshot.match(domain="script")  # yet the snapshot has it
    with_states = yaml.safe_load(snapshot.overview(states=True))
    sensor = next(i for i in with_states if i["names"] == "Living Room Temperature")
    assert sensor["state"] == "21.5" and sensor["attributes"]["unit_of_measurement"] == "°C"
    lamp = snapshot.match(name="Bedroom Lamp")
    assert yaml.safe_load(snapshot.overview(lamp))[0]["names"] == "Bedroom Lamp"


async def test_match_like_ha_and_near_for_did_you_mean(api: HomeAssistantApi) -> None:
    snapshot = home(api)

    def names(found: tuple) -> list[str]:
        return [e.name for e in found]

    assert names(snapshot.match(name="kitchen-ceiling")) == ["Kitchen Ceiling"]
    assert names(snapshot.match(name="  BIG  light ")) == ["Kitchen Ceiling"]
    assert names(snapshot.match(name="espresso")) == ["Coffee Machine"]
    assert names(snapshot.match(area="cooking area", domain="light")) == ["Kitchen Ceiling"]
    assert names(snapshot.match(area="Kitchen")) == ["Coffee Machine", "Kitchen Ceiling"]
    assert names(snapshot.match(floor="downstairs", domain=["light", "media_player"])) == [
        "Kitchen Ceiling",
        "TV",
    ]
    assert names(snapshot.match(device_class="temperature")) == ["Living Room Temperature"]
    assert snapshot.match(name="Secret Light") == ()  # not exposed
    assert snapshot.match(name="Kitchen Ceiling", area="Bedroom") == ()
    assert snapshot.near("kitchen ceiling light")[0] == "Kitchen Ceiling"
    assert snapshot.near("coffee")[0] == "Coffee Machine"
    assert snapshot.near("zzzz") == ()
    assert snapshot.near_area("bedrom") == ("Bedroom",)
    assert snapshot.find_area("garage") is not None and snapshot.find_area("attic") is None


# --- keeping current --------------------------------------------------------------------


async def test_registry_events_update_the_home(ha: HaStandIn, api: HomeAssistantApi) -> None:
    await ha.add_entity("light.hall", "Hall Light", area_id="living")
    await eventually(lambda: "light.hall" in entity_ids(api))
    assert entity(api, "light.hall").areas == ("Living Room",)

    await ha.update_entity("light.hall", aliases=["Corridor"])
    await eventually(lambda: home(api).match(name="corridor") != ())

    await ha.update_area("living", aliases=["Lounge"])
    await eventually(lambda: home(api).match(area="lounge") != ())

    await ha.update_device("hue", area_id="bedroom")  # the ceiling light follows its device
    await eventually(lambda: entity(api, "light.kitchen_ceiling").areas == ("Bedroom",))

    await ha.update_entity("switch.coffee", exposed=False)
    await eventually(lambda: "switch.coffee" not in entity_ids(api))

    await ha.remove_entity("media_player.tv")
    await eventually(lambda: "media_player.tv" not in entity_ids(api))


async def test_state_changes_keep_states_current(ha: HaStandIn, api: HomeAssistantApi) -> None:
    before = home(api)
    await ha.set_state("sensor.living_temperature", "23.0", unit_of_measurement="°C")
    await eventually(lambda: entity(api, "sensor.living_temperature").state == "23.0")
    assert snapshot_entity(before, "sensor.living_temperature").state == "21.5"
    commands = len(ha.commands)
    await ha.set_state("light.secret", "on")  # not exposed: stays out
    await ha.set_state("light.bedroom", "off", brightness=None)
    await eventually(lambda: entity(api, "light.bedroom").state == "off")
    assert "light.secret" not in entity_ids(api)
    assert len(ha.commands) == commands  # states come with the events: no re-reading


async def test_reconnects_after_home_assistant_restarts(
    ha: HaStandIn, api: HomeAssistantApi, caplog: pytest.LogCaptureFixture
) -> None:
    before = home(api)
    await ha.stop()  # HA restarting: its WebSockets close, nothing listens for a while
    await eventually(lambda: not api.connected)
    assert api.home is before  # the last snapshot stays in use meanwhile
    ha.entities["switch.coffee"].state = "on"  # changed while the client was away
    await asyncio.sleep(0.5)  # several reconnect attempts fail
    await ha.start()  # on the same port
    await eventually(lambda: api.connected, seconds=5)
    assert ha.auth_attempts == 2
    assert entity(api, "switch.coffee").state == "on"
    await ha.set_state("light.bedroom", "off")  # and it follows events again
    await eventually(lambda: entity(api, "light.bedroom").state == "off")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "connection lost" in warnings[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)  # no traceback
    assert TOKEN not in caplog.text


async def test_reconnects_when_only_the_websocket_drops(
    ha: HaStandIn, api: HomeAssistantApi
) -> None:
    await ha.drop_connections()  # e.g. the Supervisor's proxy restarting
    await eventually(lambda: ha.auth_attempts == 2 and api.connected, seconds=5)
    await ha.set_state("light.bedroom", "off")
    await eventually(lambda: entity(api, "light.bedroom").state == "off")
    assert ha.connections == 1


async def test_a_state_change_right_behind_get_states_is_not_lost(ha: HaStandIn) -> None:
    """The event comes after get_states' answer, before the snapshot is built from it."""
    ha.after_answer["get_states"] = lambda: ha.set_state("sensor.living_temperature", "25.0")
    client = HomeAssistantApi(ha.url, TOKEN, **FAST)
    await client.start()
    try:
        assert "get_states" not in ha.after_answer  # the hook ran
        assert entity(client, "sensor.living_temperature").state == "25.0"
    finally:
        await client.close()


async def test_refresh_reads_the_lists_again(ha: HaStandIn, api: HomeAssistantApi) -> None:
    ha.areas["garage"].aliases = ["Carport"]  # changed without an event
    assert home(api).match(area="carport") == ()
    refreshed = await api.refresh()
    assert refreshed is api.home
    assert [e.name for e in refreshed.match(area="carport")] == ["Garage Door"]


async def test_an_ha_without_floors() -> None:
    """Floors came with HA 2024.4; before, the command is unknown and there are none."""
    async with HaStandIn(version="2024.3.3") as ha:
        await furnish(ha)
        client = HomeAssistantApi(ha.url, TOKEN, **FAST)
        await client.start()
        try:
            assert entity(client, "light.kitchen_ceiling").areas == ("Kitchen", "Cooking area")
            assert entity(client, "light.kitchen_ceiling").floor is None
            assert client.connected
        finally:
            await client.close()
    assert any(c["type"] == "config/floor_registry/list" for c in ha.commands)


async def test_a_stuck_home_assistant_is_left_within_the_timeout(ha: HaStandIn) -> None:
    ha.stalled_commands = {"get_states"}
    client = HomeAssistantApi(ha.url, TOKEN, **{**FAST, "request_timeout": 0.3})
    began = time.monotonic()
    await client.start()
    try:
        assert time.monotonic() - began < 1.5
        assert client.home is None and not client.connected
        ha.stalled_commands = set()  # HA answers again: the client gets there by itself
        assert await client.wait_ready(3.0)
        assert entity_ids(client) == EXPOSED
    finally:
        await client.close()


async def test_close_leaves_no_task_or_connection(ha: HaStandIn) -> None:
    client = HomeAssistantApi(ha.url, TOKEN, **FAST)
    await client.start()
    assert ha.connections == 1
    result = await client.handle_intent("HassTurnOn", {"name": "Coffee Machine"})
    assert result.ok
    await client.close()
    await only_this_task_left()
    assert ha.connections == 0
    assert not client.connected


async def test_close_during_a_reconnect_backoff(ha: HaStandIn) -> None:
    client = HomeAssistantApi(ha.url, TOKEN, **{**FAST, "reconnect_delay": 5.0})
    await client.start()
    await ha.stop()
    await eventually(lambda: not client.connected)
    began = time.monotonic()
    await client.close()
    assert time.monotonic() - began < 1.0
    await only_this_task_left()
    await ha.start()  # for the fixture's exit


# --- intents ----------------------------------------------------------------------------


async def test_intent_request_shape_and_result(ha: HaStandIn, api: HomeAssistantApi) -> None:
    result = await api.handle_intent(
        "HassTurnOn", {"name": "Kitchen Ceiling"}, "en", device_id="dev-satellite"
    )
    body = ha.intent_requests[-1].body
    if ha.version.startswith("2026"):  # the view takes language, assistant, device_id
        assert body == {
            "name": "HassTurnOn",
            "data": {"name": "Kitchen Ceiling"},
            "assistant": "conversation",
            "language": "en",
            "device_id": "dev-satellite",
        }
    else:  # only name and data: anything else is HTTP 400
        assert body == {"name": "HassTurnOn", "data": {"name": "Kitchen Ceiling"}}
    assert len(ha.intent_requests) == 1
    # HA's truth: HassTurnOn sets no speech (the default agent's templates speak it)
    assert result == IntentResult(
        ok=True, speech="", response_type="action_done", success=("Kitchen Ceiling",),
        status=200,
    )  # fmt: skip
    await eventually(lambda: entity(api, "light.kitchen_ceiling").state == "on")


async def test_an_area_and_brightness(ha: HaStandIn, api: HomeAssistantApi) -> None:
    result = await api.handle_intent(
        "HassLightSet", {"area": "Bedroom", "domain": "light", "brightness": 20}
    )
    assert result.ok and result.success[0] == "Bedroom"
    assert "Bedroom Lamp" in result.success
    await eventually(lambda: entity(api, "light.bedroom").attributes["brightness_pct"] == 20)
    off = await api.handle_intent("HassTurnOff", {"area": "cooking area"})
    assert off.ok and set(off.success) == {"Kitchen", "Kitchen Ceiling", "Coffee Machine"}


async def test_a_failed_match_reads_the_same_on_both_versions(
    ha: HaStandIn, api: HomeAssistantApi
) -> None:
    result = await api.handle_intent("HassTurnOn", {"name": "Jacuzzi"})
    assert not result.ok
    assert result.error_code == "failed_to_handle"
    assert result.error_message == "No entities matched the name (given name 'Jacuzzi')"
    assert "MatchFailedError" not in result.speech
    area = await api.handle_intent("HassTurnOff", {"area": "Attic"})
    assert not area.ok and area.error_message == "The area does not exist (given area 'Attic')"
    # what HA answered differs: 2025 says it as action_done speech, 2026 as an error
    expected_type = "error" if ha.version.startswith("2026") else "action_done"
    assert result.response_type == expected_type


async def test_exposure_counts_in_intents_only_where_ha_is_told_the_assistant(
    ha: HaStandIn, api: HomeAssistantApi
) -> None:
    result = await api.handle_intent("HassTurnOn", {"name": "Secret Light"})
    assert api.counts_exposure is ha.version.startswith("2026")  # what callers decide by
    if ha.version.startswith("2026"):
        assert not result.ok
        assert result.error_message is not None and "not exposed" not in result.error_message
        assert result.error_message.startswith("No matching entities are exposed")
        assert ha.entities["light.secret"].state == "off"
    else:  # HA 2025's REST view acts on any entity: callers must pick from `home`
        assert result.ok and ha.entities["light.secret"].state == "on"


async def test_entity_ids_in_ha_errors_become_names(ha: HaStandIn, api: HomeAssistantApi) -> None:
    result = await api.handle_intent("HassTurnOn", {"name": "Living Room Temperature"})
    assert not result.ok and result.error_code == "failed_to_handle"
    assert result.error_message == "Failed to call turn_on for: ['Living Room Temperature']"
    assert "sensor." not in result.speech


async def test_unknown_intent_and_bad_slots_are_ha_500s(
    ha: HaStandIn, api: HomeAssistantApi
) -> None:
    unknown = await api.handle_intent("HassTeleport", {"name": "TV"})
    assert (unknown.ok, unknown.error_code, unknown.status) == (False, "server_error", 500)
    assert "HassTeleport" in (unknown.error_message or "")
    no_target = await api.handle_intent("HassTurnOn", {})
    assert (no_target.error_code, no_target.status) == ("server_error", 500)
    brightness = await api.handle_intent(
        "HassLightSet", {"name": "Bedroom Lamp", "brightness": 300}
    )
    assert brightness.error_code == "server_error"


async def test_a_failed_match_is_an_http_500_before_2025_10() -> None:
    """HA up to 2025.9 lets MatchFailedError out of its intent view (measured on 2025.4.4;
    tests/test_real_ha_api.py compares the stand-in with real HA): said as such."""
    async with HaStandIn(version="2025.4.4") as ha:
        await furnish(ha)
        client = HomeAssistantApi(ha.url, TOKEN, **FAST)
        await client.start()
        try:
            missing = await client.handle_intent("HassTurnOn", {"name": "spaceship"})
        finally:
            await client.close()
    assert (missing.ok, missing.error_code, missing.status) == (False, "server_error", 500)
    assert "nothing matched" in (missing.error_message or "")


async def test_http_401_is_a_clear_error_without_the_token(
    ha: HaStandIn, api: HomeAssistantApi, caplog: pytest.LogCaptureFixture
) -> None:
    ha.token = "revoked-in-the-meantime"
    result = await api.handle_intent("HassTurnOn", {"name": "TV"})
    assert (result.ok, result.error_code, result.status) == (False, "unauthorized", 401)
    assert "refused the access token" in (result.error_message or "")
    assert TOKEN not in (result.error_message or "") and TOKEN not in caplog.text
    assert ha.intent_requests[-1].authorized is False
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1


async def test_intent_timeout_is_bounded(ha: HaStandIn) -> None:
    ha.intent_delay = 5.0
    client = HomeAssistantApi(ha.url, TOKEN, **{**FAST, "intent_timeout": 0.3})
    await client.start()
    try:
        began = time.monotonic()
        result = await client.handle_intent("HassTurnOn", {"name": "TV"})
        assert time.monotonic() - began < 1.0
        assert (result.ok, result.error_code, result.status) == (False, "timeout", None)
    finally:
        await client.close()


async def test_falls_back_when_the_view_takes_name_and_data_only() -> None:
    """An HA whose version says 2026.5 but whose view is the old one: 400, then plain."""
    async with HaStandIn(version="2025.12.5") as ha:
        ha.advertised_version = "2026.5.0.dev0"
        await furnish(ha)
        client = HomeAssistantApi(ha.url, TOKEN, **FAST)
        await client.start()
        try:
            first = await client.handle_intent("HassTurnOn", {"name": "TV"}, "en")
            second = await client.handle_intent("HassTurnOff", {"name": "TV"}, "en")
        finally:
            await client.close()
    assert first.ok and second.ok
    assert not client.counts_exposure  # the old view: exposure does not count
    bodies = [r.body for r in ha.intent_requests]
    assert [r.status for r in ha.intent_requests] == [400, 200, 200]
    assert bodies[0]["assistant"] == "conversation"
    assert bodies[1] == {"name": "HassTurnOn", "data": {"name": "TV"}}
    assert bodies[2] == {"name": "HassTurnOff", "data": {"name": "TV"}}


async def test_handle_intent_without_home_assistant_running() -> None:
    async with HaStandIn() as ha:
        client = HomeAssistantApi(ha.url, TOKEN, **FAST)
        await client.start()
    try:
        result = await client.handle_intent("HassTurnOn", {"name": "TV"})
        assert (result.ok, result.error_code) == (False, "unreachable")
        assert TOKEN not in (result.error_message or "")
    finally:
        await client.close()


# --- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "api", "websocket"),
    [
        ("http://homeassistant.local:8123", "http://homeassistant.local:8123/api/intent/handle",
         "ws://homeassistant.local:8123/api/websocket"),
        ("https://ha.example.org/", "https://ha.example.org/api/intent/handle",
         "wss://ha.example.org/api/websocket"),
        ("http://10.0.0.2:8123/api/", "http://10.0.0.2:8123/api/intent/handle",
         "ws://10.0.0.2:8123/api/websocket"),
        ("http://supervisor/core", "http://supervisor/core/api/intent/handle",
         "ws://supervisor/core/websocket"),
    ],
)  # fmt: skip
def test_urls(url: str, api: str, websocket: str) -> None:
    urls = parse_url(url)
    assert (urls.api("intent/handle"), urls.websocket) == (api, websocket)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "empty"),
        ("ftp://ha.local", "http:// or https://"),
        ("homeassistant.local:8123", "http:// or https://"),
        ("ws://ha.local:8123", "http:// or https://"),
        ("http://", "no host"),
        ("http://ha.local:99999", "invalid port"),
        ("http://me:s3cret@ha.local", "must not hold a user or password"),
        ("http://ha.local/?x=1", "query"),
        ("http://supervisor", "http://supervisor/core"),
    ],
)
def test_bad_urls_are_clear_value_errors(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)) as bad:
        HomeAssistantApi(url, TOKEN)
    assert "s3cret" not in str(bad.value)


def test_an_empty_token_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="token is empty"):
        HomeAssistantApi("http://ha.local:8123", "  ")
