"""Stage 5: the asyncio orchestrator. Recipients flow from their source through a bounded queue to
N workers, each holding one reused connection; every event goes to the send log as it happens.

What is guaranteed (see docs/reliability.md): a recipient whose last event is sent, failed or
skipped is never mailed again by this issue; deferred ones are retried; a message whose reply was
lost after the final dot is left "unknown" and only resent on request (--resend-unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ..audience.recipients import Recipient, RecipientBatch
from ..audience.store import Store
from ..errors import HebdoError
from ..vocabulary import OUTCOMES, Event, Outcome
from .message import MessageError, MessageFactory
from .relays import RateLimiter, Relay, RelayPool
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
    relay: str | None = None  # which relay of a pool carries it (the log says so)


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
    rest_unread: bool = False  # a stop left the rest of a list that is costly to read unread
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
            or self.rest_unread
        )


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
        count_rest: bool = True,
    ) -> None:
        """``count_rest``: whether the readers a stop leaves are counted (False for a list that
        would be read and checked only to count them: a CSV file streamed)."""
        self.factory = factory
        self.transport = transport
        self.log = log
        self.state = state
        self.store = store
        self.store_is_source = store_is_source
        self.options = options
        self.on_event = on_event
        self.count_rest = count_rest
        self.summary = SendSummary()
        self.limiter = RateLimiter(options.rate)
        self.pool = (
            transport if isinstance(transport, RelayPool)
            else RelayPool.single(transport, options.concurrency)
        )  # fmt: skip
        # Recipients a worker handed back when its relay was set aside: the next taken.
        self.returned: deque[Recipient] = deque()
        self.queued = 0  # recipients in the queue (end markers aside)
        self.queue: asyncio.Queue[Recipient | None] | None = None
        self.pool.nothing_left = lambda: not self.returned and not self.queued
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

    def selected(self, batches: Iterable[RecipientBatch]) -> Iterator[list[Recipient]]:
        """The recipients of each batch this run should mail, in order, after the log has
        spoken (the store speaks as each message goes). Decided on address keys alone: a
        reader found done, or past --limit, or left after a stop, costs no row read. Once
        nothing more will be mailed, the rest is only counted; after a stop, not even that when
        counting would mean reading and checking rows (``count_rest`` False: ``rest_unread``)."""
        queued = 0
        for batch in batches:
            if self.stopping and not self.count_rest:
                self.summary.rest_unread = True
                return
            positions = []
            for position, key in enumerate(batch.keys):
                decision = decide(self.state, key, self.options)
                if decision == "done":
                    self.summary.already_done += 1
                elif decision == "unknown":
                    self.summary.unknown_left += 1
                elif self.stopping or (
                    self.options.limit is not None and queued >= self.options.limit
                ):
                    self.summary.not_reached += 1
                else:
                    queued += 1
                    positions.append(position)
            yield batch.fetch(positions) if positions else []

    # -- running -------------------------------------------------------------------------------

    async def run(self, batches: Iterable[RecipientBatch]) -> SendSummary:
        connections = sum(relay.concurrency for relay in self.pool.relays)
        queue: asyncio.Queue[Recipient | None] = asyncio.Queue(maxsize=connections * BATCH * 2)
        self.queue = queue
        workers = [
            asyncio.create_task(self._worker(queue, relay))
            for relay in self.pool.relays
            for _ in range(relay.concurrency)
        ]
        started = asyncio.get_running_loop().time()
        try:
            for chosen in self.selected(batches):
                if not chosen:  # only counting: the messages in flight go on meanwhile
                    await asyncio.sleep(0)
                for recipient in chosen:
                    if self.stopping:
                        self.summary.not_reached += 1
                        continue
                    self.queued += 1
                    await queue.put(recipient)
        finally:
            await self.pool.drained()
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
            # Handed back after the others ended: left for the next run.
            self.summary.not_reached += len(self.returned) + self.queued
            self.log.sync()
            self.summary.elapsed = asyncio.get_running_loop().time() - started
        if self.fatal is not None:
            raise self.fatal
        return self.summary

    async def _take(
        self, queue: asyncio.Queue[Recipient | None], relay: Relay
    ) -> tuple[list[Recipient], bool]:
        """Up to batch_size recipients for ``relay``, once it may take them (pool.turn): those
        handed back first, then the queue's, the first waited for, the rest only if already
        queued. Returns them and whether this worker's end-of-work marker came too."""
        await self.pool.turn(relay)
        if not self.pool.in_service_now(relay):  # set aside at the end: its work is done
            return [], True
        batch: list[Recipient] = []
        while self.returned and len(batch) < self.batch_size:
            batch.append(self.returned.popleft())
        if not batch:
            first = await queue.get()
            if first is None:
                return [], True
            batch = [first]
            self.queued -= 1
        finished = False
        while len(batch) < self.batch_size:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item is None:
                finished = True
                break
            batch.append(item)
            self.queued -= 1
        await self.pool.took(relay, len(batch))
        return batch, finished

    async def _worker(self, queue: asyncio.Queue[Recipient | None], relay: Relay) -> None:
        connection: Connection | None = None
        finished = False
        batch: list[Recipient] = []
        try:
            while not finished:
                batch, finished = await self._take(queue, relay)
                if self.stopping:
                    self.summary.not_reached += len(batch)
                    continue
                if batch:
                    connection = await self._deliver(batch, connection, relay)
                batch = []
        except HebdoError as exc:
            self.fatal = self.fatal or exc
            self.stop(str(exc))
            self.summary.not_reached += len(batch)  # the recipients in hand were not mailed
            while not finished:
                rest, finished = await self._take(queue, relay)
                self.summary.not_reached += len(rest)
        finally:
            if connection is not None:
                await connection.close()

    async def _connect(self, relay: Relay) -> Connection | None:
        """A session with ``relay``; None when it cannot be reached and the pool set it aside
        (its recipients then go to the others)."""
        delay = 1.0
        tries = 1 if self.pool.shared else CONNECT_TRIES
        for attempt in range(1, tries + 1):
            try:
                return await relay.transport.connect()
            except RelayRefused:
                raise
            except TransportError as exc:
                if attempt == tries or self.stopping:
                    self.pool.unreachable(relay, exc)  # raises when no relay is left
                    return None
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _prepare(self, recipient: Recipient, relay: Relay) -> Job | None:
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
            self.factory.envelope_sender(recipient), relay.name if self.pool.shared else None,
        )  # fmt: skip

    async def _deliver(
        self, recipients: list[Recipient], connection: Connection | None, relay: Relay
    ) -> Connection | None:
        """Send a batch over one connection; 4xx answers are retried with backoff, together.

        The store has the last word after every wait (connecting, the rate limit, a backoff),
        just before the batch's first command goes out, and again just before each message's
        content: a reader who left by then is logged skipped and not mailed."""
        jobs = [job for r in recipients if (job := self._prepare(r, relay)) is not None]
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
                connection = await self._connect(relay)
                if connection is None:  # set aside: the others take these recipients
                    await self._hand_back(jobs)
                    return None
            for _ in jobs:
                await self.limiter.wait()  # after connecting: the rate is of messages handed over
                await relay.limiter.wait()
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
                self.pool.replied(relay, reply)
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
            if jobs and not self.pool.in_service_now(relay):  # set aside: the others retry them
                await self._hand_back(jobs)
                return connection
            if jobs and tries < self.options.attempts and not self.stopping:
                await asyncio.sleep(self.options.retry_delay * 2 ** (tries - 1))
        for _ in jobs:
            self._count(Outcome.DEFERRED)
        return connection

    async def _hand_back(self, jobs: list[Job]) -> None:
        """A relay set aside gives its recipients back: into the queue when there is room
        (whoever waits for work takes them), else kept for the next worker's take."""
        assert self.queue is not None
        for job in jobs:
            try:
                self.queue.put_nowait(job.recipient)
                self.queued += 1
            except asyncio.QueueFull:
                self.returned.append(job.recipient)
        await self.pool.wake()

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
                attempt=job.attempt, relay=job.relay,
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
            stage=reply.stage if failed else None, relay=job.relay,
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
