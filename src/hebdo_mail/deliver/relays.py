"""A pool of relays (``[[smtp.relays]]``): the mail spread over several SMTP servers by weight,
each with its own connections and rate, and a relay that cannot be reached, or keeps closing
sessions with 421, set aside for a cool-off while the others take its share.

The sender gives each relay its own workers; a worker takes the next batch of recipients only
while its relay is not ahead of its share (its weight over the weights of the relays in service),
so the split follows the weights; a relay set aside has no share until it is back. A single relay (``--smtp`` or ``[smtp] url``) is a pool of one
with no cool-off: a relay that cannot be reached stops the send, as it always has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import HebdoError
from .transport import Connection, Reply, Transport, TransportError

COOL_OFF = 30.0  # seconds a relay is set aside the first time; doubled each time after
REFUSALS_421 = 3  # consecutive 421 replies that set a relay aside
log = logging.getLogger(__name__)


class RateLimiter:
    """At most ``rate`` messages per second (0: no limit)."""

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


@dataclass(eq=False)
class Relay:
    transport: Transport
    concurrency: int
    weight: float = 1.0
    rate: float = 0.0
    taken: int = 0  # recipients handed to this relay's workers in this run
    cool_until: float = 0.0
    cool_offs: int = 0
    unreachable: bool = False  # set aside because it could not be reached (not for 421s)
    refusals_421: int = 0
    waiting: int = 0  # its workers waiting for work
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.rate)

    @property
    def name(self) -> str:
        return self.transport.description


class RelayPool(Transport):
    """Several relays seen as one transport (for a single message, the first in service)."""

    needs_confirmation = True

    def __init__(self, relays: Sequence[Relay], *, cool_off: float = COOL_OFF) -> None:
        self.relays = list(relays)
        self.cool_off = cool_off
        self.description = "relays " + ", ".join(r.name for r in self.relays)
        self._changed: asyncio.Condition | None = None
        self.draining = False  # no recipient is left to hand out: every worker may go to its end
        self.nothing_left: Callable[[], bool] = lambda: True  # the sender says

    @classmethod
    def single(cls, transport: Transport, concurrency: int) -> RelayPool:
        return cls([Relay(transport, concurrency)], cool_off=0.0)

    @property
    def shared(self) -> bool:
        """More than one relay: cool-offs apply and the log names the relay of each message."""
        return len(self.relays) > 1

    async def connect(self) -> Connection:
        for relay in self.in_service() or self.relays:
            try:
                return await relay.transport.connect()
            except TransportError:
                if relay is self.relays[-1]:
                    raise
        raise AssertionError("unreachable")

    # -- sharing the work ------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def in_service(self) -> list[Relay]:
        now = self._now()
        return [r for r in self.relays if r.cool_until <= now]

    @property
    def changed(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def may_take(self, relay: Relay) -> bool:
        """Whether ``relay``'s worker may take the next batch now."""
        ending = self.draining and self.nothing_left()
        active = self.in_service()
        if relay not in active:
            return ending
        if len(active) == 1 or ending:
            return True
        total = sum(r.taken for r in active)
        return relay.taken <= relay.weight / sum(r.weight for r in active) * total

    def in_service_now(self, relay: Relay) -> bool:
        return relay.cool_until <= self._now()

    async def drained(self) -> None:
        """Every recipient is queued: once none is left, every worker may go to its end."""
        self.draining = True
        await self.wake()

    async def wake(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def turn(self, relay: Relay) -> None:
        """Wait until ``relay`` may take work (in service, and not ahead of its share while
        another relay waits for work)."""
        relay.waiting += 1
        try:
            async with self.changed:
                self.changed.notify_all()  # a relay now waits: others may have to yield
                while not self.may_take(relay):
                    pause = relay.cool_until - self._now()
                    with contextlib.suppress(TimeoutError):  # a cool-off ends by itself
                        await asyncio.wait_for(self.changed.wait(), max(pause, 0.05))
        finally:
            relay.waiting -= 1

    async def took(self, relay: Relay, count: int) -> None:
        relay.taken += count
        await self.wake()

    # -- setting a relay aside -------------------------------------------------------------

    def unreachable(self, relay: Relay, error: TransportError) -> None:
        """A relay that could not be reached: set aside, or (when every relay is) the end."""
        relay.unreachable = True
        if not self.shared or all(r.unreachable for r in self.relays):
            names = ", ".join(r.transport.description for r in self.relays)
            if self.shared:
                raise TransportError(f"no relay could be reached ({names}): {error.message}")
            raise error
        self._set_aside(relay, f"cannot be reached ({error.message})")

    def replied(self, relay: Relay, reply: Reply) -> None:
        """Note a reply: a relay that closes the session with 421 again and again is set aside."""
        relay.unreachable = False
        if reply.code == 421:
            relay.refusals_421 += 1
            if self.shared and relay.refusals_421 >= REFUSALS_421:
                relay.refusals_421 = 0
                self._set_aside(relay, f"answered 421 {REFUSALS_421} times in a row")
        elif reply.code is not None:
            relay.refusals_421 = 0

    def _set_aside(self, relay: Relay, why: str) -> None:
        pause = self.cool_off * 2**relay.cool_offs
        relay.cool_offs += 1
        relay.cool_until = self._now() + pause
        log.warning(
            "relay %s %s: set aside for %.0f s, the others take its share", relay.name, why, pause
        )


class RelaySettingsError(HebdoError):
    """[[smtp.relays]] cannot be used as written."""
