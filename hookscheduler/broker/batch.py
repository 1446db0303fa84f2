"""Keys the scheduler loop writes every cycle (each site's last tick and latest step, the process's heartbeat),
gathered and written in one round trip per Redis.

One ``SET`` per key costs a round trip each, and they were most of an idle cycle. A pipeline saves the round
trips but pays redis-py's pipeline machinery; one ``EVALSHA`` of a tiny script that runs the ``SET``\\ s is
cheaper still (measured: about 30% below a two-command pipeline, and below a single ``SET`` for two keys).
The script also *swaps* keys (reads the previous value as it writes the new one, :meth:`SetBatch.swap`): the
clock-excursion check's read of each site's latest step rides on the same round trip as its last tick. The
swap is a ``GET`` and a ``SET`` inside the script (atomic there), so it needs no Redis 6.2 ``SET ... GET``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from redis.commands.core import Script

# ARGV holds (value, ttl, swap) for each key; the reply is the previous value of each swapped key, in order
# (a missing key reads as nil).
_SET_ALL = (
    "local out = {} "
    "for i, key in ipairs(KEYS) do "
    "if ARGV[3 * i] == '1' then out[#out + 1] = redis.call('GET', key) end "
    "redis.call('SET', key, ARGV[3 * i - 2], 'EX', ARGV[3 * i - 1]) end "
    "return out"
)
_script: Script | None = None


class SetBatch:
    """``SET key value EX ttl`` for each key gathered with :meth:`set` or :meth:`swap`, written by :meth:`flush`."""

    def __init__(self, conn: redis.Redis) -> None:
        self.conn = conn
        self.keys: list[str] = []
        self.args: list[Any] = []
        self.then: list[Callable[[Any], None]] = []

    def set(self, name: str, value: str, ex: int) -> None:
        """Queue one key (the signature of ``Redis.set`` as the loop calls it)."""
        self.keys.append(name)
        self.args += [value, int(ex), 0]

    def swap(self, name: str, value: str, ex: int, then: Callable[[Any], None]) -> None:
        """Queue one key whose previous value :meth:`flush` hands to ``then`` (bytes, or None: it had none)
        once the batch is written. ``then`` must not raise."""
        self.keys.append(name)
        self.args += [value, int(ex), 1]
        self.then.append(then)

    def discard(self, name: str) -> None:
        """Take back the plain :meth:`set` of ``name`` queued last (a step whose runs could not be sent after
        all must not write its last tick)."""
        for i in range(len(self.keys) - 1, -1, -1):
            if self.keys[i] == name and self.args[3 * i + 2] == 0:
                del self.keys[i]
                del self.args[3 * i:3 * i + 3]
                return

    def __len__(self) -> int:
        return len(self.keys)

    def flush(self) -> None:
        """Write every queued key in one round trip, then hand each swapped key's previous value to its
        callback (raises Redis errors, calling none; the batch is then empty)."""
        keys, args, then = self.keys, self.args, self.then
        self.keys, self.args, self.then = [], [], []
        if len(keys) == 1 and not then:
            self.conn.set(keys[0], args[0], ex=args[1])
        elif keys:
            global _script
            if _script is None:
                _script = self.conn.register_script(_SET_ALL)
            olds = _script(keys=keys, args=args, client=self.conn)
            olds = list(olds) if isinstance(olds, list) else []
            olds += [None] * (len(then) - len(olds))  # trailing nils are dropped from a Lua array
            for callback, old in zip(then, olds, strict=False):
                callback(old)


__all__ = ["SetBatch"]
