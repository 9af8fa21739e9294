"""A ceiling on one process's PostgreSQL connections, however many project databases it reads.

The gateway searches many project databases. A pool per database that never closes holds one
or more server connections per project searched, until PostgreSQL refuses everyone ("too many
clients already"), the operator and the indexers included. Here every connection the process
opens is counted against one budget: pools of recently searched databases stay cached, and the
least recently used idle pool is closed when another one needs room. Every connection carries a
statement timeout, so no query can hold its connection for long.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress

import asyncpg

DEFAULT_MAX_CONNECTIONS = 16
DEFAULT_STATEMENT_TIMEOUT = 10.0  # seconds
SEARCH_POOL_SIZE = 2  # a hybrid search runs its two legs side by side
MIN_CONNECTIONS = 4
IDLE_CONNECTION_SECONDS = 60.0
WAIT_SECONDS = 30.0
GATEWAY_APPLICATION_NAME = "codebase-mcp-gateway"  # how the gateway's connections show in pg_stat_activity

Connector = Callable[[str], AbstractAsyncContextManager[asyncpg.Connection]]


class ConnectionsExhausted(RuntimeError):
    """Every connection of the budget stayed busy for too long; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    """How many server connections a process may hold, and how long one statement may run."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT  # seconds; 0 turns it off
    application_name: str = "codebase-mcp"

    def __post_init__(self) -> None:
        if self.max_connections < MIN_CONNECTIONS:
            raise ValueError(f"the database connection ceiling must be at least {MIN_CONNECTIONS} "
                             f"(not {self.max_connections}): the jobs registry and one search need that many")
        if self.statement_timeout < 0:
            raise ValueError(f"the statement timeout must be 0 (none) or a positive number of seconds, "
                             f"not {self.statement_timeout}")

    def server_settings(self, *, statement_timeout: bool = True) -> dict[str, str]:
        milliseconds = int(self.statement_timeout * 1000) if statement_timeout else 0
        return {"application_name": self.application_name, "statement_timeout": str(milliseconds)}


@dataclasses.dataclass(frozen=True)
class ConnectionUsage:
    """A snapshot of a budget, for metrics: what the ceiling is and how much of it is used."""
    limit: int
    reserved: int  # connections of the ceiling taken (an open pool takes its full size)
    in_use: int  # open connections serving a query or held by a caller
    idle: int  # open connections waiting in a pool
    search_pools: int


@dataclasses.dataclass
class _CachedPool:
    pool: asyncpg.Pool
    leases: int = 0


class ConnectionBudget:
    """Every PostgreSQL connection of one process, counted against `limits.max_connections`.

    A search pool reserves its full size while it is open; a one-off connection reserves one.
    When a reservation does not fit, idle search pools are closed, least recently used first;
    when none is idle, it waits for one (at most WAIT_SECONDS).
    """

    def __init__(self, limits: ConnectionLimits | None = None, *,
                 init: Callable[[asyncpg.Connection], Awaitable[None]] | None = None) -> None:
        self.limits = limits or ConnectionLimits()
        self._init = init
        self._reserved = 0
        self._changed = asyncio.Condition()
        self._cached: OrderedDict[str, _CachedPool] = OrderedDict()
        self._dedicated: dict[int, tuple[asyncpg.Pool, int]] = {}
        self._one_off = 0

    @property
    def reserved(self) -> int:
        return self._reserved

    @property
    def cached_pools(self) -> int:
        return len(self._cached)

    def usage(self) -> ConnectionUsage:
        pools = [entry.pool for entry in self._cached.values()] + [pool for pool, _ in self._dedicated.values()]
        idle = sum(pool.get_idle_size() for pool in pools)
        pooled = sum(pool.get_size() for pool in pools)
        return ConnectionUsage(limit=self.limits.max_connections, reserved=self._reserved,
                               in_use=pooled - idle + self._one_off, idle=idle, search_pools=len(self._cached))

    @asynccontextmanager
    async def pool(self, url: str) -> AsyncIterator[asyncpg.Pool]:
        """The cached pool of a database, kept open (not evicted) while the caller holds it."""
        entry = await self._lease(url)
        try:
            yield entry.pool
        finally:
            async with self._changed:
                entry.leases -= 1
                self._changed.notify_all()

    @asynccontextmanager
    async def connect(self, url: str, *, statement_timeout: bool = True) -> AsyncIterator[asyncpg.Connection]:
        """A one-off connection within the budget; `statement_timeout=False` for provisioning (DDL)."""
        async with self._changed:
            await self._reserve(1)
        try:
            conn = await asyncpg.connect(
                url, server_settings=self.limits.server_settings(statement_timeout=statement_timeout))
            self._one_off += 1
            try:
                yield conn
            finally:
                self._one_off -= 1
                await conn.close()
        finally:
            await self._release(1)

    def connector(self, *, statement_timeout: bool = True) -> Connector:
        return lambda url: self.connect(url, statement_timeout=statement_timeout)

    async def open_dedicated_pool(self, url: str, size: int,
                                  init: Callable[[asyncpg.Connection], Awaitable[None]] | None = None
                                  ) -> asyncpg.Pool:
        """A pool held for the life of its owner (the jobs registry); close it with close_dedicated_pool."""
        async with self._changed:
            await self._reserve(size)
        try:
            pool = await self._create_pool(url, size, init)
        except BaseException:
            await self._release(size)
            raise
        self._dedicated[id(pool)] = (pool, size)
        return pool

    async def close_dedicated_pool(self, pool: asyncpg.Pool) -> None:
        _, size = self._dedicated.pop(id(pool), (pool, 0))
        try:
            await pool.close()
        finally:
            await self._release(size)

    async def close(self) -> None:
        async with self._changed:
            entries = list(self._cached.values())
            self._cached.clear()
            self._reserved -= SEARCH_POOL_SIZE * len(entries)
            self._changed.notify_all()
        await asyncio.gather(*(entry.pool.close() for entry in entries), return_exceptions=True)

    # --- the accounting ---

    async def _lease(self, url: str) -> _CachedPool:
        async with self._changed:
            entry = self._cached.get(url)
            if entry is None:
                await self._reserve(SEARCH_POOL_SIZE)
                entry = self._cached.get(url)  # another task may have opened it while this one waited
                if entry is not None:
                    self._reserved -= SEARCH_POOL_SIZE
                else:
                    entry = await self._new_cached_pool(url)
            entry.leases += 1
            self._cached.move_to_end(url)
            return entry

    async def _new_cached_pool(self, url: str) -> _CachedPool:
        # min_size=0: creating the pool opens no connection, so holding the condition here is brief.
        try:
            pool = await self._create_pool(url, SEARCH_POOL_SIZE, self._init)
        except BaseException:
            self._reserved -= SEARCH_POOL_SIZE
            raise
        entry = self._cached[url] = _CachedPool(pool)
        return entry

    async def _reserve(self, count: int) -> None:
        """Take `count` connections of the budget (the condition held), evicting idle pools first."""
        deadline = time.monotonic() + WAIT_SECONDS
        while self._reserved + count > self.limits.max_connections:
            idle = next((url for url, entry in self._cached.items() if entry.leases == 0), None)
            if idle is not None:
                entry = self._cached.pop(idle)
                self._reserved -= SEARCH_POOL_SIZE
                await entry.pool.close()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectionsExhausted(
                    f"all {self.limits.max_connections} database connections of this gateway stayed busy "
                    f"for {WAIT_SECONDS:.0f} s; retry, or raise --max-database-connections")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=remaining)
        self._reserved += count

    async def _release(self, count: int) -> None:
        async with self._changed:
            self._reserved -= count
            self._changed.notify_all()

    async def _create_pool(self, url: str, size: int,
                           init: Callable[[asyncpg.Connection], Awaitable[None]] | None) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            url, min_size=0, max_size=size, init=init,
            max_inactive_connection_lifetime=IDLE_CONNECTION_SECONDS,
            server_settings=self.limits.server_settings())


@asynccontextmanager
async def direct_connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection, for processes with one database (the indexer, the operator, the CLI)."""
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()
