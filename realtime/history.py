"""Per-topic sequence numbers, epochs and bounded history in Redis.

For each topic there are two keys (hash-tagged by topic, so both land on one cluster slot):

- ``<prefix>rt:{<topic>}:meta``: a hash with ``seq`` (last sequence number) and ``epoch``
  (a random id chosen when ``seq`` is created, so a flushed or restarted Redis shows up
  as a new epoch instead of silently restarting the numbering);
- ``<prefix>rt:{<topic>}:hist``: a stream whose entry ids are ``<seq>-0``, holding the
  encoded event frame, bounded by length (exact MAXLEN) and by age.

One Lua script appends: it increments the sequence, builds the event frame, appends it to
the history, trims it and publishes ``"<seq> <epoch> <frame>"`` on the topic's channel,
all atomically, so history order, sequence order and publish order are the same.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from app.config import Settings

# Meta outlives the history so that a resume after a long idle period is answered with
# "history_gone" rather than being mistaken for a brand-new topic.
META_TTL_SECONDS: Final = 7 * 24 * 3600

APPEND_LUA: Final = """
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if seq == 1 or not epoch then
  -- A new numbering: any older history belongs to a lost epoch.
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  redis.call('DEL', KEYS[2])
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ts = now[1] .. '.' .. string.format('%06d', tonumber(now[2]))
local frame = '{"op":"event","topic":' .. ARGV[3] .. ',"epoch":"' .. epoch .. '","seq":' .. seq ..
  ',"type":' .. ARGV[4] .. ',"ts":' .. ts .. ',"data":' .. ARGV[5] .. '}'
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[6], seq .. '-0', 't', now_ms, 'f', frame)
-- Age bound: drop the oldest entries older than max_age, at most one batch per append.
local cutoff = now_ms - tonumber(ARGV[7])
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if oldest[1] and tonumber(oldest[1][2][2]) < cutoff then
  local batch = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 256)
  local keep = nil
  for _, entry in ipairs(batch) do
    if tonumber(entry[2][2]) >= cutoff then keep = entry[1] break end
  end
  if not keep then
    keep = (tonumber(string.match(batch[#batch][1], '^(%d+)')) + 1) .. '-0'
  end
  redis.call('XTRIM', KEYS[2], 'MINID', keep)
end
-- An idle topic's history ages out as a whole.
redis.call('PEXPIRE', KEYS[2], ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('PUBLISH', ARGV[1], seq .. ' ' .. epoch .. ' ' .. frame)
return seq
"""
_APPEND_SHA: Final = hashlib.sha1(APPEND_LUA.encode()).hexdigest()


def meta_key(settings: Settings, topic: str) -> str:
    return f"{settings.redis_prefix}rt:{{{topic}}}:meta"


def history_key(settings: Settings, topic: str) -> str:
    return f"{settings.redis_prefix}rt:{{{topic}}}:hist"


def channel_prefix(settings: Settings) -> str:
    return f"{settings.redis_prefix}rt:ch:"


def channel(settings: Settings, topic: str) -> str:
    return channel_prefix(settings) + topic


async def append(
    redis: Redis,
    settings: Settings,
    topic: str,
    *,
    topic_json: bytes,
    type_json: bytes,
    data_json: bytes,
    max_len: int,
    max_age_ms: int,
) -> int:
    """Append one event to the topic's history and publish it; returns its sequence number."""
    keys = (meta_key(settings, topic), history_key(settings, topic))
    args: list[Any] = [
        channel(settings, topic),
        secrets.token_hex(8),  # used only if this append starts a new epoch
        topic_json,
        type_json,
        data_json,
        max_len,
        max_age_ms,
        max(META_TTL_SECONDS * 1000, 2 * max_age_ms),
    ]
    try:
        seq = await redis.evalsha(_APPEND_SHA, len(keys), *keys, *args)  # type: ignore[misc]
    except NoScriptError:
        seq = await redis.eval(APPEND_LUA, len(keys), *keys, *args)  # type: ignore[misc]
    return int(seq)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a topic stands: its epoch (None if it never had an event) and last sequence number."""

    epoch: str | None
    seq: int


@dataclass(frozen=True, slots=True)
class Since:
    """The topic's position and the frames of the events after a given sequence number."""

    position: Position
    entries: list[tuple[int, str]]  # (seq, frame), ascending


async def read_since(redis: Redis, settings: Settings, topic: str, after: int | None) -> Since:
    """The topic's position and, when ``after`` is given, every event still in history after it.

    Both are read in one MULTI, so the entries end exactly at the returned position.
    """
    pipe = redis.pipeline(transaction=True)
    pipe.hmget(meta_key(settings, topic), ["seq", "epoch"])
    if after is not None:
        pipe.xrange(history_key(settings, topic), min=f"{after + 1}-0", max="+")
    results = await pipe.execute()
    raw_seq, raw_epoch = results[0]
    position = Position(epoch=raw_epoch.decode() if raw_epoch else None, seq=int(raw_seq or 0))
    entries: list[tuple[int, str]] = []
    if after is not None:
        for entry_id, fields in results[1]:
            entries.append((int(entry_id.split(b"-", 1)[0]), fields[b"f"].decode()))
    return Since(position=position, entries=entries)
