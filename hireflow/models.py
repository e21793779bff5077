"""The HTTP API's request and response shapes, declared once.

Requests are validated with these models (`parse` below: pydantic's errors become the exact messages
the frontend shows), and `hireflow/web/openapi.py` takes every schema of `/api/openapi.json` from
them, so a limit such as the 200 characters of `problem` lives here only. Responses are still built
as plain dicts on the hot paths (no per-request model instances); the schemathesis test checks every
response against these schemas.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from hireflow.errors import BadRequest
from hireflow.store.sessions import Difficulty, StreamStatus

OBJECT_ID = r"^[0-9a-f]{24}$"
MAX_PROBLEM_CHARS = 200


def _not_blank(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise PydanticCustomError("blank", "must not be blank")
    return stripped


class NewSession(BaseModel):
    """`POST /api/sessions`. `problem` is stored trimmed; its length limit applies to it as sent."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"problem": "Two Sum", "difficulty": "easy"}]}
    )

    problem: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_PROBLEM_CHARS), AfterValidator(_not_blank)
    ] = Field(description="The coding problem's title", examples=["Two Sum"])
    difficulty: Difficulty
    visibility: Literal["public", "private"] = Field(
        default="public", description="`private`: not in the lobby; read and joined with its `inviteCode`"
    )


class JoinSession(BaseModel):
    """`POST /api/sessions/{id}/join` (optional body): the invite code of a private session."""

    model_config = ConfigDict(extra="ignore")

    inviteCode: str | None = None


MAX_CODE_BYTES = 64 * 1024
MAX_STDIN_BYTES = 16 * 1024
MAX_LANGUAGE_CHARS = 40


def _at_most_bytes(limit: int) -> Callable[[str], str]:
    """A validator: the string's UTF-8 encoding (lone surrogates counted as JSON sent them) fits `limit`."""

    def check(value: str) -> str:
        if len(value) > limit // 4 and len(value.encode("utf-8", "surrogatepass")) > limit:
            raise PydanticCustomError("too_many_bytes", "must be at most {limit} bytes", {"limit": limit})
        return value

    return check


class NewRun(BaseModel):
    """`POST /api/sessions/{id}/runs`. `language` is a name or alias of `GET /api/runtimes`."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"language": "python", "code": "print(42)"}]}
    )

    language: Annotated[
        str,
        StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=MAX_LANGUAGE_CHARS),
    ] = Field(description="Name or alias")
    code: Annotated[str, AfterValidator(_at_most_bytes(MAX_CODE_BYTES))] = Field(description="At most 64 KiB (UTF-8)")
    stdin: str | None = Field(default="", description="At most 16 KiB (UTF-8)")
    version: Annotated[str, StringConstraints(min_length=1, max_length=MAX_LANGUAGE_CHARS)] | None = Field(
        default=None, description="Default: the newest the engine has"
    )

    @field_validator("stdin", mode="after")
    @classmethod
    def _stdin_size(cls, value: str | None) -> str:
        return _at_most_bytes(MAX_STDIN_BYTES)(value or "")


# Each failure of NewSession as the message the frontend shows, checked in this order (the first that
# applies wins, whatever order pydantic reports them in).
_REQUIRED = "Problem and difficulty are required"
_NEW_SESSION_MESSAGES: tuple[tuple[str, str | None, str], ...] = (
    ("dict_type", None, "Request body must be a JSON object"),
    ("model_type", None, "Request body must be a JSON object"),
    ("missing", None, _REQUIRED),
    ("blank", None, _REQUIRED),
    ("string_too_short", None, _REQUIRED),
    ("string_type", "problem", "Problem must be a string"),
    ("string_too_long", "problem", f"Problem must be at most {MAX_PROBLEM_CHARS} characters"),
    ("literal_error", "difficulty", "Difficulty must be one of: " + ", ".join(get_args(Difficulty))),
    ("literal_error", "visibility", "Visibility must be one of: public, private"),
)


NEW_SESSION_MESSAGES = tuple(dict.fromkeys(message for _kind, _field, message in _NEW_SESSION_MESSAGES))
"""Every 400 message of `POST /api/sessions` body validation (for the API document)."""


def _new_session_message(errors: list[ErrorDetails]) -> str:
    if any(
        e["type"] not in ("dict_type", "model_type") and e["loc"][:1] != ("visibility",) and e["input"] in (None, "")
        for e in errors
    ):
        return _REQUIRED  # `null` or "" for either field counts as missing, as it always has
    for kind, field, message in _NEW_SESSION_MESSAGES:
        if any(e["type"] == kind and (field is None or e["loc"][:1] == (field,)) for e in errors):
            return message
    return "Invalid request body"


_RUN_REQUIRED = "Language and code are required"
_NEW_RUN_MESSAGES: tuple[tuple[str, str | None, str], ...] = (
    ("dict_type", None, "Request body must be a JSON object"),
    ("model_type", None, "Request body must be a JSON object"),
    ("missing", None, _RUN_REQUIRED),
    ("string_too_short", "language", _RUN_REQUIRED),
    ("string_type", "language", f"Language must be a string of at most {MAX_LANGUAGE_CHARS} characters"),
    ("string_too_long", "language", f"Language must be a string of at most {MAX_LANGUAGE_CHARS} characters"),
    ("string_type", "code", "Code must be a string"),
    ("too_many_bytes", "code", "Code must be at most 64 KiB"),
    ("string_type", "stdin", "Stdin must be a string"),
    ("too_many_bytes", "stdin", "Stdin must be at most 16 KiB"),
    ("string_type", "version", f"Version must be a string of at most {MAX_LANGUAGE_CHARS} characters"),
    ("string_too_short", "version", f"Version must be a string of at most {MAX_LANGUAGE_CHARS} characters"),
    ("string_too_long", "version", f"Version must be a string of at most {MAX_LANGUAGE_CHARS} characters"),
)


NEW_RUN_MESSAGES = tuple(dict.fromkeys(message for _kind, _field, message in _NEW_RUN_MESSAGES))
"""Every 400 message of `POST /api/sessions/{id}/runs` body validation (for the API document)."""


def _new_run_message(errors: list[ErrorDetails]) -> str:
    if any(e["loc"][:1] in (("language",), ("code",)) and e["input"] is None for e in errors):
        return _RUN_REQUIRED  # `null` counts as missing
    for kind, field, message in _NEW_RUN_MESSAGES:
        if any(e["type"] == kind and (field is None or e["loc"][:1] == (field,)) for e in errors):
            return message
    return "Invalid request body"


_MESSAGES: dict[type[BaseModel], Callable[[list[ErrorDetails]], str]] = {
    NewSession: _new_session_message,
    NewRun: _new_run_message,
}
M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], body: object) -> M:
    """`body` (parsed JSON) as `model`, or BadRequest with the message the API documents."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        describe = _MESSAGES.get(model)
        message = describe(exc.errors()) if describe is not None else "Invalid request body"
        raise BadRequest(message) from exc


# --- responses ------------------------------------------------------------------------------------


class Error(BaseModel):
    """Every error: `message` for people (the frontend shows it), `code` for programs."""

    message: str = Field(examples=["Session not found"])
    code: str = Field(examples=["not_found"])


class User(BaseModel):
    """`email` only when the caller is one of the session's two members."""

    id: str = Field(alias="_id", pattern=OBJECT_ID)
    name: str
    email: str | None = None
    profileImage: str
    clerkId: str


class Session(BaseModel):
    """Mongoose-shaped: `host` and `participant` are populated user objects."""

    id: str = Field(alias="_id", pattern=OBJECT_ID)
    problem: str = Field(max_length=MAX_PROBLEM_CHARS)
    difficulty: Difficulty
    host: User | None
    participant: User | None = Field(description="null until someone joins")
    status: Literal["active", "completed"]
    callId: str = Field(description="Stream video call id `default:<callId>` and chat channel `messaging:<callId>`")
    streamStatus: StreamStatus = Field(
        description="pending → ready | failed → deleted; `disabled` from the start when Stream is not configured"
    )
    createdAt: datetime
    updatedAt: datetime
    endedAt: datetime | None
    visibility: Literal["public", "private"] = "public"
    inviteCode: str | None = Field(default=None, description="Private sessions, to their host only")


class OneSession(BaseModel):
    session: Session


class SessionList(BaseModel):
    sessions: list[Session] = Field(max_length=20, description="Newest first, at most 20")


class EndedSession(BaseModel):
    session: Session
    message: Literal["Session ended successfully"]


class PadContent(BaseModel):
    """`GET /api/sessions/{id}/pad/content`: the shared pad as stored."""

    code: str
    language: str | None = Field(description="`javascript`, `python` or `java`, as the pad's `meta` map says")
    updatedAt: datetime | None


class ChatToken(BaseModel):
    token: str = Field(description="Stream chat user token, valid for CHAT_TOKEN_TTL_S (a day)")
    userId: str = Field(description="The caller's Clerk id")
    userName: str
    userImage: str


class RunBy(BaseModel):
    id: str = Field(alias="_id", pattern=OBJECT_ID)
    name: str


RunStatus = Literal["queued", "running", "succeeded", "failed", "timed_out", "rejected"]


class Run(BaseModel):
    """A code run (without its code and stdin): `queued → running → succeeded | failed | timed_out |
    rejected`; a run still queued when its session ends goes straight to `failed`."""

    id: str = Field(alias="_id", pattern=OBJECT_ID)
    session: str = Field(pattern=OBJECT_ID)
    by: RunBy
    language: str
    version: str = Field(description="`*` until the engine picked one")
    status: RunStatus
    stdout: str = Field(description="At most 64 KiB")
    stderr: str = Field(description="At most 64 KiB")
    truncated: bool = Field(description="stdout or stderr was cut")
    exitCode: int | None
    signal: str | None
    durationMs: int | None
    error: str | None = Field(description="Why a run failed, timed out or was rejected")
    createdAt: datetime
    startedAt: datetime | None
    finishedAt: datetime | None


class OneRun(BaseModel):
    run: Run


class RunList(BaseModel):
    runs: list[Run] = Field(max_length=20, description="Newest first, at most 20")


class Runtime(BaseModel):
    language: str
    version: str
    aliases: list[str]


class Runtimes(RootModel[list[Runtime]]):
    """Languages and versions the engine runs (`[]` without PISTON_URL), cached from Piston's runtimes."""


class Health(BaseModel):
    msg: str


class Ready(BaseModel):
    status: Literal["ok"]
    mongodb: Literal["ok"]
    redis: Literal["ok"]
    realtime: Literal["ok"]


REQUEST_MODELS: tuple[type[BaseModel], ...] = (NewSession, JoinSession, NewRun)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Error,
    User,
    Session,
    OneSession,
    SessionList,
    EndedSession,
    ChatToken,
    Health,
    Ready,
    PadContent,
    Run,
    OneRun,
    RunList,
    Runtimes,
)
