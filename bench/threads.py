"""Chat's threads: the cores shared out among the slots generating now, against the previous fixed split, in one run.

Two slots of one model in this process, as the chat service loads them by default (``TESSERA_CHAT_SLOTS`` 2):
- **fixed** (the previous design): each slot decodes on cores // slots threads, and llama-cpp-python evaluates
  prompts on every CPU of the machine (its default ``n_threads_batch``);
- **shared** (today, shared/runtime/cpu.py ``SlotThreads``): a slot generating alone runs on every core, two at once
  on half each, prompt and answer alike.

For each: one answer alone (its prompt's evaluation in ms, its decode rate), then two answers at once (their prompts
evaluated together, the sum of their decode rates). While the answers run, a sampler reads /proc/self/task every
2 ms and counts this process's threads that are running or ready to run (state R; llama.cpp's OpenMP threads spin
a moment between steps, and count): more of them than cores is oversubscription. Every prompt is new to the slot's
KV cache.

    python bench/threads.py [--profile qwen2.5-coder-1.5b] [--runs 3] [--max-tokens 48]

The last line is one JSON object: ``cores``, then per design ``alone_prefill_ms``, ``alone_tokens_per_s``,
``together_prefill_ms``, ``together_tokens_per_s``, and for each phase (alone, together) ``runnable_mean_*`` and
``oversubscribed_*`` (the share of samples with more runnable threads than cores), then the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

from common import isolated_settings

from services.chat import runtime
from services.chat.model import ChatModel, ChatTemplate, Sampling
from services.chat.profiles import model_path
from shared.runtime.cpu import SlotThreads, mesh_cores

NOTE = ("The keeper trims the wick at dusk, logs every ship that passes, and writes the weather at each watch. "
        "In winter the lamp burns paraffin; in summer the lens is cleaned twice a week. ") * 8


class Runnable:
    """Samples how many of this process's threads are running or runnable."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {"alone": [], "together": []}
        self.phase = "alone"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = threading.get_native_id()
        while not self._stop.wait(0.002):
            n = 0
            for tid in os.listdir("/proc/self/task"):
                if int(tid) == me:
                    continue
                try:
                    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
                except OSError:
                    continue
                n += stat[stat.rindex(")") + 2] == "R"
            self.counts[self.phase].append(n)

    def __enter__(self) -> Runnable:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def answer(model: ChatModel, prompt: list[int], max_tokens: int, out: list[tuple[float, float, int]]) -> None:
    """(prefill ms, decode seconds, tokens) of one greedy answer."""
    started = time.perf_counter()
    first: list[float] = []

    def emit(_: str) -> bool:
        if not first:
            first.append(time.perf_counter())
        return True

    _, tokens = model.generate(prompt, [], Sampling(max_tokens=max_tokens), [], threading.Event(), emit)
    ended = time.perf_counter()
    out.append((model.last_prefill.ms, ended - (first[0] if first else started), tokens))


def measure(models: list[ChatModel], template: ChatTemplate, runs: int, max_tokens: int, tag: str) -> dict[str, float]:
    def prompt(i: int) -> list[int]:
        messages = [{"role": "system", "content": f"Answer from the note. ({tag} {i})"},
                    {"role": "user", "content": f"{NOTE}\n\nWhat does the keeper do at dusk? Tell it at length. ({i})"}]
        return template.tokenize(template.render(messages))

    alone: list[tuple[float, float, int]] = []
    together: list[tuple[float, float, int]] = []
    with Runnable() as sampled:
        for i in range(runs):
            sampled.phase = "alone"
            answer(models[0], prompt(2 * i), max_tokens, alone)
            sampled.phase = "together"
            done: list[tuple[float, float, int]] = []
            both = [threading.Thread(target=answer, args=(m, prompt(100 + 2 * i + j), max_tokens, done)) for j, m in enumerate(models)]
            for t in both:
                t.start()
            for t in both:
                t.join()
            together.append((statistics.mean(d[0] for d in done), sum(d[2] / d[1] for d in done), 0))
    cores = mesh_cores()
    out: dict[str, float] = {}
    for phase, counts in sampled.counts.items():
        busy = [float(c) for c in counts if c > 0] or [0.0]  # samples between answers (nothing runnable) left out
        out[f"runnable_mean_{phase}"] = round(statistics.mean(busy), 2)
        out[f"oversubscribed_{phase}"] = round(sum(c > cores for c in busy) / len(busy), 3)
    return out | {
        "alone_prefill_ms": round(statistics.median(a[0] for a in alone), 1),
        "alone_tokens_per_s": round(statistics.median(a[2] / a[1] for a in alone), 2),
        "together_prefill_ms": round(statistics.median(t[0] for t in together), 1),
        "together_tokens_per_s": round(statistics.median(t[1] for t in together), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="qwen2.5-coder-1.5b")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    settings = isolated_settings(TESSERA_CHAT_MODEL=args.profile)
    _, path = model_path(args.profile, "", settings.path("models"))
    print(f"bench-threads: {runtime.select(settings.chat_cpu_build)}", file=sys.stderr)
    import llama_cpp

    cores, slots = mesh_cores(), 2
    template = ChatTemplate(path)
    results: dict[str, dict[str, float]] = {}
    for design in ("fixed", "shared"):
        if design == "fixed":  # the previous loading: cores // slots per slot, the prompt on llama-cpp-python's default
            models = [ChatModel(path, 2048, max(1, cores // slots)) for _ in range(slots)]
            for m in models:  # llama-cpp-python's default n_threads_batch: multiprocessing.cpu_count()
                llama_cpp.llama_set_n_threads(m.llm._ctx.ctx, max(1, cores // slots), os.cpu_count() or 1)
            print(f"bench-threads: fixed: {cores // slots} threads per slot, prompts on {os.cpu_count()}", file=sys.stderr)
        else:
            share = SlotThreads(cores)
            models = [ChatModel(path, 2048, share.share(), 0, 1.1, share) for _ in range(slots)]
        results[design] = measure(models, template, args.runs, args.max_tokens, design)
        print(f"bench-threads: {design}: {json.dumps(results[design])}", file=sys.stderr)
        del models
    fixed, shared = results["fixed"], results["shared"]
    print(json.dumps({
        "cores": cores, "slots": slots, "profile": args.profile, "runs": args.runs, "max_tokens": args.max_tokens,
        "fixed": fixed, "shared": shared,
        "alone_prefill_speedup": round(fixed["alone_prefill_ms"] / shared["alone_prefill_ms"], 3),
        "alone_decode_speedup": round(shared["alone_tokens_per_s"] / fixed["alone_tokens_per_s"], 3),
        "together_decode_ratio": round(shared["together_tokens_per_s"] / fixed["together_tokens_per_s"], 3),
    }))


if __name__ == "__main__":
    main()
