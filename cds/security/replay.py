"""The ``jti`` replay cache: a token id is accepted once, for as long as the token is valid.

In-memory, so per process: with several workers or instances a replay could land on another
process. A shared store (Redis ``SET NX EX``) is the upgrade path; the interface is one method.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

DEFAULT_CAPACITY = 100_000


class JtiReplayCache:
    """Remembers ``(iss, jti)`` pairs until their token expires, at most ``capacity`` of them.

    When full, the entry closest to expiry is dropped first: that keeps the replay window it
    reopens as short as possible. Dropping a live entry is logged as a capacity problem.
    """

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, clock: Callable[[], float] = time.time
    ) -> None:
        self.capacity = capacity
        self._clock = clock
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        """Record the token id; False when it was already seen (a replay)."""
        now = self._clock()
        self._drop_expired(now)
        key = (iss, jti)
        if key in self._expiry:
            return False
        if len(self._expiry) >= self.capacity:
            self._drop_soonest(now)
        self._expiry[key] = expires_at
        heapq.heappush(self._heap, (expires_at, key))
        return True

    def _drop_expired(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, key = heapq.heappop(self._heap)
            self._expiry.pop(key, None)

    def _drop_soonest(self, now: float) -> None:
        expires_at, key = heapq.heappop(self._heap)
        self._expiry.pop(key, None)
        logger.warning(
            "jti replay cache full (%d entries): forgot a token id %.0f s before it expires",
            self.capacity,
            expires_at - now,
        )
