"""Login throttling that a stranger cannot turn against an account's owner.

Failed attempts are counted in Redis (fixed windows, shared by every web process):

- per (account, address) pair: the tight limit (``login_max_failures`` per ``login_window_seconds``), so
  one address guessing one account is stopped quickly without touching anyone else;
- per address: a looser limit (a shared NAT or a guard cabin sees many users), so one address cannot
  spray many accounts;
- per account from every address together: a slower backstop (``login_account_max_failures`` per
  ``login_account_window_seconds``) against guessing spread over many addresses. It does not stop an
  address the account has signed in from before (kept hashed for ``login_known_address_days``), so
  the owner still gets in from the usual place, with no CAPTCHA, while strangers are held back.

Locking the account itself from every address, as before, let anyone who knows an e-mail keep its
owner out.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from app.config import Settings

# A shared address (office NAT, a guard cabin) sees many users; allow it more failures.
ADDRESS_ALLOWANCE_FACTOR = 4


class LoginThrottled(Exception):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"too many failed logins; retry after {retry_after_seconds}s")
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True, slots=True)
class _Keys:
    pair: str
    address: str
    account: str
    known: str
    address_hash: str


def _keys(settings: Settings, identifier: str, address: str) -> _Keys:
    prefix = f"{settings.redis_prefix}auth:login"
    # The identifier is already a keyed blind index; the address is hashed so Redis holds no IP list.
    address_hash = hashlib.sha256(f"{identifier}|{address}".encode()).hexdigest()[:32]
    return _Keys(
        pair=f"{prefix}-failures:pair:{identifier}:{address_hash}",
        address=f"{prefix}-failures:ip:{hashlib.sha256(address.encode()).hexdigest()[:32]}",
        account=f"{prefix}-failures:id:{identifier}",
        known=f"{prefix}-known:{identifier}",
        address_hash=address_hash,
    )


async def check_login_allowed(settings: Settings, redis: Redis, identifier: str, address: str) -> None:
    keys = _keys(settings, identifier, address)
    pair_count, address_count, account_count = await redis.mget(keys.pair, keys.address, keys.account)
    limits = (
        (keys.pair, pair_count, settings.login_max_failures),
        (keys.address, address_count, settings.login_max_failures * ADDRESS_ALLOWANCE_FACTOR),
    )
    for key, count, limit in limits:
        if count is not None and int(count) >= limit:
            raise LoginThrottled(max(1, await redis.ttl(key)))
    backstop_reached = account_count is not None and int(account_count) >= settings.login_account_max_failures
    if backstop_reached and not await is_known_address(settings, redis, identifier, address):
        raise LoginThrottled(max(1, await redis.ttl(keys.account)))


async def record_login_failure(settings: Settings, redis: Redis, identifier: str, address: str) -> None:
    keys = _keys(settings, identifier, address)
    windows = (
        (keys.pair, settings.login_window_seconds),
        (keys.address, settings.login_window_seconds),
        (keys.account, settings.login_account_window_seconds),
    )
    async with redis.pipeline(transaction=True) as pipe:
        for key, seconds in windows:
            # SET NX EX starts the window on the first failure (EXPIRE NX needs Redis 7).
            pipe.set(key, 0, ex=seconds, nx=True)
            pipe.incr(key)
        await pipe.execute()


async def record_login_success(settings: Settings, redis: Redis, identifier: str, address: str) -> None:
    """Forget this pair's failures and remember the address as one the owner uses."""
    keys = _keys(settings, identifier, address)
    keep_seconds = settings.login_known_address_days * 86400
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.pair)
        # A sorted set scored by last use: old addresses are dropped, the set stays small.
        pipe.zadd(keys.known, {keys.address_hash: _now_seconds()})
        pipe.zremrangebyscore(keys.known, 0, _now_seconds() - keep_seconds)
        pipe.zremrangebyrank(keys.known, 0, -51)  # at most the 50 most recent addresses
        pipe.expire(keys.known, keep_seconds)
        await pipe.execute()


async def is_known_address(settings: Settings, redis: Redis, identifier: str, address: str) -> bool:
    keys = _keys(settings, identifier, address)
    score = await redis.zscore(keys.known, keys.address_hash)
    return score is not None and score >= _now_seconds() - settings.login_known_address_days * 86400


def _now_seconds() -> int:
    return int(time.time())
