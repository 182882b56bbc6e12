"""Redis fan-in: count finished images per request and elect the one invocation that fires.

Each request has three keys, all refreshed to the same TTL on every write:

    imgpipe:{request_id}:done     set of finished seqs
    imgpipe:{request_id}:seeded   present once the set holds everything the database knew
    imgpipe:{request_id}:fired    the seq whose invocation completed the set

One Lua script adds a seq and counts, so two images finishing at once cannot both miss the last
count, and the ``fired`` key is claimed in the same step, so at most one seq ever fires. If the
``seeded`` key is missing (first image of the request, or Redis lost its data) the script adds
nothing and answers "needs seed"; the caller then asks the database for the seqs it already holds
as terminal and calls the script again with them, which seeds and counts in one atomic step.

The database is the truth and Redis only a fast counter: if Redis loses the ``fired`` key after a
request fired, a later redelivery may fire again. That is harmless because closing the request
and notifying are idempotent downstream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import redis

from shared.errors import TransientFailure

logger = logging.getLogger(__name__)

KEY_PREFIX = "imgpipe"

# Script replies.
_NOT_COMPLETE = 0
_FIRES = 1
_NEEDS_SEED = 2

# KEYS: done, seeded, fired.  ARGV: seq, total, ttl_s, seeding ("1"/"0"), then the seeded seqs.
_RECORD_SCRIPT = """
local done_key, seeded_key, fired_key = KEYS[1], KEYS[2], KEYS[3]
local seq, total, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[4] == '1' then
  for i = 5, #ARGV do
    redis.call('SADD', done_key, ARGV[i])
  end
  redis.call('SET', seeded_key, '1', 'EX', ttl)
elseif redis.call('EXISTS', seeded_key) == 0 then
  return 2
end
redis.call('SADD', done_key, seq)
redis.call('EXPIRE', done_key, ttl)
redis.call('EXPIRE', seeded_key, ttl)
if redis.call('SCARD', done_key) < total then
  return 0
end
local fired = redis.call('GET', fired_key)
if fired == false then
  redis.call('SET', fired_key, seq, 'EX', ttl)
  return 1
end
redis.call('EXPIRE', fired_key, ttl)
if fired == seq then
  return 1
end
return 0
"""


def completion_keys(request_id: str) -> tuple[str, str, str]:
    """The ``done``, ``seeded`` and ``fired`` keys of a request (braces keep them in one slot)."""
    base = f"{KEY_PREFIX}:{{{request_id}}}"
    return f"{base}:done", f"{base}:seeded", f"{base}:fired"


class CompletionTracker:
    """Records finished images in Redis and tells the caller when its image completed the request."""

    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        if ttl_s < 1:
            raise ValueError("ttl_s must be at least 1 second")
        self._ttl_s = ttl_s
        self._client = client
        # register_script runs EVALSHA and reloads the script itself after a Redis restart.
        self._script = client.register_script(_RECORD_SCRIPT)

    def ping(self) -> None:
        """Raise unless Redis answers (the health check)."""
        self._client.ping()

    def record(
        self, request_id: str, seq: int, total: int, seed: Callable[[], Iterable[int]], *, reseed: bool = False
    ) -> bool:
        """Mark ``seq`` finished; True iff the request is complete and this seq is the one that fired.

        ``seed`` returns the seqs the database already holds as terminal; it is called when Redis
        has no state for the request, or always with ``reseed`` (Redis kept its keys through an
        outage during which images finished uncounted). Redis errors raise ``TransientFailure``.
        """
        if total < 1:
            raise ValueError("total must be at least 1")
        if not 0 <= seq < total:
            raise ValueError(f"seq {seq} is outside 0..{total - 1}")
        keys = completion_keys(request_id)
        reply = _NEEDS_SEED if reseed else self._run(keys, seq, total, seeding=False, seeded=())
        if reply == _NEEDS_SEED:
            seeded = sorted({int(s) for s in seed()})
            outside = [s for s in seeded if not 0 <= s < total]
            if outside:
                raise ValueError(f"seed returned seqs outside 0..{total - 1}: {outside[:5]}")
            logger.info("Seeding fan-in of request %s with %d finished images", request_id, len(seeded))
            reply = self._run(keys, seq, total, seeding=True, seeded=seeded)
        fired = reply == _FIRES
        if fired:
            logger.info("Image %d completed request %s (%d images)", seq, request_id, total)
        return fired

    def _run(self, keys: tuple[str, str, str], seq: int, total: int, *, seeding: bool,
             seeded: Iterable[int]) -> int:
        args: list[str | int] = [seq, total, self._ttl_s, "1" if seeding else "0", *seeded]
        try:
            reply = self._script(keys=list(keys), args=args)
        except redis.RedisError as exc:
            # redis-py messages name host and port at most, never the password; keep only the type.
            raise TransientFailure(f"Redis fan-in failed ({type(exc).__name__})") from exc
        return int(reply)
