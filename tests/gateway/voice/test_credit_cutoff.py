"""A call whose tenant runs out of credit is ended by the gateway: a goodbye, a hang-up
through Twilio, and a balance that stays within the documented overdraft bound."""

from __future__ import annotations

import aiohttp

from load.caller import CallScript
from load.emulators.server import RunningEmulators
from metering.control import PHONE_POLICY
from metering.meters import Meter
from metering.ratecard import default_rate_card
from metering.rating import rate_usage
from tests.gateway.voice.conftest import start_gateway
from tests.gateway.voice.test_calls import balance_of, call_record, place_call

# 95 credits a minute: 32 credits buy about 20 seconds of a call in which the caller
# says nothing (no LLM turns, only the connection is billed).
CREDITS_FOR_20_S = 32


async def test_call_is_ended_with_a_goodbye_when_the_final_grant_is_used(
        redis_url: str, database_url: str, key_prefix: str,
        emulators: RunningEmulators) -> None:
    gateway = await start_gateway(redis_url, database_url, key_prefix, emulators,
                                  CREDITS_FOR_20_S)
    try:
        result, _ = await place_call(gateway, CallScript([], max_call_s=45))
        assert result.ended_by == "gateway"
        record = await call_record(gateway, result.call_sid)
        assert record["disposition"] == "out_of_credit"
        call_ms = record["usage"][Meter.CALL_SECONDS.value]
        assert 18_000 <= call_ms <= 30_000, call_ms
        # The goodbye was said after the last grant ran out...
        assert result.agent_audio_ms > 3_000
        hang_ups = [c for c in emulators.config.vendors.twilio_calls
                    if c["sid"] == result.call_sid]
        assert [c.get("Status") for c in hang_ups] == ["completed"]
        # ...and billed only up to the overdraft limit; the rest is written off.
        balance = await balance_of(gateway)
        assert balance["reserved_micro_credits"] == 0
        assert balance["available_micro_credits"] >= -PHONE_POLICY.overdraft_limit_micro
        rated = rate_usage(default_rate_card(), record["usage"]).total
        assert record["micro_credits"] + record["written_off_micro_credits"] == rated
        assert (balance["available_micro_credits"] + record["micro_credits"]
                == CREDITS_FOR_20_S * 1_000_000)
        async with aiohttp.ClientSession() as http:
            refused = await http.get(f"{gateway.base}/v1/balance", headers=gateway.auth)
            assert (await refused.json())["paused"] is True
        again, _ = await place_call(gateway, CallScript([], max_call_s=5))
        assert again.refused_with and "not available" in again.refused_with[0]
    finally:
        await gateway.server.close()
