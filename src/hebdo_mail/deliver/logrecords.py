"""The send log's records as checked when the log is replayed (sendlog.py): parsed straight from
each line's bytes by pydantic, the fast way for a million lines. Loaded only by a replay, so a
command that reads the run's summary instead (``status``) never loads pydantic."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..vocabulary import Event, SmtpStage


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
