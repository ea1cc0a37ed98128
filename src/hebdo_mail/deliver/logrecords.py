"""The send log's records as checked when the log is read: parsed straight from each line's bytes
by pydantic. A replay (sendlog.read_log) reads the lines its writer wrote with one regular
expression and comes here for the others (a run's line, an older writer's, a damaged one); this
module alone decides what is an error. Loaded only then, so a command that reads the run's
summary instead (``status``) never loads pydantic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import display_path
from ..vocabulary import Event, SmtpStage
from .sendlog import LogError


class RecipientEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    time: str
    recipient: str
    edition: str | None = None
    event: Event
    code: int | None = None
    reply: str | None = None
    message_id: str | None = None
    attempt: int | None = None
    # Of a failure: where the relay refused (mail, rcpt, data, content).
    stage: SmtpStage | None = None
    relay: str | None = None  # which relay of a pool carried it


class RunEvent(BaseModel):
    """Written when a run starts: what it sent to, and how many recipients the list held."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time: str
    event: Literal["run"]
    total: int
    source: str
    transport: str
    # What the run mailed: edition -> part -> short hash (deliver/changes.py).
    digest: dict[str, dict[str, str]] | None = None


class CountedEvent(BaseModel):
    """Written when a run has read its list through, if the total its ``run`` line gave was a
    guess (a CSV file's lines, before the file was read): how many readers the list held."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time: str
    event: Literal["counted"]
    total: int


RUN_RECORDS: dict[str, type[RunEvent] | type[CountedEvent]] = {
    "run": RunEvent,
    "counted": CountedEvent,
}


def parse_record(
    raw: bytes, path: Path, number: int, warnings: list[str]
) -> RunEvent | CountedEvent | RecipientEvent | None:
    """One line: a recipient's event (parsed and checked straight from the bytes), a run's line,
    or None for a line cut short by a crash."""
    try:
        return RecipientEvent.model_validate_json(raw)
    except ValidationError as exc:
        problem = exc.errors()[0]
    if problem["type"] == "json_invalid":
        warnings.append(
            f"{display_path(path)}:{number}: an incomplete line (a write cut short by a crash) was ignored"
        )
        return None
    record: Any = json.loads(raw)
    if isinstance(record, dict) and (model := RUN_RECORDS.get(str(record.get("event")))):
        try:
            return model.model_validate(record)
        except ValidationError as exc:
            problem = exc.errors()[0]
    where = ".".join(str(p) for p in problem["loc"])
    raise LogError(
        f"is not a send log record ({where}: {problem['msg']}); restore the log from a "
        "backup before sending again",
        path=path,
        line=number,
    ) from None
