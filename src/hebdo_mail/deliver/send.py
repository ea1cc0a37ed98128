"""Stage 5: the asyncio orchestrator. Recipients flow from their source through a bounded queue to
N workers, each holding one reused connection; every event goes to the send log as it happens.

What is guaranteed (see docs/reliability.md): a recipient whose last event is sent, failed or
skipped is never mailed again by this issue; deferred ones are retried; a message whose reply was
lost after the final dot is left "unknown" and only resent on request (--resend-unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from ..audience.recipients import Recipient
from ..audience.store import Store
from ..errors import HebdoError
from ..vocabulary import OUTCOMES, Event, Outcome
from .message import MessageError, MessageFactory
from .selection import SendOptions, StoreWatch, decide, refusal_of
from .sendlog import EventLog, RecipientStates, Standing
from .stoprule import StopRule
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


class ReaderLeft(Exception):
    """Raised just before a message's content would go out, when the store says its reader has
    left since the batch was checked; the transport drops the session mid-transaction."""

    def __init__(self, job: Job, reason: str) -> None:
        super().__init__(reason)
        self.job = job
        self.reason = reason


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
        state: RecipientStates,
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
        self.stop_rule = StopRule(options.stop) if options.stop else None

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
            decision = decide(self.state, recipient.key, self.options)
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
        """The recipient's message, or None when it cannot be built (logged failed)."""
        key = recipient.key
        edition = self.factory.edition_label(recipient)
        personal = self.factory.personal(recipient)
        try:
            message = self.factory.wire(recipient, personal, signed=False)
        except MessageError as exc:
            self.log.event(key, Event.FAILED, edition=edition, reply=exc.message)
            self._count(Outcome.FAILED)
            return None
        return Job(
            recipient, edition, personal.message_id, message, self.state.attempts_of(key),
            self.factory.envelope_sender(recipient),
        )  # fmt: skip

    async def _deliver(
        self, recipients: list[Recipient], connection: Connection | None
    ) -> Connection | None:
        """Send a batch over one connection; 4xx answers are retried with backoff, together.

        The store has the last word after every wait (connecting, the rate limit, a backoff),
        just before the batch's first command goes out, and again just before each message's
        content: a reader who left by then is logged skipped and not mailed."""
        jobs = [job for r in recipients if (job := self._prepare(r)) is not None]
        if self.factory.dkim is not None and jobs:

            def sign_all() -> list[bytes]:
                return [self.factory.sign(job.message) for job in jobs]

            # A slow private-key operation releases the GIL: in a worker thread it runs on
            # another core while this loop keeps the other connections busy.
            signed = await asyncio.to_thread(sign_all) if self.factory.dkim.slow else sign_all()
            for job, message in zip(jobs, signed, strict=True):
                job.message = message
        tries = 0
        while jobs and tries < self.options.attempts:
            if connection is None or not connection.usable:
                if connection is not None:
                    await connection.close()
                connection = None
                connection = await self._connect()
            for _ in jobs:
                await self.limiter.wait()  # after connecting: the rate is of messages handed over
            jobs = self._still_wanted(jobs)  # no await from here to the batch's first command
            if not jobs:
                break
            answered: set[int] = set()
            deferred: list[Job] = []

            def on_reply(
                index: int, reply: Reply, jobs: list[Job] = jobs, deferred: list[Job] = deferred,
                answered: set[int] = answered,
            ) -> None:  # fmt: skip
                answered.add(index)
                if self._record(jobs[index], reply) == Outcome.DEFERRED:
                    deferred.append(jobs[index])

            try:
                await connection.send_many([self._outgoing(job) for job in jobs], on_reply)
            except ReaderLeft as left:
                # The session was dropped before that message's content: the relay discards it.
                # The messages after it never reached theirs: they go again, on a new session.
                self._skip(left.job.recipient, left.reason)
                rest = [
                    job for i, job in enumerate(jobs) if i not in answered and job is not left.job
                ]
                if self.stopping:
                    self.summary.not_reached += len(rest)
                    rest = []
                jobs = deferred + rest
                continue
            tries += 1
            jobs = deferred
            if jobs and tries < self.options.attempts and not self.stopping:
                await asyncio.sleep(self.options.retry_delay * 2 ** (tries - 1))
        for _ in jobs:
            self._count(Outcome.DEFERRED)
        return connection

    def _still_wanted(self, jobs: list[Job]) -> list[Job]:
        """The jobs whose readers the store still lets us mail; the others are logged skipped."""
        wanted = []
        for job, reason in zip(jobs, self.watch.refusals([j.recipient for j in jobs]), strict=True):
            if reason:
                self._skip(job.recipient, reason)
            else:
                wanted.append(job)
        return wanted

    def _skip(self, recipient: Recipient, reason: str) -> None:
        self.log.event(recipient.key, Event.SKIPPED, reply=reason)
        self._count(Outcome.SKIPPED)

    def _outgoing(self, job: Job) -> Outgoing:
        def before_content() -> Awaitable[None] | None:
            # The last moment the message can still be held back: one more word from the store
            # (from a shared ledger, with the attempt's own commit, read after it).
            if not self.log.confirms_standing:
                reason = self.watch.refusal(job.recipient)
                if reason:
                    raise ReaderLeft(job, reason)
            job.attempt += 1
            recorded = self.log.event(
                job.recipient.key, Event.ATTEMPT, edition=job.edition, message_id=job.message_id,
                attempt=job.attempt,
            )  # fmt: skip
            return None if recorded is None else self._confirmed(job, recorded)

        return Outgoing(job.sender, job.recipient.email, job.message, before_content)

    async def _confirmed(self, job: Job, recorded: Awaitable[Standing | None]) -> None:
        """Wait for the attempt's commit; a reader who left by then is not mailed."""
        standing = await recorded
        if standing is None or self.store is None:
            return
        self.watch.observe(standing.marker)
        reason = refusal_of(standing.status, source_is_store=self.store_is_source)
        if reason:
            raise ReaderLeft(job, reason)

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
        if self.stop_rule is not None and (reason := self.stop_rule.note(reply)):
            self.stop(reason)
        if failed and self.store is not None:
            self._note_refusal(job, reply)
        return outcome

    def _note_refusal(self, job: Job, reply: Reply) -> None:
        """A relay's refusal that counts against the reader goes to the store's bounce ledger,
        with the same source as `bounces process` gives it when it sweeps the log: counted once.
        (Imported here: most sends meet no refusal, and reading one is a large module.)"""
        from ..audience.bounces import record
        from ..audience.failures import refusal

        failure = refusal(reply.code, reply.stage, reply.text, job.recipient.email)
        if failure is not None and self.store is not None:
            record(
                None, self.store, job.recipient.email, failure, f"send {job.message_id}",
                job.message_id, None,
            )  # fmt: skip

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
