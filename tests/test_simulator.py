"""The simulated Realtime server, driven by plain websockets clients (no project client)."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import pytest
from sim_client import (
    AUDIO_DELTA,
    DIALECTS,
    FORUM_INPUT,
    FORUM_TRANSCRIPT,
    MODEL,
    TEXT_DELTA,
    TEXT_ONLY,
    TRANSCRIPT_DELTA,
    WITH_TRANSCRIPTION,
    assert_sdk_valid,
    client,
    eventually,
    pcm,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wyoming_realtime_text.simulator import RealtimeSimulator, Scenario

pytestmark = pytest.mark.timeout(15)


@pytest.fixture
async def sim() -> AsyncIterator[RealtimeSimulator]:
    # A compatible server that still serves beta (api.openai.com refuses it: see below).
    async with RealtimeSimulator(serve_beta=True) as server:
        yield server
    assert_sdk_valid(
        server.connections
    )  # whatever the test did, the simulator spoke the SDK's events


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_session_created_has_dialect_defaults(sim: RealtimeSimulator, dialect: str) -> None:
    async with client(sim, dialect, model=MODEL[dialect]) as c:
        session = c.events[0]["session"]
        conn = sim.connections[0]
        assert conn.dialect == dialect
        assert conn.query == {"model": MODEL[dialect]}
        assert conn.headers["Authorization"] == "Bearer sk-test"
        assert conn.session == session
        assert session["model"] == MODEL[dialect] and session["id"].startswith("sess_")
        vad = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300}
        if dialect == "beta":
            assert sorted(session["modalities"]) == ["audio", "text"]
            assert session["input_audio_format"] == "pcm16"
            assert session["input_audio_transcription"] is None
            assert session["voice"] == "alloy"
            turn = session["turn_detection"]
        else:
            assert session["type"] == "realtime" and session["object"] == "realtime.session"
            assert session["output_modalities"] == ["audio"]
            audio_in = session["audio"]["input"]
            assert audio_in["format"] == {"type": "audio/pcm", "rate": 24000}
            assert audio_in["transcription"] is None
            assert session["audio"]["output"]["voice"] == "alloy"
            turn = audio_in["turn_detection"]
        assert turn.items() >= vad.items() and turn["silence_duration_ms"] == 200


@pytest.mark.parametrize(
    ("dialect", "update", "param"),
    [
        ("beta", TEXT_ONLY["ga"], "session.type"),
        ("ga", {"type": "realtime", "modalities": ["text"]}, "session.modalities"),
        ("ga", {"type": "realtime", "audio": {"input": {"bogus": 1}}}, "session.audio.input.bogus"),
    ],
)
async def test_wrong_dialect_update_is_rejected_and_audio_follows(
    sim: RealtimeSimulator, dialect: str, update: dict[str, Any], param: str
) -> None:
    async with client(sim, dialect) as c:
        defaults = sim.connections[0].session
        await c.send("session.update", session=update, event_id="evt_client_1")
        error = await c.recv()
        assert error["type"] == "error" and error["event_id"].startswith("event_")
        assert error["error"] == {
            "type": "invalid_request_error",
            "code": "unknown_parameter",
            "message": f"Unknown parameter: '{param}'.",
            "param": param,
            "event_id": "evt_client_1",
        }
        assert sim.connections[0].session == defaults  # the whole update was dropped
        await c.say("hello")
        await c.send("response.create")
        await c.until("response.done")
        types = c.types()
        assert AUDIO_DELTA[dialect] in types and TRANSCRIPT_DELTA[dialect] in types
        assert TEXT_DELTA[dialect] not in types


async def test_ga_update_without_type_is_rejected(sim: RealtimeSimulator) -> None:
    async with client(sim, "ga") as c:
        await c.send("session.update", session=TEXT_ONLY["beta"])
        error = (await c.recv())["error"]
        assert error["code"] == "missing_required_parameter"
        assert error["message"] == "Missing required parameter: 'session.type'."
        await c.send(
            "session.update", session={"type": "realtime", "output_modalities": ["text", "audio"]}
        )
        assert (await c.recv())["error"]["code"] == "invalid_value"
        assert sim.connections[0].session["output_modalities"] == ["audio"]


async def test_ga_reasoning_parallel_tool_calls_and_transcription_languages(
    sim: RealtimeSimulator,
) -> None:
    """What gpt-realtime-2 sessions and gpt-transcribe take: echoed, and the languages heard."""
    transcription = {"model": "gpt-transcribe", "languages": ["de", "en"], "keywords": ["Ada"]}
    update = {
        "type": "realtime",
        "reasoning": {"effort": "xhigh"},
        "parallel_tool_calls": False,
        "audio": {"input": {"transcription": transcription}},
    }
    async with client(sim, "ga") as c:
        session = await c.update(update)
        assert session["reasoning"] == {"effort": "xhigh"}
        assert session["parallel_tool_calls"] is False
        assert session["audio"]["input"]["transcription"].items() >= transcription.items()
        await c.append(pcm(200))
        await c.send("input_audio_buffer.commit")
        done = await c.until("conversation.item.input_audio_transcription.completed")
        assert done["languages"] == [{"code": "de"}] and done["usage"]["type"] == "tokens"
        await c.send("session.update", session={"type": "realtime", "reasoning": {"effort": "max"}})
        error = (await c.until("error"))["error"]
        assert (error["code"], error["param"]) == ("invalid_value", "session.reasoning.effort")
        assert "'xhigh'" in error["message"]


async def test_beta_client_secret_is_taken_and_not_shown_back(sim: RealtimeSimulator) -> None:
    secret = {"expires_after": {"anchor": "created_at", "seconds": 600}}
    async with client(sim, "beta") as c:
        session = await c.update({"client_secret": secret, "modalities": ["text"]})
        assert "client_secret" not in session and session["modalities"] == ["text"]


@pytest.mark.parametrize(
    ("dialect", "update", "code", "param"),
    [
        ("ga", {"max_output_tokens": 5000}, "integer_above_max_value", "session.max_output_tokens"),
        ("beta", {"temperature": 0.1}, "decimal_below_min_value", "session.temperature"),
        ("beta", {"instructions": 7}, "invalid_type", "session.instructions"),
        (
            "ga",
            {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "threshold": 0.5}}}},
            "unknown_parameter",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            "ga",
            {"audio": {"input": {"transcription": {"model": "whisper-1", "bogus": 1}}}},
            "unknown_parameter",
            "session.audio.input.transcription.bogus",
        ),
    ],
)
async def test_values_the_api_refuses(
    sim: RealtimeSimulator, dialect: str, update: dict[str, Any], code: str, param: str
) -> None:
    session = {**update, "type": "realtime"} if dialect == "ga" else update
    async with client(sim, dialect) as c:
        await c.send("session.update", session=session)
        error = (await c.recv())["error"]
        assert (error["code"], error["param"]) == (code, param), error


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_output_audio_buffer_clear_is_taken_and_changes_nothing(
    sim: RealtimeSimulator, dialect: str
) -> None:
    async with client(sim, dialect) as c:
        await c.send("output_audio_buffer.clear", event_id="evt_out")
        assert await c.nothing_for(0.2)  # over WebSocket there is no output buffer to clear


async def test_cancel_names_the_response_it_means(sim: RealtimeSimulator) -> None:
    sim.scenario = Scenario(silent=True)
    async with client(sim, "ga") as c:
        await c.send("response.create")
        created = await c.until("response.created")
        await c.send("response.cancel", response_id="resp_another")
        assert (await c.recv())["error"]["code"] == "response_cancel_not_active"
        await c.send("response.cancel", response_id=created["response"]["id"])
        assert (await c.until("response.done"))["response"]["status"] == "cancelled"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_text_only_is_obeyed(sim: RealtimeSimulator, dialect: str) -> None:
    async with client(sim, dialect) as c:
        session = await c.update(TEXT_ONLY[dialect])
        assert session[{"beta": "modalities", "ga": "output_modalities"}[dialect]] == ["text"]
        await c.say("what time is it")
        await c.send("response.create")
        done = await c.until("response.done")
        assert not [t for t in c.types() if "audio" in t]
        text = "".join(e["delta"] for e in c.of(TEXT_DELTA[dialect]))
        assert "what time is it" in text and len(c.of(TEXT_DELTA[dialect])) > 1
        assert c.of("response.content_part.added")[0]["part"]["type"] == "text"
        content = done["response"]["output"][0]["content"][0]
        assert content == {"type": {"beta": "text", "ga": "output_text"}[dialect], "text": text}
        assert done["response"]["status"] == "completed"


async def test_short_commit_is_rejected_and_long_commit_recorded(sim: RealtimeSimulator) -> None:
    async with client(sim, "beta") as c:
        await c.append(pcm(99))
        await c.send("input_audio_buffer.commit")
        assert (await c.recv())["error"]["code"] == "input_audio_buffer_commit_empty"
        assert sim.connections[0].commits == []
        await c.send("input_audio_buffer.clear")
        assert (await c.recv())["type"] == "input_audio_buffer.cleared"
        first, second = pcm(60), pcm(80)[::-1]
        await c.append(first)
        await c.append(second)
        await c.send("input_audio_buffer.commit")
        committed = await c.recv()
        assert committed["type"] == "input_audio_buffer.committed"
        created = await c.recv()
        assert created["type"] == "conversation.item.created"
        assert created["item"]["id"] == committed["item_id"]
        assert created["item"]["content"] == [{"type": "input_audio", "transcript": None}]
        assert sim.connections[0].commits == [first + second]
        assert await c.nothing_for(0.2)  # no transcription configured: none comes


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_transcription_arrives_for_the_committed_item(
    sim: RealtimeSimulator, dialect: str
) -> None:
    sim.scenario = Scenario(transcript=lambda audio: f"heard {len(audio)} bytes")
    async with client(sim, dialect) as c:
        await c.update(WITH_TRANSCRIPTION[dialect])
        await c.append(pcm(200))
        await c.send("input_audio_buffer.commit")
        committed = await c.until("input_audio_buffer.committed")
        done = await c.until("conversation.item.input_audio_transcription.completed")
        assert done["transcript"] == "heard 9600 bytes"
        assert done["item_id"] == committed["item_id"] and done["content_index"] == 0
        deltas = c.of("conversation.item.input_audio_transcription.delta")
        assert "".join(d["delta"] for d in deltas) == "heard 9600 bytes"
        if dialect == "ga":
            at = c.types().index("input_audio_buffer.committed")
            assert c.types()[at + 1 : at + 3] == [
                "conversation.item.added",
                "conversation.item.done",
            ]


async def test_transcription_failure(sim: RealtimeSimulator) -> None:
    sim.scenario = Scenario(transcription_fails=True)
    async with client(sim, "ga") as c:
        await c.update(WITH_TRANSCRIPTION["ga"])
        await c.append(pcm(150))
        await c.send("input_audio_buffer.commit")
        failed = await c.until("conversation.item.input_audio_transcription.failed")
        assert failed["error"]["type"] and failed["item_id"].startswith("item_")
        assert not c.of("conversation.item.input_audio_transcription.completed")


async def test_transcription_is_independent_of_the_response(sim: RealtimeSimulator) -> None:
    """Late transcription lands after response.done; early one before the first delta."""
    async with client(sim, "ga") as c:
        await c.update({**WITH_TRANSCRIPTION["ga"], "output_modalities": ["text"]})
        for late in (True, False):
            sim.scenario = Scenario(
                transcription_delay=0.3 if late else 0.0, first_token_delay=0.0 if late else 0.3
            )
            c.events.clear()
            await c.append(pcm(150))
            await c.send("input_audio_buffer.commit")
            await c.send("response.create")
            await c.until("response.done")
            if late:
                await c.until("conversation.item.input_audio_transcription.completed")
            types = c.types()
            done_at = types.index("conversation.item.input_audio_transcription.completed")
            first_delta = types.index(TEXT_DELTA["ga"])
            assert (done_at > types.index("response.done")) is late
            assert (done_at < first_delta) is not late


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_response_create_overrides_modalities(sim: RealtimeSimulator, dialect: str) -> None:
    key = {"beta": "modalities", "ga": "output_modalities"}[dialect]
    async with client(sim, dialect) as c:
        await c.say("hi")
        await c.send("response.create", response={key: ["text"]})
        done = await c.until("response.done")
        assert c.of(TEXT_DELTA[dialect]) and not c.of(AUDIO_DELTA[dialect])
        assert done["response"][key] == ["text"]
        wrong = {"beta": "output_modalities", "ga": "modalities"}[dialect]
        await c.send("response.create", response={wrong: ["text"]})
        error = (await c.until("error"))["error"]
        assert (error["code"], error["param"]) == ("unknown_parameter", f"response.{wrong}")
        assert await c.nothing_for(0.2)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_audio_despite_text(sim: RealtimeSimulator, dialect: str) -> None:
    sim.scenario = Scenario(mode="audio_despite_text", reply="Sure, the light is on now.")
    async with client(sim, dialect) as c:
        await c.update(TEXT_ONLY[dialect])
        await c.say("light on")
        key = {"beta": "modalities", "ga": "output_modalities"}[dialect]
        await c.send("response.create", response={key: ["text"]})
        done = await c.until("response.done")
        audio = c.of(AUDIO_DELTA[dialect])
        assert audio and all(len(base64.b64decode(a["delta"])) >= 4800 for a in audio)
        transcript = "".join(e["delta"] for e in c.of(TRANSCRIPT_DELTA[dialect]))
        assert transcript == "Sure, the light is on now."
        assert not c.of(TEXT_DELTA[dialect])
        assert c.of("response.content_part.added")[0]["part"]["type"] == "audio"
        content = done["response"]["output"][0]["content"][0]
        assert content["type"] == {"beta": "audio", "ga": "output_audio"}[dialect]
        assert content["transcript"] == transcript


def _fixture_types(phase: str) -> list[str]:
    text = resources.files("wyoming_realtime_text.simulator").joinpath("forum_replay.jsonl")
    rows = [json.loads(line) for line in text.read_text(encoding="utf-8").splitlines()]
    return [r["event"]["type"] for r in rows if r["phase"] == phase]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_forum_replay_reproduces_the_log(sim: RealtimeSimulator, dialect: str) -> None:
    sim.scenario = Scenario(mode="forum_replay")
    async with client(sim, dialect) as c:
        session = await c.update(TEXT_ONLY[dialect])
        assert session[{"beta": "modalities", "ga": "output_modalities"}[dialect]] == ["text"]
        c.events.clear()
        await c.append(pcm(300))
        await c.send("input_audio_buffer.commit")
        await c.send("response.create")
        done = await c.until("response.done")
        audio = [len(base64.b64decode(e["delta"])) for e in c.of(AUDIO_DELTA[dialect])]
        assert audio == [6400, 9600] + [16000] * 21
        transcript = "".join(e["delta"] for e in c.of(TRANSCRIPT_DELTA[dialect]))
        assert transcript == FORUM_TRANSCRIPT
        assert (
            c.of(TRANSCRIPT_DELTA[dialect].replace("delta", "done"))[0]["transcript"] == transcript
        )
        response = done["response"]
        assert response["status"] == "incomplete"
        assert response["status_details"] == {"type": "incomplete", "reason": "content_filter"}
        assert response["output"][0]["content"][0]["transcript"] == transcript
        heard = c.of("conversation.item.input_audio_transcription.completed")
        assert [e["transcript"] for e in heard] == [FORUM_INPUT]
        types = c.types()
        # The transcription interleaves with the response, after the 4th audio delta.
        audio_at = [i for i, t in enumerate(types) if t == AUDIO_DELTA[dialect]]
        assert audio_at[3] < types.index(heard[0]["type"]) < audio_at[4]
        committed = c.of("input_audio_buffer.committed")[0]
        assert heard[0]["item_id"] == committed["item_id"] != "item_AJJxpun3jL9lWgPjKRQM3"
        resp_id = c.of("response.created")[0]["response"]["id"]
        assert resp_id != "resp_AJJxpEsVtBnqrXeioYoaC"
        assert {e["response_id"] for e in c.of(AUDIO_DELTA[dialect])} == {resp_id}
        expected = _fixture_types("commit") + _fixture_types("response")
        if dialect == "beta":
            assert types == expected
        else:
            assert not set(types) & {"conversation.item.created", "response.audio.delta"}
            assert types.count("rate_limits.updated") == 1
            assert types.count("conversation.item.done") == 2
            assert response["output"][0]["content"][0]["type"] == "output_audio"


async def test_cut_after_ends_incomplete_with_the_text_so_far(sim: RealtimeSimulator) -> None:
    sim.scenario = Scenario(reply="one two three four five six seven eight", cut_after=2)
    async with client(sim, "ga") as c:
        await c.update(TEXT_ONLY["ga"])
        await c.send("response.create")
        done = await c.until("response.done")
        deltas = c.of(TEXT_DELTA["ga"])
        assert len(deltas) == 2
        text = "".join(d["delta"] for d in deltas)
        assert c.of("response.output_text.done")[0]["text"] == text == "one two three four"
        assert done["response"]["status"] == "incomplete"
        assert done["response"]["status_details"]["reason"] == "content_filter"
        assert done["response"]["output"][0]["content"][0]["text"] == text


@pytest.mark.parametrize(
    ("code", "etype"),
    [
        ("server_error", "server_error"),
        ("rate_limit_exceeded", "requests"),
        ("insufficient_quota", "insufficient_quota"),
    ],
)
async def test_error_code_answers_response_create(
    sim: RealtimeSimulator, code: str, etype: str
) -> None:
    sim.scenario = Scenario(error_code=code)
    async with client(sim, "beta") as c:
        await c.send("response.create")
        error = await c.recv()
        assert error["type"] == "error"
        assert (error["error"]["code"], error["error"]["type"]) == (code, etype)
        assert await c.nothing_for(0.2)
        sim.scenario = Scenario(error_code=code, error_delivery="response_failed")
        await c.send("response.create")
        done = await c.until("response.done")
        assert done["response"]["status"] == "failed"
        assert done["response"]["status_details"]["error"]["code"] == code
        sim.scenario = Scenario()
        await c.send("response.create")
        assert (await c.until("response.done"))["response"]["status"] == "completed"


async def test_disconnect_after_drops_without_close_frame(sim: RealtimeSimulator) -> None:
    sim.scenario = Scenario(reply="a b c d e f g h", disconnect_after=2)
    async with client(sim, "ga") as c:
        await c.send("response.create")
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await c.recv()
        assert info.value.rcvd is None  # no close frame: an abrupt TCP loss
        assert len(c.of(TRANSCRIPT_DELTA["ga"])) == 2
        assert "response.done" not in c.types()
    await eventually(lambda: sim.connections[0].closed)


async def test_session_expired_closes_with_1001(sim: RealtimeSimulator) -> None:
    sim.scenario = Scenario(reply="a b c d e f", session_expired_after=1)
    async with client(sim, "beta") as c:
        await c.send("response.create")
        error = await c.until("error")
        assert error["error"]["code"] == "session_expired"
        with pytest.raises(ConnectionClosed) as info:
            await c.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001


async def test_silent_response_cancel_and_active_response_error(sim: RealtimeSimulator) -> None:
    sim.scenario = Scenario(silent=True)
    async with client(sim, "ga") as c:
        await c.send("response.create")
        created = await c.recv()
        assert created["type"] == "response.created"
        assert await c.nothing_for(0.3)
        await c.send("response.create")
        error = (await c.recv())["error"]
        assert error["code"] == "conversation_already_has_active_response"
        assert created["response"]["id"] in error["message"]
        await c.send("response.cancel")
        done = await c.until("response.done")
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"] == {
            "type": "cancelled",
            "reason": "client_cancelled",
        }
        await c.send("response.cancel")
        assert (await c.until("error"))["error"]["code"] == "response_cancel_not_active"


async def test_cancel_mid_response_keeps_partial_text(sim: RealtimeSimulator) -> None:
    sim.scenario = Scenario(reply="a b c d e f g h i j", delta_delay=0.1)
    async with client(sim, "beta") as c:
        await c.update(TEXT_ONLY["beta"])
        await c.send("response.create")
        await c.until(TEXT_DELTA["beta"])
        await c.send("response.cancel")
        done = await c.until("response.done")
        assert done["response"]["status"] == "cancelled"
        text = "".join(e["delta"] for e in c.of(TEXT_DELTA["beta"]))
        assert text != "a b c d e f g h i j"
        assert done["response"]["output"][0]["content"][0]["text"] == text


async def test_cancel_without_response_is_an_error(sim: RealtimeSimulator) -> None:
    async with client(sim, "ga") as c:
        await c.send("response.cancel", event_id="evt_9")
        error = (await c.recv())["error"]
        assert (error["code"], error["event_id"]) == ("response_cancel_not_active", "evt_9")


@pytest.mark.parametrize(
    "fault", [{"disconnect_after": 0}, {"session_expired_after": 0}], ids=["drop", "expire"]
)
async def test_a_count_of_zero_ends_the_connection_before_any_text(
    sim: RealtimeSimulator, fault: dict[str, int]
) -> None:
    sim.scenario = Scenario(reply="never said", **fault)
    async with client(sim, "ga") as c:
        await c.update(TEXT_ONLY["ga"])
        await c.send("response.create")
        with pytest.raises(ConnectionClosed):
            while True:
                await c.recv()
        assert "response.created" in c.types()
        assert not c.of(TEXT_DELTA["ga"]) and "response.done" not in c.types()


async def test_fail_first_faults_only_the_first_responses_across_connections(
    sim: RealtimeSimulator,
) -> None:
    sim.scenario = Scenario(reply="fine now", error_code="rate_limit_exceeded", fail_first=2)
    async with client(sim, "beta") as c:
        await c.update(TEXT_ONLY["beta"])
        await c.send("response.create")
        assert (await c.recv())["error"]["code"] == "rate_limit_exceeded"
    # The same scenario, changed in place: its second faulty response is dropped instead.
    sim.scenario.error_code, sim.scenario.disconnect_after = None, 0
    async with client(sim, "beta") as c:
        await c.update(TEXT_ONLY["beta"])
        await c.send("response.create")
        with pytest.raises(ConnectionClosed):
            while True:
                await c.recv()
        assert "error" not in c.types()
    async with client(sim, "beta") as c:
        await c.update(TEXT_ONLY["beta"])
        await c.send("response.create")
        done = await c.until("response.done")
        assert done["response"]["status"] == "completed"
        assert "".join(d["delta"] for d in c.of(TEXT_DELTA["beta"])) == "fine now"
    assert sim.scenario.failed == 2
    sim.scenario = Scenario(error_code="server_error", fail_first=1)
    assert sim.scenario.failed == 0, "a new scenario counts from zero"


async def test_handshakes_are_counted_even_when_refused(sim: RealtimeSimulator) -> None:
    async with client(sim):
        pass
    sim.scenario = Scenario(reject_handshake=403)
    with pytest.raises(InvalidStatus):
        async with client(sim):
            pass
    assert sim.handshakes == 2 and len(sim.connections) == 1


@pytest.mark.parametrize("status", [401, 503])
async def test_reject_handshake(sim: RealtimeSimulator, status: int) -> None:
    sim.scenario = Scenario(reject_handshake=status)
    with pytest.raises(InvalidStatus) as info:
        async with client(sim):
            pass
    assert info.value.response.status_code == status
    assert sim.connections == []


async def test_paths_and_http_auth() -> None:
    async with RealtimeSimulator(api_key="sk-right", serve_beta=True) as sim:
        with pytest.raises(InvalidStatus) as info:
            async with client(sim, key="sk-wrong"):
                pass
        assert info.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as info:
            async with client(sim, key="sk-right", path="/v1/elsewhere"):
                pass
        assert info.value.response.status_code == 404
        url = sim.url.replace("/v1/realtime", "/openai/v1/realtime") + "?model=my-deployment"
        async with connect(url, additional_headers={"api-key": "sk-right"}) as ws:
            created = json.loads(await ws.recv())
            assert created["session"]["model"] == "my-deployment"
        async with client(sim, "beta", key="sk-right", path="/openai/realtime"):
            pass


async def test_beta_is_refused_as_api_openai_com_does_now() -> None:
    """Since May 2026: one error event beta_api_shape_disabled, then close 4000."""
    async with RealtimeSimulator() as sim:
        headers = {"Authorization": "Bearer sk-any", "OpenAI-Beta": "realtime=v1"}
        url = sim.url + "?model=gpt-4o-realtime-preview"
        async with connect(url, additional_headers=headers) as ws:
            error = json.loads(await ws.recv())
            assert error["type"] == "error"
            assert error["error"]["code"] == "beta_api_shape_disabled"
            assert error["error"]["type"] == "invalid_request_error"
            assert "/v1/realtime" in error["error"]["message"]
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 4000
            assert info.value.rcvd.reason == "invalid_request_error.beta_api_shape_disabled"
        ga = {"Authorization": "Bearer sk-any"}
        async with connect(sim.url + "?model=gpt-realtime", additional_headers=ga) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"  # GA is served


async def test_auth_failure_as_event() -> None:
    async with RealtimeSimulator(
        api_key="sk-right", scenario=Scenario(auth_failure="event")
    ) as sim:
        headers = {"Authorization": "Bearer sk-wrong"}
        async with connect(sim.url + "?model=m", additional_headers=headers) as ws:
            error = json.loads(await ws.recv())
            assert error["type"] == "error" and error["error"]["code"] == "invalid_api_key"
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 3000
        await eventually(lambda: sim.connections[0].closed)


async def test_handshake_and_first_token_delays_are_measurable(sim: RealtimeSimulator) -> None:
    start = time.monotonic()
    async with client(sim):
        fast = time.monotonic() - start
    sim.scenario = Scenario(handshake_delay=0.4, first_token_delay=0.3)
    start = time.monotonic()
    async with client(sim) as c:
        assert time.monotonic() - start >= 0.4 > fast
        await c.send("response.create")
        await c.until("response.created")
        created_at = time.monotonic()
        await c.until(TRANSCRIPT_DELTA["ga"])
        assert time.monotonic() - created_at >= 0.25


@pytest.mark.parametrize("limit", [None, 4])
async def test_sent_records_the_server_events_as_the_client_got_them(limit: int | None) -> None:
    async with RealtimeSimulator(record_limit=limit) as sim, client(sim, "ga") as c:
        await c.update(TEXT_ONLY["ga"])
        await c.say("hello")
        await c.send("response.create")
        await c.until("rate_limits.updated")  # the last event of a GA response
        sent = sim.connections[0].sent
        if limit is None:
            assert sent == c.events  # whole events, session.created first
        else:
            assert limit <= len(sent) <= 2 * limit and sent == c.events[-len(sent) :]


async def test_bad_input_gets_errors_and_the_connection_survives(sim: RealtimeSimulator) -> None:
    async with client(sim, "ga") as c:
        await c.ws.send("not json")
        assert (await c.recv())["error"]["code"] == "invalid_json"
        await c.ws.send(b"\x00\x01")
        assert (await c.recv())["error"]["code"] == "invalid_event"
        await c.send("nope", event_id="evt_x")
        error = (await c.recv())["error"]
        assert (error["code"], error["param"], error["event_id"]) == (
            "invalid_value",
            "type",
            "evt_x",
        )
        await c.send("conversation.item.delete", item_id="item_missing")
        assert (await c.recv())["type"] == "error"
        await c.say("keep me")
        added = await c.until("conversation.item.added")
        await c.send("conversation.item.delete", item_id=added["item"]["id"])
        assert (await c.until("conversation.item.deleted"))["item_id"] == added["item"]["id"]
        await c.update({"type": "realtime", "instructions": "be brief"})
    conn = sim.connections[0]
    assert sim.received_types() == [
        "nope",
        "conversation.item.delete",
        "conversation.item.create",
        "conversation.item.delete",
        "session.update",
    ]
    directions = {d for _, d, _ in conn.log}
    assert directions == {"in", "out"}
    times = [t for t, _, _ in conn.log]
    assert times == sorted(times) and conn.session["instructions"] == "be brief"


async def test_stop_closes_connections_and_leaves_no_task() -> None:
    before = asyncio.all_tasks()
    sim = RealtimeSimulator(scenario=Scenario(silent=True, transcription_delay=30))
    await sim.start()
    async with client(sim, "ga") as c:
        await c.update(WITH_TRANSCRIPTION["ga"])
        await c.append(pcm(200))
        await c.send("input_audio_buffer.commit")
        await c.send("response.create")
        await c.until("response.created")
        await sim.stop()
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await c.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    await asyncio.sleep(0)
    assert sim.connections[0].closed
    leftover = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
    assert [t for t in leftover if not t.done()] == []


async def test_stop_does_not_wait_for_a_delayed_handshake() -> None:
    sim = RealtimeSimulator(scenario=Scenario(handshake_delay=10))
    await sim.start()

    async def attempt() -> None:
        async with connect(sim.url + "?model=m"):
            pass

    task = asyncio.create_task(attempt())
    await asyncio.sleep(0.2)
    start = time.monotonic()
    await sim.stop()
    assert time.monotonic() - start < 1.0
    with pytest.raises(InvalidStatus) as info:
        await task
    assert info.value.response.status_code == 503


async def test_cli_prints_the_url_and_exits_zero_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "wyoming_realtime_text.simulator", "--port", "0", "--reply", "Hi."],
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert line.startswith("Simulated Realtime API listening on ws://127.0.0.1:")
        url = line.split(" on ", 1)[1].strip()
        async with connect(url + "?model=m") as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
