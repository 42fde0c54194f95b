"""QUIC data plane vs gRPC streaming, same payloads, same server process, on loopback (`make bench-streams`).

1. bulk: 256 MiB of 1 MiB tile frames over 8 concurrent streams of one connection — MB/s; gRPC over TLS (the same
   certificate as QUIC's, which is always TLS 1.3) is the baseline, and gRPC without TLS is reported beside it;
2. tokens: 32 concurrent token streams (one frame every 20 ms each) — p50/p99 gap between frames at the reader;
3. the token run again with 2 % random packet loss: server and client run inside a network namespace this
   script creates, where `iptables -m statistic --mode random --probability 0.02 -j DROP` drops packets on its
   loopback (root and iptables needed; otherwise the reason is printed and the figure is null).

The server is a separate process (one core each, as between two services): a gRPC server with server-streaming
methods (a plaintext port and a TLS one; token runs use TLS) and a QuicServer handing out tickets for the same producers. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, percentile
from shared.gen.tessera.v1 import chat_pb2, common_pb2, tensor_pb2
from shared.quic import QuicClient, QuicServer
from shared.quic.tls import certificates
from shared.runtime.config import Settings

MiB = 1024 * 1024
SERVICE = "tessera.bench.Streams"
GRPC_OPTIONS = [("grpc.max_receive_message_length", 8 * MiB), ("grpc.max_send_message_length", 8 * MiB)]


# -- the server process ------------------------------------------------------------

def tile_frames(n: int, size: int) -> AsyncIterator[tensor_pb2.TensorFrame]:
    payload = os.urandom(size)

    async def gen() -> AsyncIterator[tensor_pb2.TensorFrame]:
        for i in range(n):
            yield tensor_pb2.TensorFrame(tile=tensor_pb2.Tile(index=i, offset=[0, i, 0, 0], shape=[1, 1, 1, size // 4],
                                                              dtype=tensor_pb2.DTYPE_FLOAT32, data=payload))
        yield tensor_pb2.TensorFrame(end=tensor_pb2.TensorEnd(tiles=n, bytes=n * size))
    return gen()


def token_frames(n: int, gap_ms: float) -> AsyncIterator[chat_pb2.ChatEvent]:
    async def gen() -> AsyncIterator[chat_pb2.ChatEvent]:
        start = time.monotonic()
        for i in range(n):
            # A steady clock (not sleep after send): the producer's own jitter does not pile up.
            await asyncio.sleep(max(0.0, start + i * gap_ms / 1000 - time.monotonic()))
            yield chat_pb2.ChatEvent(token=chat_pb2.TokenChunk(text=f" token{i}", index=i))
        yield chat_pb2.ChatEvent(done=chat_pb2.ChatDone(finish_reason="length", completion_tokens=n))
    return gen()


FRAME_TYPES = {"tiles": "tessera.v1.TensorFrame", "tokens": "tessera.v1.ChatEvent"}


def producer(req: dict[str, Any]) -> AsyncIterator[Any]:
    if req["kind"] == "tiles":
        return tile_frames(int(req["n"]), int(req["size"]))
    return token_frames(int(req["n"]), float(req["gap_ms"]))


async def serve(ready_file: Path, data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir)
    quic = await QuicServer(settings).start()

    async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        async for message in producer(json.loads(request)):
            yield message.SerializeToString()

    async def ticket(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = json.loads(request)
        return quic.issue(FRAME_TYPES[req["kind"]], lambda: producer(req)).SerializeToString()

    server = grpc.aio.server(options=GRPC_OPTIONS)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Ticket": grpc.unary_unary_rpc_method_handler(ticket)})])
    port = server.add_insecure_port("127.0.0.1:0")
    certs = certificates(settings)  # QUIC's: the same certificate and key for gRPC over TLS
    tls_port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(certs.keyfile.read_bytes(), certs.certfile.read_bytes())]))
    await server.start()
    ready_file.write_text(json.dumps({"grpc": f"127.0.0.1:{port}", "grpc_tls": f"127.0.0.1:{tls_port}", "quic": quic.address,
                                      "ca": str(certs.cafile)}))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await quic.close()
    await server.stop(1)


# -- the client --------------------------------------------------------------------

class Peer:
    """The server process and the two ways to read its streams."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        ready = data_dir / "ready.json"
        self.proc = subprocess.Popen([sys.executable, __file__, "serve", "--ready-file", str(ready), "--data-dir", str(data_dir)], cwd=ROOT)
        end = time.monotonic() + 60
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > end:
                raise SystemExit("bench: the stream server did not start")
            time.sleep(0.05)
        self.addrs = json.loads(ready.read_text())
        self.channel = grpc.aio.insecure_channel(self.addrs["grpc"], options=GRPC_OPTIONS)
        tls = grpc.ssl_channel_credentials(root_certificates=Path(self.addrs["ca"]).read_bytes())
        self.tls_channel = grpc.aio.secure_channel(self.addrs["grpc_tls"], tls, options=GRPC_OPTIONS)
        self.quic = QuicClient(Settings(data_dir=data_dir))

    async def grpc_stream(self, req: dict[str, Any], tls: bool = True) -> AsyncIterator[bytes]:
        call = (self.tls_channel if tls else self.channel).unary_stream(f"/{SERVICE}/Stream")(json.dumps(req).encode())
        async for body in call:
            yield body

    async def quic_stream(self, req: dict[str, Any], message: type) -> AsyncIterator[Any]:
        body = await self.channel.unary_unary(f"/{SERVICE}/Ticket")(json.dumps(req).encode())
        async for frame in await self.quic.open(common_pb2.StreamTicket.FromString(body), message):
            yield frame

    async def close(self) -> None:
        await self.quic.close()
        await self.channel.close()
        await self.tls_channel.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def bulk(peer: Peer, path: str, streams: int, tiles: int, size: int) -> float:
    req = {"kind": "tiles", "n": tiles, "size": size}

    async def one() -> int:
        got = 0
        if path.startswith("grpc"):
            async for body in peer.grpc_stream(req, tls=path == "grpc"):
                got += len(tensor_pb2.TensorFrame.FromString(body).tile.data)
        else:
            async for frame in peer.quic_stream(req, tensor_pb2.TensorFrame):
                got += len(frame.tile.data)
        return got

    started = time.perf_counter()
    total = sum(await asyncio.gather(*[one() for _ in range(streams)]))
    assert total == streams * tiles * size, f"{path}: {total} bytes arrived of {streams * tiles * size}"
    return total / (time.perf_counter() - started) / 1e6


async def token_gaps(peer: Peer, path: str, streams: int, tokens: int, gap_ms: float) -> dict[str, float]:
    req = {"kind": "tokens", "n": tokens, "gap_ms": gap_ms}

    async def one() -> list[float]:
        times = []
        if path == "grpc":
            async for _ in peer.grpc_stream(req):
                times.append(time.perf_counter())
        else:
            async for _ in peer.quic_stream(req, chat_pb2.ChatEvent):
                times.append(time.perf_counter())
        assert len(times) == tokens + 1, f"{path}: {len(times)} frames of {tokens + 1}"
        return [(b - a) * 1000 for a, b in itertools.pairwise(times[1:-1])]

    gaps = [g for gs in await asyncio.gather(*[one() for _ in range(streams)]) for g in gs]
    return {"p50": round(percentile(gaps, 0.50), 2), "p99": round(percentile(gaps, 0.99), 2), "p999": round(percentile(gaps, 0.999), 2),
            "max": round(max(gaps), 2), "n": len(gaps)}


#: "grpc" is gRPC over TLS (as QUIC always is); "grpc_plain" without TLS, reported beside it in the bulk run
PATHS = ("grpc", "quic")
BULK_PATHS = ("grpc", "quic", "grpc_plain")


def alternating(rounds: int, paths: tuple[str, ...] = PATHS) -> list[tuple[str, ...]]:
    """The order of the sides in each round: as listed, then reversed, and so on."""
    return [paths if i % 2 == 0 else paths[::-1] for i in range(rounds)]


async def run_tokens(args: argparse.Namespace) -> dict[str, Any]:
    peer = Peer(Path(tempfile.mkdtemp(prefix="tessera-streams-")))
    try:
        for path in PATHS:
            await token_gaps(peer, path, 4, 10, args.gap_ms)  # warm: connections, handshakes
        runs: dict[str, list[dict[str, Any]]] = {p: [] for p in PATHS}
        for order in alternating(args.rounds):  # which side goes first alternates; each figure is the median of the rounds
            for path in order:
                runs[path].append(await token_gaps(peer, path, args.token_streams, args.tokens, args.gap_ms))
        return {path: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for path, rs in runs.items()}
    finally:
        await peer.close()


async def run_bulk(args: argparse.Namespace) -> dict[str, float]:
    peer = Peer(Path(tempfile.mkdtemp(prefix="tessera-streams-")))
    try:
        tiles = args.bulk_mib // args.streams
        for path in BULK_PATHS:
            await bulk(peer, path, 2, 2, MiB)  # warm
        runs: dict[str, list[float]] = {p: [] for p in BULK_PATHS}
        for order in alternating(args.rounds, BULK_PATHS):
            for path in order:
                runs[path].append(await bulk(peer, path, args.streams, tiles, MiB))
        return {path: round(statistics.median(rs), 1) for path, rs in runs.items()}
    finally:
        await peer.close()


def loss_run(args: argparse.Namespace) -> tuple[dict[str, Any] | None, str]:
    """The token run inside a fresh network namespace with 2 % loss on its loopback; (figures, "") or (None, why not)."""
    if os.geteuid() != 0:
        return None, "not root: creating a network namespace and iptables rules needs root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return None, f"{tool} is not installed (make bench-streams installs iptables when it can)"
    ns = f"tessera-loss-{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True, capture_output=True)
        subprocess.run(["ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-m", "statistic", "--mode", "random", "--probability",
                        str(args.loss), "-j", "DROP"], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        return None, f"could not set up the lossy namespace: {exc.stderr.decode(errors='replace').strip() or exc}"
    try:
        result = subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, "tokens", "--token-streams", str(args.token_streams),
                                 "--tokens", str(args.tokens), "--gap-ms", str(args.gap_ms), "--rounds", str(args.rounds)], cwd=ROOT,
                                capture_output=True, text=True, timeout=1200)
        if result.returncode != 0:
            return None, f"the lossy run failed: {result.stderr[-500:]}"
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        counters = subprocess.run(["ip", "netns", "exec", ns, "iptables", "-L", "INPUT", "-v", "-x", "-n"], capture_output=True, text=True).stdout
        drop = next((line.split() for line in counters.splitlines() if "DROP" in line), None)
        figures["dropped_packets"] = int(drop[0]) if drop else None
        return figures, ""
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="all", choices=("all", "serve", "tokens", "bulk"))
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--bulk-mib", type=int, default=256)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--token-streams", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument("--loss", type=float, default=0.02)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side, alternating which goes first; figures are medians")
    args = parser.parse_args()
    if args.mode == "serve":
        asyncio.run(serve(args.ready_file, args.data_dir))
        return
    if args.mode == "tokens":
        print(json.dumps(asyncio.run(run_tokens(args))))
        return
    bulk_mb = asyncio.run(run_bulk(args))
    print(f"bulk {args.bulk_mib} MiB, {args.streams} streams: grpc (TLS) {bulk_mb['grpc']} MB/s, quic {bulk_mb['quic']} MB/s "
          f"(quic/grpc {ratio(bulk_mb['quic'], bulk_mb['grpc'])}); grpc without TLS {bulk_mb['grpc_plain']} MB/s", flush=True)
    if args.mode == "bulk":
        print(json.dumps({"bulk_mb_per_s": bulk_mb}))
        return
    tokens = asyncio.run(run_tokens(args))
    print(f"tokens {args.token_streams} streams every {args.gap_ms} ms: gap p50/p99 grpc {tokens['grpc']['p50']}/{tokens['grpc']['p99']} ms, "
          f"quic {tokens['quic']['p50']}/{tokens['quic']['p99']} ms", flush=True)
    lossy, why = loss_run(args)
    if lossy is not None:
        print(f"tokens with {args.loss:.0%} loss: gap p50/p99 grpc {lossy['grpc']['p50']}/{lossy['grpc']['p99']} ms, "
              f"quic {lossy['quic']['p50']}/{lossy['quic']['p99']} ms (quic/grpc p99 {ratio(lossy['quic']['p99'], lossy['grpc']['p99'])}); "
              f"p99.9/max grpc {lossy['grpc']['p999']}/{lossy['grpc']['max']} ms, quic {lossy['quic']['p999']}/{lossy['quic']['max']} ms; "
              f"{lossy['dropped_packets']} packets dropped")
    else:
        print(f"loss run skipped: {why}")
    summary: dict[str, Any] = {
        "bulk_mb_per_s": bulk_mb,
        "tokens_p99_gap_ms": {"quic": tokens["quic"]["p99"], "grpc": tokens["grpc"]["p99"]},
        "loss2_tokens_p99_gap_ms": {"quic": lossy["quic"]["p99"], "grpc": lossy["grpc"]["p99"]} if lossy else None,
        "ratios": {"bulk_quic_over_grpc": ratio(bulk_mb["quic"], bulk_mb["grpc"]),
                   "tokens_p99_quic_over_grpc": ratio(tokens["quic"]["p99"], tokens["grpc"]["p99"]),
                   "loss2_p99_quic_over_grpc": ratio(lossy["quic"]["p99"], lossy["grpc"]["p99"]) if lossy else None},
        "tokens_p50_gap_ms": {"quic": tokens["quic"]["p50"], "grpc": tokens["grpc"]["p50"]},
        "loss2_tokens_p999_gap_ms": {"quic": lossy["quic"]["p999"], "grpc": lossy["grpc"]["p999"]} if lossy else None,
        "loss2_dropped_packets": lossy["dropped_packets"] if lossy else None,
    }
    if lossy is None:
        summary["loss_skipped"] = why
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
