"""The servers the tests run against: `VOICEGW_TEST_REDIS_URL` / `VOICEGW_TEST_DATABASE_URL`
when set, else the local servers on their default ports, else embedded ones."""

from __future__ import annotations

from gateway.embedded import LocalServers


class TestServers(LocalServers):
    __test__ = False  # not a test class, whatever its name says
