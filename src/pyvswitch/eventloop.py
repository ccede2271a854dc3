"""A small single-threaded event loop over file descriptors (epoll on Linux).

The daemon runs everything in one loop: device receive rings, upcall
handlers, the control socket and timers.  Backends register their device
fds; the daemon registers its sockets.  One wake-up handles a batch per ready
fd, then the idle callbacks (e.g. upcall handlers) run.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import selectors
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Callback = Callable[[], None]


class EventLoop:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.selector = selectors.DefaultSelector()
        self.clock = clock
        self._timers: list[tuple[float, int, float, Callback]] = []
        self._seq = itertools.count()
        self._idle: list[Callable[[], int]] = []
        self._running = False
        self.n_iterations = 0
        self.n_callback_errors = 0

    # -- registration ---------------------------------------------------------

    def add_reader(self, fd: int, callback: Callback) -> None:
        """Call ``callback()`` whenever ``fd`` is readable."""
        try:
            self.selector.register(fd, selectors.EVENT_READ, callback)
        except KeyError:
            self.selector.modify(fd, selectors.EVENT_READ, callback)

    def remove_reader(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fd)

    def call_every(self, interval: float, callback: Callback) -> None:
        """Call ``callback()`` every ``interval`` seconds."""
        heapq.heappush(self._timers, (self.clock() + interval, next(self._seq), interval, callback))

    def call_later(self, delay: float, callback: Callback) -> None:
        heapq.heappush(self._timers, (self.clock() + delay, next(self._seq), 0.0, callback))

    def add_idle(self, callback: Callable[[], int]) -> None:
        """Run ``callback()`` once per iteration; it returns how much work it did.
        While idle callbacks keep finding work the loop does not sleep."""
        self._idle.append(callback)

    def remove_idle(self, callback: Callable[[], int]) -> None:
        if callback in self._idle:
            self._idle.remove(callback)

    # -- running ----------------------------------------------------------------

    def _safe(self, cb: Callable[[], object]) -> object:
        try:
            return cb()
        except Exception:  # a failing callback never stops the loop
            self.n_callback_errors += 1
            log.exception("event loop callback %r failed", cb)
            return 0

    def run_once(self, timeout: float | None = None) -> None:
        now = self.clock()
        if self._timers:
            wait = max(0.0, self._timers[0][0] - now)
            timeout = wait if timeout is None else min(timeout, wait)
        for key, _mask in self.selector.select(timeout):
            cb: Callback = key.data
            self._safe(cb)
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            _when, _seq, interval, cb = heapq.heappop(self._timers)
            if interval:
                heapq.heappush(self._timers, (now + interval, next(self._seq), interval, cb))
            self._safe(cb)
        self.n_iterations += 1

    def run(self, poll_interval: float = 1.0) -> None:
        """Run until :meth:`stop`."""
        self._running = True
        while self._running:
            worked = 0
            for cb in list(self._idle):
                r = self._safe(cb)
                worked += r if isinstance(r, int) else 0
            self.run_once(0.0 if worked else poll_interval)

    def stop(self) -> None:
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    def close(self) -> None:
        self.selector.close()
