"""The load side of `bench.py watch` (bench_watch.py): the streams' requests, the write
they watch for, the empty streaming handler (the baseline server), and a load process that
holds its share of the streams and times each CHANGE's arrival."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from bench import RESERVE_ON_HAND, SERVER_CPU, reserve_sku, reserve_store_ids

WATCH_ON_HAND = 500_000  # change k sets the hot pair's on_hand to WATCH_ON_HAND + k


def load_cpus() -> set[int]:
    """The cores for the load processes: every core but the server's (all, on one core)."""
    cores = os.sched_getaffinity(0) - {SERVER_CPU}
    return cores or {SERVER_CPU}


def watch_requests(stores: list[str], skus: int, streams: int, own: int) -> list[Any]:
    """Stream i watches the hot pair (the first sku at the first store) and OWN pairs of its
    own, EXACT, with the longest heartbeat (none falls in the measurement)."""
    from omnistock.v1 import availability_pb2, common_pb2

    hot = availability_pb2.SkuLocation(sku=reserve_sku(0), location_id=stores[0])
    requests = []
    for i in range(streams):
        pairs = [hot]
        for j in range(own):
            k = 1 + (i * own + j) % (skus - 1)
            pairs.append(
                availability_pb2.SkuLocation(
                    sku=reserve_sku(k), location_id=stores[(i + j) % len(stores)]
                )
            )
        requests.append(
            availability_pb2.WatchAvailabilityRequest(
                pairs=pairs, exposure=common_pb2.EXPOSURE_EXACT, heartbeat_seconds=300
            )
        )
    return requests


def hot_update(stores: list[str], on_hand: int) -> Any:
    """The write that the streams watch for: the hot pair's on_hand, as of now."""
    from datetime import UTC, datetime

    from omnistock.v1 import feed_pb2

    update = feed_pb2.StockUpdate(location_id=stores[0], sku=reserve_sku(0), on_hand=on_hand)
    update.source_updated_at.FromDatetime(datetime.now(UTC))
    return feed_pb2.ApplyStockUpdatesRequest(updates=[update])


async def serve_watch_empty(listen: str) -> None:
    """The baseline: a grpc.aio server-streaming handler that sends a prebuilt SNAPSHOT,
    then, each time the unary Trigger is called, one small CHANGE (built once, from the
    trigger's update) to every open stream. No request parsing, no per-stream work."""
    import grpc
    from grpc import aio
    from omnistock.v1 import availability_pb2, common_pb2, feed_pb2

    def message(kind: int, updates: list[Any]) -> bytes:
        response = availability_pb2.WatchAvailabilityResponse(
            kind=kind,  # type: ignore[arg-type]
            availabilities=[
                availability_pb2.Availability(
                    location_id=u.location_id, sku=u.sku, status=common_pb2.STOCK_STATUS_IN_STOCK,
                    exposure=common_pb2.EXPOSURE_EXACT, available_to_sell=u.on_hand,
                    on_hand=u.on_hand, reserved=0, safety_stock=0, as_of=u.source_updated_at,
                    confidence=1.0,
                )
                for u in updates
            ],
            resume_token="x" * 60,
        )  # fmt: skip
        response.send_time.GetCurrentTime()
        return response.SerializeToString()

    first = feed_pb2.StockUpdate(location_id="S", sku="SKU", on_hand=RESERVE_ON_HAND)
    first.source_updated_at.GetCurrentTime()
    state: dict[str, Any] = {
        "snapshot": message(availability_pb2.WATCH_EVENT_KIND_SNAPSHOT, [first] * 5),
        "change": b"",
        "event": asyncio.Event(),
    }

    async def watch(request: bytes, context: aio.ServicerContext) -> Any:
        yield state["snapshot"]
        while True:
            event = state["event"]
            await event.wait()
            yield state["change"]

    async def trigger(request: Any, context: aio.ServicerContext) -> bytes:
        state["change"] = message(availability_pb2.WATCH_EVENT_KIND_CHANGE, list(request.updates))
        event, state["event"] = state["event"], asyncio.Event()
        event.set()
        return b""

    handler = grpc.method_handlers_generic_handler(
        "bench.Watch",
        {
            "Watch": grpc.unary_stream_rpc_method_handler(watch),
            "Trigger": grpc.unary_unary_rpc_method_handler(
                trigger, request_deserializer=feed_pb2.ApplyStockUpdatesRequest.FromString
            ),
        },
    )
    server = aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(listen)
    await server.start()
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    await server.stop(1)


# ---------------------------------------------------------------- a load process


def client_main(conn: Connection, plan: dict[str, Any]) -> None:
    os.sched_setaffinity(0, load_cpus())
    asyncio.run(_client(conn, plan))


async def _client(conn: Connection, plan: dict[str, Any]) -> None:
    """Stream i of the run for every i = plan['index'] mod plan['clients']: opens them on
    its own connections when told, says when each change has reached all of them, and at
    the end sends every receipt time."""
    from grpc import aio
    from omnistock.v1 import availability_pb2

    stores = reserve_store_ids(plan["stores"])
    everything = watch_requests(stores, plan["skus"], plan["streams"], plan["own_pairs"])
    requests = everything[plan["index"] :: plan["clients"]]
    n, total = len(requests), plan["total"]
    channels = [
        aio.insecure_channel(plan["target"], options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(plan["channels"])
    ]
    methods = [
        channel.unary_stream(
            plan["watch_path"],
            request_serializer=availability_pb2.WatchAvailabilityRequest.SerializeToString,
            response_deserializer=availability_pb2.WatchAvailabilityResponse.FromString,
        )
        for channel in channels
    ]
    received = [[0.0] * n for _ in range(total)]  # perf_counter at receipt
    sent_at = [0.0] * total  # the latest server send_time (wall clock) of each change
    counts = [0] * total
    state: dict[str, Any] = {"snapshots": 0, "unexpected": 0, "bytes": 0, "cpu": 0.0}
    hot = (reserve_sku(0), stores[0])
    snapshot_kind = availability_pb2.WATCH_EVENT_KIND_SNAPSHOT
    change_kind = availability_pb2.WATCH_EVENT_KIND_CHANGE
    opened_at = 0.0
    commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))

    async def follow(i: int, call: Any) -> None:
        async for message in call:
            now = time.perf_counter()
            if message.kind == snapshot_kind and state["snapshots"] < n:
                state["snapshots"] += 1
                if state["snapshots"] == n:
                    conn.send(("opened", now - opened_at))
                continue
            k = None
            if message.kind == change_kind:
                for a in message.availabilities:
                    if (a.sku, a.location_id) == hot:
                        k = a.on_hand - WATCH_ON_HAND
            if k is None or not 0 <= k < total or received[k][i]:
                state["unexpected"] += 1
                continue
            received[k][i] = now
            state["bytes"] = state["bytes"] or message.ByteSize()
            send = message.send_time.seconds + message.send_time.nanos / 1e9
            sent_at[k] = max(sent_at[k], send)
            counts[k] += 1
            if counts[k] == n:
                conn.send(("done", k))

    calls: list[Any] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for channel in channels:
            await channel.channel_ready()
        conn.send(("ready",))
        while True:
            command = await commands.get()
            if command[0] == "open":
                opened_at = time.perf_counter()
                for i, request in enumerate(requests):
                    call = methods[i % len(methods)](request)
                    calls.append(call)
                    tasks.append(asyncio.create_task(follow(i, call)))
            elif command[0] == "measure":
                state["cpu"] = time.process_time()
            elif command[0] == "stop":
                state["cpu"] = time.process_time() - state["cpu"]
                break
    finally:
        for call in calls:
            call.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()
    conn.send(("result", received, sent_at, state["unexpected"], state["bytes"], state["cpu"]))
