"""JetStream set-up and NATS micro discovery against a real nats-server."""

from __future__ import annotations

import asyncio

from nats.js.api import ConsumerConfig, RetentionPolicy, StreamConfig

from shared.runtime import bus
from shared.runtime.config import Settings
from shared.runtime.logs import request_id


async def test_streams_and_consumers_are_idempotent(infra: Settings) -> None:
    nc = await bus.connect(infra, "test-bus")
    js = nc.jetstream()
    try:
        config = StreamConfig(name="T_WORK", subjects=["t.work.>"], retention=RetentionPolicy.WORK_QUEUE)
        await asyncio.gather(*(bus.ensure_stream(js, config) for _ in range(3)))
        await bus.ensure_stream(js, StreamConfig(name="T_WORK", subjects=["t.work.>"], retention=RetentionPolicy.WORK_QUEUE,
                                                 max_msgs=1000))
        assert (await js.stream_info("T_WORK")).config.max_msgs == 1000
        consumer = ConsumerConfig(durable_name="workers", ack_wait=30)
        for _ in range(2):
            await bus.ensure_consumer(js, "T_WORK", consumer)
        assert (await js.consumer_info("T_WORK", "workers")).config.durable_name == "workers"
    finally:
        await nc.close()


async def test_events_carry_the_request_id(infra: Settings) -> None:
    nc = await bus.connect(infra, "test-events")
    try:
        sub = await nc.subscribe("t.events")
        token = request_id.set("rid-event")
        try:
            await bus.publish_event(nc, "t.events", {"generation": 3})
        finally:
            request_id.reset(token)
        msg = await sub.next_msg(timeout=2)
        assert msg.headers and msg.headers["x-request-id"] == "rid-event"
        token = request_id.set("")
        try:
            assert bus.adopt_request_id(msg) == "rid-event" and request_id.get() == "rid-event"
        finally:
            request_id.reset(token)
    finally:
        await nc.close()


async def test_discovery_lists_every_live_instance(infra: Settings) -> None:
    nc = await bus.connect(infra, "test-discovery")
    try:
        assert await bus.discover(nc, "tensor-probe") == []
        a = await bus.register(nc, "tensor-probe", "i-1", "127.0.0.1:7001", "0.1.0")
        b = await bus.register(nc, "tensor-probe", "i-2", "127.0.0.1:7002", "0.1.0")
        found = sorted(i["grpc_addr"] for i in await bus.discover(nc, "tensor-probe"))
        assert found == ["127.0.0.1:7001", "127.0.0.1:7002"]
        await b.stop()
        assert [i["instance_id"] for i in await bus.discover(nc, "tensor-probe")] == ["i-1"]
        await a.stop()
    finally:
        await nc.close()
