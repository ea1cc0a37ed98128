"""Stage 5: the asyncio orchestrator. Recipients flow from their source through a bounded queue to
N workers, each holding one reused connection; every event goes to the send log as it happens.

What is guaranteed (see docs/reliability.md): a recipient whose last event is sent, failed or
skipped is never mailed again by this issue; deferred ones are retried; a message whose reply was
lost after the final dot is left "unknown" and only resent on request (--resend-unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..audience.bounces import record
from ..audience.failures import refusal
from ..audience.recipients import Recipient
from ..audience.store import Store
from ..errors import HebdoError
from ..vocabulary import OUTCOMES, Event, Outcome
from .message import MessageError, MessageFactory
from .selection import SendOptions, StoreWatch, decide
from .sendlog import EventLog, LogState
from .transport import Connection, Outgoing, RelayRefused, Reply, Transport, TransportError

CONNECT_TRIES = 3
BATCH = 8  # messages a connection carries back to back, pipelined, before looking at the queue


@dataclass
class Job:
    """One recipient's message on its way, with the attempts so far (earlier runs included)."""

    recipient: Recipient
    edition: str
    message_id: str
    message: bytes
    attempt: int
    sender: str  # the envelope sender (its own, with VERP)


@dataclass
class SendSummary:
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    already_done: int = 0  # sent, failed or skipped by earlier runs
    unknown_left: int = 0  # unknown from earlier runs, not resent
    not_reached: int = 0  # left pending by --limit or a stop
    stopped: str | None = None  # why the run stopped early, if it did
    elapsed: float = 0.0  # seconds from the first message queued to the last reply

    @property
    def handled(self) -> int:
        return sum(self.counts.values())

    @property
    def incomplete(self) -> bool:
        return bool(
            self.counts[Outcome.DEFERRED]
            or self.counts[Outcome.UNKNOWN]
            or self.unknown_left
            or self.not_reached
        )


class RateLimiter:
    """At most ``rate`` messages per second over all connections (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_slot = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = asyncio.get_running_loop().time()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class Sender:
    def __init__(
        self,
        *,
        factory: MessageFactory,
        transport: Transport,
        log: EventLog,
        state: LogState,
        store: Store | None,
        store_is_source: bool,
        options: SendOptions,
        store_marker: int | None = None,
        on_event: Callable[[Outcome], None] = lambda outcome: None,
    ) -> None:
        self.factory = factory
        self.transport = transport
        self.log = log
        self.state = state
        self.store = store
        self.store_is_source = store_is_source
        self.options = options
        self.on_event = on_event
        self.summary = SendSummary()
        self.limiter = RateLimiter(options.rate)
        self.watch = StoreWatch(store, source_is_store=store_is_source, since=store_marker)
        # A rate limit spaces messages out one by one, which a pipelined batch would defeat.
        self.batch_size = 1 if options.rate > 0 else BATCH
        self.stopping = False
        self.fatal: HebdoError | None = None

    def stop(self, reason: str) -> None:
        """Finish the messages in flight, start no new ones."""
        if not self.stopping:
            self.stopping = True
            self.summary.stopped = reason

    # -- choosing who to mail ------------------------------------------------------------------

    def selected(self, recipients: Iterable[Recipient]) -> Iterable[Recipient]:
        """Recipients this run should mail, in order, after the log and the store have spoken."""
        queued = 0
        for recipient in recipients:
            decision = decide(self.state, recipient, self.options)
            if decision == "done":
                self.summary.already_done += 1
                continue
            if decision == "unknown":
                self.summary.unknown_left += 1
                continue
            if self.stopping or (self.options.limit is not None and queued >= self.options.limit):
                self.summary.not_reached += 1
                continue
            queued += 1
            yield recipient

    # -- running -------------------------------------------------------------------------------

    async def run(self, recipients: Iterable[Recipient]) -> SendSummary:
        queue: asyncio.Queue[Recipient | None] = asyncio.Queue(
            maxsize=self.options.concurrency * BATCH * 2
        )
        workers = [
            asyncio.create_task(self._worker(queue)) for _ in range(self.options.concurrency)
        ]
        started = asyncio.get_running_loop().time()
        try:
            for recipient in self.selected(recipients):
                if self.stopping:
                    self.summary.not_reached += 1
                    continue
                await queue.put(recipient)
        finally:
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
            self.log.sync()
            self.summary.elapsed = asyncio.get_running_loop().time() - started
        if self.fatal is not None:
            raise self.fatal
        return self.summary

    async def _take(self, queue: asyncio.Queue[Recipient | None]) -> tuple[list[Recipient], bool]:
        """Up to batch_size recipients: the first waited for, the rest only if already queued.
        Returns them and whether this worker's end-of-work marker came too."""
        first = await queue.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self.batch_size:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    async def _worker(self, queue: asyncio.Queue[Recipient | None]) -> None:
        connection: Connection | None = None
        finished = False
        batch: list[Recipient] = []
        try:
            while not finished:
                batch, finished = await self._take(queue)
                if self.stopping:
                    self.summary.not_reached += len(batch)
                    continue
                if batch:
                    connection = await self._deliver(batch, connection)
                batch = []
        except HebdoError as exc:
            self.fatal = self.fatal or exc
            self.stop(str(exc))
            self.summary.not_reached += len(batch)  # the recipients in hand were not mailed
            while not finished:
                rest, finished = await self._take(queue)
                self.summary.not_reached += len(rest)
        finally:
            if connection is not None:
                await connection.close()

    async def _connect(self) -> Connection:
        delay = 1.0
        for attempt in range(1, CONNECT_TRIES + 1):
            try:
                return await self.transport.connect()
            except RelayRefused:
                raise
            except TransportError:
                if attempt == CONNECT_TRIES or self.stopping:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _prepare(self, recipient: Recipient) -> Job | None:
        """The recipient's message, or None when it is skipped or cannot be built (logged)."""
        key = recipient.key
        refusal = self.watch.refusal(recipient)
        if refusal:
            self.log.event(key, Event.SKIPPED, reply=refusal)
            self._count(Outcome.SKIPPED)
            return None
        edition = self.factory.edition_label(recipient)
        personal = self.factory.personal(recipient)
        try:
            message = self.factory.wire(recipient, personal, signed=False)
        except MessageError as exc:
            self.log.event(key, Event.FAILED, edition=edition, reply=exc.message)
            self._count(Outcome.FAILED)
            return None
        previous = self.state.recipients.get(key)
        return Job(
            recipient, edition, personal.message_id, message,
            previous.attempts if previous else 0, self.factory.envelope_sender(recipient),
        )  # fmt: skip

    async def _deliver(
        self, recipients: list[Recipient], connection: Connection | None
    ) -> Connection | None:
        """Send a batch over one connection; 4xx answers are retried with backoff, together."""
        jobs = [job for r in recipients if (job := self._prepare(r)) is not None]
        if self.factory.dkim is not None and jobs:

            def sign_all() -> list[bytes]:
                return [self.factory.sign(job.message) for job in jobs]

            # A slow private-key operation releases the GIL: in a worker thread it runs on
            # another core while this loop keeps the other connections busy.
            signed = await asyncio.to_thread(sign_all) if self.factory.dkim.slow else sign_all()
            for job, message in zip(jobs, signed, strict=True):
                job.message = message
        for try_number in range(1, self.options.attempts + 1):
            if not jobs:
                return connection
            if connection is None or not connection.usable:
                if connection is not None:
                    await connection.close()
                connection = None
                connection = await self._connect()
            for _ in jobs:
                await self.limiter.wait()  # after connecting: the rate is of messages handed over
            deferred: list[Job] = []
            outgoing = [
                Outgoing(
                    job.sender,
                    job.recipient.email,
                    job.message,
                    self._attempt_recorder(job),
                )
                for job in jobs
            ]

            def on_reply(
                index: int, reply: Reply, jobs: list[Job] = jobs, deferred: list[Job] = deferred
            ) -> None:
                if self._record(jobs[index], reply) == Outcome.DEFERRED:
                    deferred.append(jobs[index])

            await connection.send_many(outgoing, on_reply)
            jobs = deferred
            if jobs and try_number < self.options.attempts and not self.stopping:
                await asyncio.sleep(self.options.retry_delay * 2 ** (try_number - 1))
        for _ in jobs:
            self._count(Outcome.DEFERRED)
        return connection

    def _attempt_recorder(self, job: Job) -> Callable[[], None]:
        def record() -> None:
            job.attempt += 1
            self.log.event(
                job.recipient.key, Event.ATTEMPT, edition=job.edition, message_id=job.message_id,
                attempt=job.attempt,
            )  # fmt: skip

        return record

    def _record(self, job: Job, reply: Reply) -> Outcome:
        """Log a reply; returns its outcome."""
        outcome = reply.outcome
        if outcome == Outcome.UNKNOWN:
            # The attempt line stays last: status reports it, --resend-unknown resends it.
            self._count(Outcome.UNKNOWN)
            return outcome
        failed = outcome == Outcome.FAILED
        self.log.event(
            job.recipient.key, Event(outcome), edition=job.edition, code=reply.code, reply=reply.text,
            message_id=job.message_id, attempt=job.attempt or None,
            stage=reply.stage if failed else None,
        )  # fmt: skip
        if outcome != Outcome.DEFERRED:
            self._count(outcome)
        failure = None
        if failed:
            failure = refusal(reply.code, reply.stage, reply.text, job.recipient.email)
        if failure is not None and self.store is not None:
            # The same source as `bounces process` gives it when it sweeps the log: counted once.
            record(
                None, self.store, job.recipient.email, failure, f"send {job.message_id}",
                job.message_id, None,
            )  # fmt: skip
        return outcome

    def _count(self, outcome: Outcome) -> None:
        self.summary.counts[outcome] += 1
        self.on_event(outcome)


async def deliver_one(transport: Transport, sender: str, recipient: str, message: bytes) -> Reply:
    """A single message outside any log (the --test copy)."""
    connection = await transport.connect()
    try:
        return await connection.send(Outgoing(sender, recipient, message, lambda: None))
    finally:
        with contextlib.suppress(Exception):
            await connection.close()
