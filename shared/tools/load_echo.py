"""A bare grpc.aio server that answers every unary method by echoing the request bytes.

The baseline for load figures: driven with the same `tessera load` call as a real
service (same method path, same requests), it measures what gRPC itself costs on
this machine, so a service's RPS can be stated as a ratio to it.

    python -m shared.tools.load_echo --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import grpc


async def _echo(request: bytes, context: Any) -> bytes:
    return request


class EchoHandler(grpc.GenericRpcHandler):
    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(_echo)


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((EchoHandler(),))
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise SystemExit(f"load_echo: cannot bind {host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"echo server on {host}:{port}", flush=True)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
