"""Chat through the gateway (SSE) next to raw llama-cpp-python, in one run.

Same GGUF, same prompt (the chat template over Tessera's plain system prompt and
the question, rendered by the chat service's own code), same max_tokens, greedy
sampling, and the same threads as one chat slot answering alone (prompt steps on every core; answer tokens on the
threads the chat service picks, SlotThreads.decode_share; every core reported beside). tokens/s is the decode rate
(tokens after the first over the time after the first); time to first token is
from sending the request (--pause: each measured answer on both sides after that many seconds idle). Then the same question with retrieval (its first
token and the retrieval time the answer reports), and 8 concurrent streams:
aggregate tokens/s and the p99 gap between consecutive tokens of a stream. `stages_ms`: wall milliseconds per decoded
token on each side, and the CPU milliseconds per token of each stage on the mesh (chat's event loop, chat's model
threads, the gateway, the other mesh processes, the client) against the raw process's.

The measured answers alternate: question i raw, then question i through the mesh, with the mesh up on both (the raw
side's figures are taken beside the idle mesh, at the same moment as the mesh's: a 2-core VM's speed drifts by
10-30 % over the minutes between two separate runs).

    python bench/chat.py [--profiles smollm2-135m,qwen2.5-coder-1.5b] [--max-tokens 128] [--runs 3]

Each profile is measured in its own isolated mesh (qwen2.5-coder-1.5b needs `make setup-qwen`; a profile
whose packages are missing is reported as skipped). Both sides sample the same way: greedy, with the
chat service's repeat penalty. The last line is one JSON object, one entry per profile.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from common import isolated_settings, mesh_processes, percentile, tessera

from services.chat import omp, runtime
from services.chat.model import ChatTemplate
from services.chat.profiles import ModelFileError, model_path
from services.chat.prompt import messages_for
from shared.runtime import secrets
from shared.runtime.cpu import SlotThreads, mesh_cores

QUESTION = "Tell me a long story about a lighthouse keeper who finds a message in a bottle."
NOTES = {"lighthouse.md": "---\ntitle: Lighthouse log\n---\n# Lighthouse log\n\nThe keeper trims the wick at dusk and logs every ship that passes.\n"}


def raw_run(llm: object, prompt: list[int], max_tokens: int, repeat_penalty: float) -> tuple[float, float, int]:
    """(ttft s, decode tokens/s, tokens): llama-cpp-python's token generator, greedy, to EOS or max_tokens."""
    import llama_cpp

    started = time.perf_counter()
    stamps = []
    for token in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=repeat_penalty):  # type: ignore[attr-defined]
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):  # type: ignore[attr-defined]
            break
        llm.detokenize([token])  # type: ignore[attr-defined]  # the text, as any caller needs it
        stamps.append(time.perf_counter())
        if len(stamps) >= max_tokens:
            break
    n = len(stamps)
    return stamps[0] - started, (n - 1) / (stamps[-1] - stamps[0]) if n > 1 else 0.0, n


async def mesh_run(client: httpx.AsyncClient, url: str, body: dict[str, object]) -> tuple[float, list[float], dict[str, object]]:
    """(ttft s, token arrival times, done event) of one SSE answer."""
    started = time.perf_counter()
    stamps: list[float] = []
    done: dict[str, object] = {}
    async with client.stream("POST", f"{url}/api/v1/chat", json=body) as r:
        r.raise_for_status()
        event = ""
        async for line in r.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                if event == "token":
                    stamps.append(time.perf_counter())
                elif event == "done":
                    done = json.loads(line[5:])
                elif event == "error":
                    raise SystemExit(f"bench: the answer failed: {line}")
    return stamps[0] - started, stamps, done


def rate(stamps: list[float], done: dict[str, object]) -> float:
    """Decode rate from the tokens the model generated (a few tokens may share one event, or show no text)."""
    tokens = int(done.get("completion_tokens", len(stamps)))  # type: ignore[call-overload]
    return (tokens - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(stat: Path) -> float:
    fields = stat.read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def stage_cpu(data_dir: Path) -> dict[str, float]:
    """CPU seconds so far of each stage a token passes through the mesh: the chat service's event loop (its main
    thread: the token pipe, the answer filter, framing, the QUIC write), the rest of chat's threads (the model: the
    thread that runs llama.cpp and llama.cpp's workers; gRPC's poller), the gateway (QUIC read, SSE encoding, the HTTP
    write), and every other process of the mesh; plus this process (the client reading the SSE)."""
    out = {"chat_loop": 0.0, "chat_model": 0.0, "gateway": 0.0, "other": 0.0}
    for pid, name in mesh_processes(data_dir).items():
        try:
            if name == "chat":
                for task in Path(f"/proc/{pid}/task").iterdir():
                    out["chat_loop" if int(task.name) == pid else "chat_model"] += _cpu_s(task / "stat")
            else:
                out["gateway" if name == "gateway" else "other"] += _cpu_s(Path(f"/proc/{pid}/stat"))
        except OSError:  # a process or thread that ended meanwhile
            continue
    out["client"] = time.process_time()
    return out


async def measure_mesh(url: str, args: argparse.Namespace, key: str, data_dir: Path, slots: int,
                       raw_side: Callable[[int], tuple[float, float, int]]) -> dict[str, object]:
    plain = {"question": QUESTION, "rag": False, "max_tokens": args.max_tokens, "purpose": "bench"}
    async with httpx.AsyncClient(timeout=600, headers={"Authorization": f"Bearer {key}"}) as client:
        # Warm the path, and each slot twice (a slot's first answers evaluate slower, as the raw side's first runs do;
        # the raw side is measured after six).
        for i in range(2 * slots):
            await mesh_run(client, url, {**plain, "question": f"{QUESTION} (-{i + 1})", "max_tokens": 4})
        # Raw and mesh answers take turns, each question on both sides one after the other: the two sides are measured
        # on the same machine at the same moment (a 2-core VM's speed drifts by 10-30 % over minutes), the mesh idle
        # beside the raw side's answers. The CPU of the mesh's stages is counted over its own answers only.
        runs, raw, spent = [], [], {k: 0.0 for k in stage_cpu(data_dir)}
        for i in range(args.runs):
            await asyncio.sleep(args.pause)
            raw.append(raw_side(i))  # blocks the loop, which has nothing else to do meanwhile
            await asyncio.sleep(args.pause)  # a question after a pause, as on the raw side
            before = stage_cpu(data_dir)
            runs.append(await mesh_run(client, url, {**plain, "question": f"{QUESTION} ({i})"}))
            after = stage_cpu(data_dir)
            spent = {k: spent[k] + after[k] - before[k] for k in spent}
        rag = [await mesh_run(client, url, {"question": "What does the keeper do at dusk?", "max_tokens": 16, "purpose": "bench"}) for _ in range(args.runs)]
        started = time.perf_counter()
        together = await asyncio.gather(*[mesh_run(client, url, plain) for _ in range(8)])
    gaps = [(b - a) * 1000 for _, stamps, _ in together for a, b in itertools.pairwise(stamps)]
    single_gaps = [(b - a) * 1000 for _, stamps, _ in runs for a, b in itertools.pairwise(stamps)]
    total = sum(int(d["completion_tokens"]) for _, _, d in together)  # type: ignore[call-overload]
    each = [rate(s, d) for _, s, d in together]  # each stream's own decode rate (no stream starved: all near the mean)
    mean = statistics.mean(each)
    tokens = sum(int(d["completion_tokens"]) for _, _, d in runs)  # type: ignore[call-overload]
    return {
        "raw": raw,
        "cpu_ms_per_token": {k: round(spent[k] * 1000 / tokens, 3) for k in spent},
        "decode_ms_per_token": statistics.median(1000 / rate(s, d) for _, s, d in runs),
        "tokens_per_s": statistics.median(rate(s, d) for _, s, d in runs),
        "tokens": statistics.median(int(d["completion_tokens"]) for _, _, d in runs),  # type: ignore[call-overload]
        "ttft_ms": statistics.median(t for t, _, _ in runs) * 1000,
        "prefill_ms": statistics.median(float(d["prefill_ms"]) for _, _, d in runs),  # type: ignore[arg-type]
        "ttft_rag_ms": statistics.median(t for t, _, _ in rag) * 1000,
        "retrieval_ms": statistics.median(float(d["retrieval_ms"]) for _, _, d in rag),  # type: ignore[arg-type]
        "concurrent8": {"tokens_per_s": round(total / (max(s[-1] for _, s, _ in together) - started), 2),
                        "p99_gap_ms": round(percentile(gaps, 0.99), 2), "p50_gap_ms": round(percentile(gaps, 0.5), 2), "tokens": total,
                        "single_stream_p99_gap_ms": round(percentile(single_gaps, 0.99), 2),
                        "p99_gap_over_single": round(percentile(gaps, 0.99) / percentile(single_gaps, 0.99), 2),
                        "stream_tokens_per_s": [round(x, 2) for x in each],
                        "max_deviation_from_mean": round(max(abs(x - mean) for x in each) / mean, 3) if mean else None},
    }


def measure_profile(profile: str, args: argparse.Namespace) -> dict[str, object]:
    # No enrichment of the bench's note: it would run whenever the mesh is idle, and with the answers alternating that is
    # while the raw side answers (it then slowed the raw side by up to 14 %). A question that comes while background
    # work runs is covered by tests/integration/chat/test_abort.py (the work stops within a graph operation).
    settings = isolated_settings(TESSERA_CHAT_MODEL=profile, TESSERA_ENRICH="off",
                                 **({"TESSERA_CHAT_THREADS": str(args.threads)} if args.threads else {}))
    slots = settings.chat_slots
    threads = settings.chat_threads or mesh_cores(settings.cpu_cores)  # an answer alone runs on every core (shared/runtime/cpu.py)
    try:
        _, path = model_path(profile, "", settings.path("models"))
    except ModelFileError as exc:
        return {"skipped": str(exc)}
    notes = settings.path("imports", "bench-notes")  # inside the mesh's own ingest roots
    notes.mkdir(parents=True)
    for name, text in NOTES.items():
        (notes / name).write_text(text)

    print(f"bench-chat: raw side uses {runtime.select(settings.chat_cpu_build)}, as the chat service does", file=sys.stderr)
    from llama_cpp import Llama

    template = ChatTemplate(path)

    def prompt(i: int) -> list[int]:  # each run its own question, as on the mesh: the shared prefix stays cached on both
        return template.tokenize(template.render(messages_for(f"{QUESTION} ({i})", [], [])))

    llm = Llama(model_path=str(path), n_ctx=settings.chat_context, n_threads=threads, n_threads_batch=threads, verbose=False)
    raw_run(llm, prompt(-1), 4, settings.chat_repeat_penalty)  # warm
    # Every core first (reported beside), then the threads the chat service decodes an answer alone on
    # (SlotThreads.decode_share: a core is left to the mesh's own per-token work); prompts on every core on both.
    all_cores = [raw_run(llm, prompt(i), args.max_tokens, settings.chat_repeat_penalty) for i in range(args.runs)]
    all_cores_tps = statistics.median(r[1] for r in all_cores)
    decode = SlotThreads(mesh_cores(settings.cpu_cores), settings.chat_threads).decode_share(threads)
    import llama_cpp

    llama_cpp.llama_set_n_threads(llm._ctx.ctx, decode, threads)
    omp.release()  # no OpenMP worker of this process spins while the mesh answers (services/chat/omp.py)
    raw_cpu = [0.0]

    def raw_side(i: int) -> tuple[float, float, int]:
        cpu0 = time.process_time()
        try:
            return raw_run(llm, prompt(i), args.max_tokens, settings.chat_repeat_penalty)
        finally:
            raw_cpu[0] += time.process_time() - cpu0
            omp.release()

    print(f"bench-chat: {profile}: starting an isolated mesh in {settings.data_dir} …", file=sys.stderr)
    tessera(settings, "up", "--timeout", "300")
    try:
        tessera(settings, "ingest", str(notes))
        mesh = asyncio.run(measure_mesh(f"http://127.0.0.1:{settings.gateway_port}", args, secrets.ensure(settings, secrets.ADMIN_KEY),
                                        settings.data_dir, slots, raw_side))
    finally:
        tessera(settings, "down")
    raw: list[tuple[float, float, int]] = mesh.pop("raw")  # type: ignore[assignment]
    raw_cpu_ms = raw_cpu[0] * 1000 / sum(r[2] for r in raw)
    raw_tps = statistics.median(r[1] for r in raw)
    raw_ttft = statistics.median(r[0] for r in raw) * 1000
    return {
        "raw_tokens_per_s": round(raw_tps, 2),
        "mesh_tokens_per_s": round(float(mesh["tokens_per_s"]), 2),  # type: ignore[arg-type]
        "ratio": round(float(mesh["tokens_per_s"]) / raw_tps, 3) if raw_tps else None,  # type: ignore[arg-type]
        "ttft_ms": {"raw": round(raw_ttft, 1), "mesh": round(float(mesh["ttft_ms"]), 1),  # type: ignore[arg-type]
                    "mesh_overhead": round(float(mesh["ttft_ms"]) - raw_ttft, 1),  # type: ignore[arg-type]
                    # the chat service's own prompt evaluation (its slot's KV cache holds the shared prefix, as raw's does)
                    "mesh_prefill": round(float(mesh["prefill_ms"]), 1),  # type: ignore[arg-type]
                    "mesh_rag": round(float(mesh["ttft_rag_ms"]), 1), "retrieval": round(float(mesh["retrieval_ms"]), 1)},  # type: ignore[arg-type]
        "concurrent8": mesh["concurrent8"],
        # Where a token's time goes: wall milliseconds per decoded token on each side, and the CPU milliseconds each
        # stage spent per token (raw: the whole process; the mesh: see stage_cpu). On 2 cores the model's threads take
        # every core, so the mesh's stages run in the model's time.
        "stages_ms": {"decode_per_token": {"raw": round(1000 / raw_tps, 3) if raw_tps else None,
                                           "mesh": round(float(mesh["decode_ms_per_token"]), 3)},  # type: ignore[arg-type]
                      "cpu_per_token": {"raw": round(raw_cpu_ms, 3), "mesh": mesh["cpu_ms_per_token"]}},
        "tokens": {"raw": statistics.median(r[2] for r in raw), "mesh": mesh["tokens"]},
        "raw_all_cores_tokens_per_s": round(all_cores_tps, 2),
        "max_tokens": args.max_tokens, "slots": slots, "threads_per_slot": threads, "decode_threads": decode, "runs": args.runs, "model": path.name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", default="smollm2-135m,qwen2.5-coder-1.5b")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds idle before each measured answer on both sides (2026-12-07, --runs 9 --pause 0.5: raw's "
                             "first token unchanged, the mesh's 50-85 ms later and its decode 0.86-0.87 of raw's; not yet explained)")
    parser.add_argument("--threads", type=int, default=0, help="a slot's threads on both sides (TESSERA_CHAT_THREADS; 0: the CPU budget's)")
    args = parser.parse_args()
    results = {}
    for profile in args.profiles.split(","):
        results[profile] = measure_profile(profile, args)
        print(f"bench-chat: {profile}: {json.dumps(results[profile])}", file=sys.stderr)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
