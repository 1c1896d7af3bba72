"""What a client may send, per dialect: every client event's keys, types and values.

The declarations follow the client event models of the openai SDK 3.60 (GA:
``openai.types.realtime``; beta: ``openai.types.beta.realtime``), nested objects included:
a key that is not a field is ``unknown_parameter``, a value outside an enum
``invalid_value``, a missing required field ``missing_required_parameter``
(tests/test_sdk_oracle_params.py holds the simulator to the SDK). Beyond the types, what
the API documents: ranges (``max_output_tokens`` 1-4096, beta ``temperature`` 0.6-1.2,
``speed`` 0.25-1.5, ``threshold`` 0-1), the modality combinations, and null where a
setting is turned off with it (or is echoed as null by ``session.updated``, so that a
client may send back what it was shown).

Narrower than the SDK, on purpose: a GA ``session.update`` must stay a realtime session
(``type: "transcription"`` sessions are not simulated) and beta's
``transcription_session.update`` is not served.
"""

from __future__ import annotations

from typing import Any

from . import protocol as p
from .schema import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    STR,
    Checked,
    ListOf,
    MapOf,
    Nullable,
    Obj,
    OneOf,
    Scalar,
    Spec,
    Tagged,
    enum,
    obj,
)

EFFORT = enum("minimal", "low", "medium", "high", "xhigh")
STATUS = enum("completed", "incomplete", "in_progress")
REALTIME_ITEM = enum("realtime.item")
NOISE = enum("near_field", "far_field")
EAGERNESS = enum("low", "medium", "high", "auto")
MAX_TOKENS = OneOf((Scalar(int, 1, 4096), enum("inf")))
SPEED = Scalar(float, 0.25, 1.5)
THRESHOLD = Scalar(float, 0.0, 1.0)
TRACING = Nullable(OneOf((enum("auto"), obj(group_id=STR, metadata=ANY, workflow_name=STR))))
FUNCTION_TOOL = obj(description=STR, name=STR, parameters=ANY, type=enum("function"))
# The SDK's beta model takes only these model names in session.update.
BETA_MODELS = (
    "gpt-realtime",
    "gpt-realtime-2025-08-28",
    "gpt-4o-realtime-preview",
    "gpt-4o-realtime-preview-2024-10-01",
    "gpt-4o-realtime-preview-2024-12-17",
    "gpt-4o-realtime-preview-2025-06-03",
    "gpt-4o-mini-realtime-preview",
    "gpt-4o-mini-realtime-preview-2024-12-17",
)


def _modalities(dialect: p.Dialect) -> Spec:
    def rule(value: Any, param: str) -> None:
        p.check_modalities(dialect, value, param)

    return Checked(ListOf(enum("text", "audio")), rule)


# --- GA -----------------------------------------------------------------------------

_FORMAT = Tagged(
    "type",
    {
        "audio/pcm": obj(type=STR, rate=enum(24000)),
        "audio/pcmu": obj(type=STR),
        "audio/pcma": obj(type=STR),
    },
    default="audio/pcm",
)
_VOICE = OneOf((STR, obj("id", id=STR)))
_TURN_DETECTION = Tagged(
    "type",
    {
        "server_vad": obj(
            type=STR,
            create_response=BOOL,
            idle_timeout_ms=Nullable(INT),
            interrupt_response=BOOL,
            prefix_padding_ms=INT,
            silence_duration_ms=INT,
            threshold=THRESHOLD,
        ),
        "semantic_vad": obj(
            type=STR, create_response=BOOL, eagerness=EAGERNESS, interrupt_response=BOOL
        ),
    },
)
_TRANSCRIPTION = obj(
    delay=enum("minimal", "low", "medium", "high", "xhigh"),  # gpt-realtime-whisper only
    keywords=ListOf(STR),
    language=Nullable(STR),
    languages=ListOf(STR),
    model=STR,
    prompt=Nullable(STR),
)
_AUDIO = obj(
    input=obj(
        format=_FORMAT,
        noise_reduction=Nullable(obj(strength=FLOAT, type=NOISE)),
        transcription=Nullable(_TRANSCRIPTION),
        turn_detection=Nullable(_TURN_DETECTION),
    ),
    output=obj(format=_FORMAT, speed=SPEED, voice=_VOICE),
)
_TOOL_FILTER = obj(read_only=BOOL, tool_names=ListOf(STR))
_MCP_TOOL = obj(
    "server_label type",
    server_label=STR,
    type=STR,
    allowed_callers=ListOf(enum("direct", "programmatic")),
    allowed_tools=OneOf((ListOf(STR), _TOOL_FILTER)),
    authorization=STR,
    connector_id=enum(
        "connector_dropbox",
        "connector_gmail",
        "connector_googlecalendar",
        "connector_googledrive",
        "connector_microsoftteams",
        "connector_outlookcalendar",
        "connector_outlookemail",
        "connector_sharepoint",
    ),
    defer_loading=BOOL,
    headers=MapOf(STR),
    require_approval=OneOf((enum("always", "never"), obj(always=_TOOL_FILTER, never=_TOOL_FILTER))),
    server_description=STR,
    server_url=STR,
    tunnel_id=STR,
)
_TOOLS = ListOf(Tagged("type", {"function": FUNCTION_TOOL, "mcp": _MCP_TOOL}, default="function"))
_TOOL_CHOICE = OneOf(
    (
        enum("none", "auto", "required"),
        Tagged(
            "type",
            {
                "function": obj("name type", name=STR, type=STR),
                "mcp": obj("server_label type", server_label=STR, type=STR, name=STR),
            },
        ),
    )
)
_CACHE_BREAKPOINT = obj("mode", mode=enum("explicit"), ttl=enum("30m", "12h"))
_PROMPT_INPUT = Tagged(
    "type",
    {
        "input_text": obj(
            "text type", text=STR, type=STR, prompt_cache_breakpoint=_CACHE_BREAKPOINT
        ),
        "input_image": obj(
            "detail type",
            detail=enum("low", "high", "auto", "original"),
            type=STR,
            file_id=STR,
            image_url=STR,
            prompt_cache_breakpoint=_CACHE_BREAKPOINT,
        ),
        "input_file": obj(
            "type",
            type=STR,
            detail=enum("auto", "low", "high"),
            file_data=STR,
            file_id=STR,
            file_url=STR,
            filename=STR,
            prompt_cache_breakpoint=_CACHE_BREAKPOINT,
        ),
    },
)
_PROMPT = Nullable(obj("id", id=STR, variables=MapOf(OneOf((STR, _PROMPT_INPUT))), version=STR))
_TRUNCATION = OneOf(
    (
        enum("auto", "disabled"),
        obj(
            "retention_ratio type",
            retention_ratio=FLOAT,
            type=enum("retention_ratio"),
            token_limits=obj(post_instructions=INT),
        ),
    )
)


def _message(content: Obj) -> Obj:
    return obj(
        "content role type",
        content=ListOf(content),
        role=STR,
        type=STR,
        id=STR,
        object=REALTIME_ITEM,
        status=STATUS,
    )


_MCP_CALL_FIELDS: dict[str, Spec] = {"id": STR, "arguments": STR, "name": STR}
_MCP_ERROR = Tagged(
    "type",
    {
        "protocol_error": obj("code message type", code=INT, message=STR, type=STR),
        "tool_execution_error": obj("message type", message=STR, type=STR),
        "http_error": obj("code message type", code=INT, message=STR, type=STR),
    },
)
_ITEM = Tagged(
    "type",
    {
        "message": Tagged(
            "role",
            {
                "system": _message(obj(text=STR, type=enum("input_text"))),
                "user": _message(
                    obj(
                        audio=STR,
                        detail=enum("auto", "low", "high"),
                        image_url=STR,
                        text=STR,
                        transcript=Nullable(STR),
                        type=enum("input_text", "input_audio", "input_image"),
                    )
                ),
                "assistant": _message(
                    obj(
                        audio=STR,
                        text=STR,
                        transcript=STR,
                        type=enum("output_text", "output_audio"),
                    )
                ),
            },
        ),
        "function_call": obj(
            "arguments name type",
            arguments=STR,
            name=STR,
            type=STR,
            id=STR,
            call_id=STR,
            object=REALTIME_ITEM,
            status=STATUS,
        ),
        "function_call_output": obj(
            "call_id output type",
            call_id=STR,
            output=STR,
            type=STR,
            id=STR,
            object=REALTIME_ITEM,
            status=STATUS,
        ),
        "mcp_approval_response": obj(
            "id approval_request_id approve type",
            id=STR,
            approval_request_id=STR,
            approve=BOOL,
            type=STR,
            reason=STR,
        ),
        "mcp_list_tools": obj(
            "server_label tools type",
            server_label=STR,
            tools=ListOf(
                obj(
                    "input_schema name",
                    input_schema=ANY,
                    name=STR,
                    annotations=ANY,
                    description=STR,
                )
            ),
            type=STR,
            id=STR,
        ),
        "mcp_call": obj(
            "id arguments name server_label type",
            **_MCP_CALL_FIELDS,
            server_label=STR,
            type=STR,
            approval_request_id=STR,
            error=Nullable(_MCP_ERROR),
            output=STR,
        ),
        "mcp_approval_request": obj(
            "id arguments name server_label type", **_MCP_CALL_FIELDS, server_label=STR, type=STR
        ),
    },
)
_SETTINGS: dict[str, Spec] = {  # what a session and a single response both take
    "instructions": STR,
    "max_output_tokens": MAX_TOKENS,
    "output_modalities": _modalities("ga"),
    "parallel_tool_calls": BOOL,  # reasoning models (gpt-realtime-2 and later)
    "prompt": _PROMPT,
    "reasoning": obj(effort=EFFORT),
    "tool_choice": _TOOL_CHOICE,
    "tools": _TOOLS,
}
GA_SESSION = obj(
    "type",
    type=enum("realtime"),
    audio=_AUDIO,
    include=Nullable(ListOf(enum("item.input_audio_transcription.logprobs"))),
    model=STR,
    tracing=TRACING,
    truncation=_TRUNCATION,
    **_SETTINGS,
)
GA_RESPONSE = obj(
    audio=obj(output=obj(format=_FORMAT, voice=_VOICE)),
    conversation=STR,
    input=ListOf(_ITEM),
    metadata=MapOf(STR),
    **_SETTINGS,
)

# --- beta ---------------------------------------------------------------------------

_BETA_FORMAT = enum("pcm16", "g711_ulaw", "g711_alaw")
_BETA_TEMPERATURE = Scalar(float, 0.6, 1.2)
_BETA_TOOLS = ListOf(FUNCTION_TOOL)


def _beta_item(reference: bool) -> Obj:
    """A conversation item; in a response's `input` it may also be an item_reference."""
    part_types = ("input_text", "input_audio", "item_reference", "text")
    item_types = ("message", "function_call", "function_call_output")
    return obj(
        id=STR,
        arguments=STR,
        call_id=STR,
        content=ListOf(
            obj(
                id=STR,
                audio=STR,
                text=STR,
                transcript=Nullable(STR),
                type=enum(*part_types) if reference else enum(*part_types, "audio"),
            )
        ),
        name=STR,
        object=REALTIME_ITEM,
        output=STR,
        role=enum("user", "assistant", "system"),
        status=STATUS,
        type=enum(*item_types, "item_reference") if reference else enum(*item_types),
    )


BETA_SESSION = obj(
    client_secret=obj(expires_after=obj("anchor", anchor=enum("created_at"), seconds=INT)),
    input_audio_format=_BETA_FORMAT,
    input_audio_noise_reduction=Nullable(obj(type=NOISE)),
    input_audio_transcription=Nullable(obj(language=STR, model=STR, prompt=STR)),
    instructions=STR,
    max_response_output_tokens=MAX_TOKENS,
    modalities=_modalities("beta"),
    model=enum(*BETA_MODELS),
    output_audio_format=_BETA_FORMAT,
    speed=SPEED,
    temperature=_BETA_TEMPERATURE,
    tool_choice=STR,
    tools=_BETA_TOOLS,
    tracing=TRACING,
    turn_detection=Nullable(
        obj(
            create_response=BOOL,
            eagerness=EAGERNESS,
            interrupt_response=BOOL,
            prefix_padding_ms=INT,
            silence_duration_ms=INT,
            threshold=THRESHOLD,
            type=enum("server_vad", "semantic_vad"),
        )
    ),
    voice=STR,
)
BETA_RESPONSE = obj(
    conversation=STR,
    input=ListOf(_beta_item(reference=True)),
    instructions=STR,
    max_response_output_tokens=MAX_TOKENS,
    metadata=MapOf(STR),
    modalities=_modalities("beta"),
    output_audio_format=_BETA_FORMAT,
    temperature=_BETA_TEMPERATURE,
    tool_choice=STR,
    tools=_BETA_TOOLS,
    voice=STR,
)

# --- client events ------------------------------------------------------------------


def _events(session: Spec, response: Spec, item: Spec) -> dict[str, Obj]:
    def event(required: str = "", **fields: Spec) -> Obj:
        return obj("type " + required, type=STR, event_id=STR, **fields)

    return {
        "session.update": event("session", session=session),
        "input_audio_buffer.append": event("audio", audio=STR),
        "input_audio_buffer.commit": event(),
        "input_audio_buffer.clear": event(),
        "output_audio_buffer.clear": event(),  # WebRTC/SIP's; taken over WebSocket too
        "conversation.item.create": event("item", item=item, previous_item_id=Nullable(STR)),
        "conversation.item.truncate": event(
            "audio_end_ms content_index item_id", audio_end_ms=INT, content_index=INT, item_id=STR
        ),
        "conversation.item.delete": event("item_id", item_id=STR),
        "conversation.item.retrieve": event("item_id", item_id=STR),
        "response.create": event(response=Nullable(response)),
        "response.cancel": event(response_id=STR),
    }


CLIENT_EVENTS: dict[p.Dialect, dict[str, Obj]] = {
    "ga": _events(GA_SESSION, GA_RESPONSE, _ITEM),
    "beta": _events(BETA_SESSION, BETA_RESPONSE, _beta_item(reference=False)),
}


def validate(dialect: p.Dialect, event: dict[str, Any]) -> None:
    """Raise ProtocolError as the real server would refuse `event` (of a known type)."""
    CLIENT_EVENTS[dialect][event["type"]].check(event, "")
