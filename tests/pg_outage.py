"""PostgreSQL made unavailable for ONE test database, never for the shared server: the
database refuses new connections and its open ones are terminated, then it is restored.
And a pool that points at a loopback port nothing listens on."""

from __future__ import annotations

import asyncpg

from gateway.embedded import free_port


class DatabaseOutage:
    """`await outage.start()` takes the test's database away; `await outage.end()` brings
    it back (also on `close`, so a failing test never leaves it blocked)."""

    def __init__(self, admin_url: str, database_url: str) -> None:
        self.admin_url = admin_url
        self.database = database_url.rpartition("/")[2]
        self._admin: asyncpg.Connection | None = None

    async def _conn(self) -> asyncpg.Connection:
        if self._admin is None:  # opened up front: ending the outage must be quick
            self._admin = await asyncpg.connect(self.admin_url)
        return self._admin

    async def start(self) -> None:
        conn = await self._conn()
        await conn.execute(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false')
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = $1 AND pid <> pg_backend_pid()", self.database)

    async def end(self) -> None:
        conn = await self._conn()
        await conn.execute(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true')

    async def close(self) -> None:
        if self._admin is not None:
            await self.end()
            await self._admin.close()
            self._admin = None


async def pool_on_a_closed_port() -> asyncpg.Pool:
    """A pool whose every connection attempt is refused (nothing listens on the port)."""
    pool = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/none",
                                     min_size=0, max_size=2)
    assert pool is not None
    return pool
