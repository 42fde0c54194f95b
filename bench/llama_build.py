"""What the llama.cpp builds cost: prefill and decode tokens/s of the project's portable wheel (x86-64-v3),
its AVX-512 build (x86-64-v4, no AMX; what chat loads on CPUs that have it) and a native build
(-march=native) of the same version on this machine: same model, same prompt, same threads.

    python bench/llama_build.py [--profiles smollm2-135m,qwen2.5-coder-1.5b] [--threads 2]

The native wheel is built once (minutes) into ~/.cache/tessera/wheels/llama-cpp-python-0.3.36-native-<cpu>/
and unpacked beside it; each measurement runs in a child process, so a build that crashes (a native
build on a CPU with AMX segfaults in llama_decode) is reported as crashed instead of ending the bench.
The native build runs twice: as built, and with use_extra_bufts=false (no AMX/repack buffer types),
the runtime setting that avoids the crash. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

from services.chat.profiles import ModelFileError, model_path
from services.chat.runtime import v4_dir
from shared.runtime.config import load_settings

WHEELS = Path(os.environ.get("WHEELS", Path.home() / ".cache" / "tessera" / "wheels"))
VERSION = "0.3.36"

CHILD = r"""
import json, sys, time
import llama_cpp.llama_cpp as C
from llama_cpp import Llama, llama_print_system_info
path, threads, extra = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
defaults = C.llama_model_default_params
def params():  # Llama() does not expose use_extra_bufts: set it on the defaults it starts from
    p = defaults()
    p.use_extra_bufts = extra
    return p
C.llama_model_default_params = params
llm = Llama(model_path=path, n_ctx=2048, n_threads=threads, verbose=False)
text = " ".join(["Raft elects a leader with randomized election timeouts, and the leader replicates log entries."] * 20)
prompt = llm.tokenize(text.encode())[:320]
best_prefill, best_decode = 0.0, 0.0
for _ in range(2):
    llm.reset()
    t0 = time.perf_counter(); llm.eval(prompt); t1 = time.perf_counter()
    n, start = 0, time.perf_counter()
    for tok in llm.generate([*prompt, prompt[0]], temp=0.0, top_k=1):  # the prompt is cached: one token to evaluate, then decode
        n += 1
        if n == 48:
            break
    t2 = time.perf_counter()
    best_prefill = max(best_prefill, len(prompt) / (t1 - t0)); best_decode = max(best_decode, (n - 1) / (t2 - start))
print(json.dumps({"prefill_tokens_per_s": round(best_prefill, 1), "decode_tokens_per_s": round(best_decode, 2),
                  "system": llama_print_system_info().decode().strip()}))
"""


def cpu_tag() -> str:
    flags = ""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    return platform.machine() + "-" + hashlib.sha256(flags.encode()).hexdigest()[:8]


def native_site() -> Path:
    folder = WHEELS / f"llama-cpp-python-{VERSION}-native-{cpu_tag()}"
    site = folder / "site"
    if (site / "llama_cpp").is_dir():
        return site
    folder.mkdir(parents=True, exist_ok=True)
    if not list(folder.glob("*.whl")):
        print(f"bench-llama-build: building a native wheel into {folder} (minutes) …", file=sys.stderr)
        env = {**os.environ, "CMAKE_ARGS": "-DGGML_NATIVE=ON", "FORCE_CMAKE": "1"}
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-cache-dir", "-w", str(folder),
                        f"llama-cpp-python=={VERSION}"], env=env, check=True)
    with zipfile.ZipFile(next(folder.glob("*.whl"))) as z:
        z.extractall(site)
    return site


def measure(site: Path | None, model: Path, threads: int, extra_bufts: bool, lib: Path | None = None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "LLAMA_CPP_LIB_PATH"}
    if site is not None:
        env["PYTHONPATH"] = str(site)  # this build's llama_cpp first
    if lib is not None:
        env["LLAMA_CPP_LIB_PATH"] = str(lib)  # the installed llama_cpp with another build's libraries
    r = subprocess.run([sys.executable, "-c", CHILD, str(model), str(threads), "1" if extra_bufts else "0"], env=env,
                       capture_output=True, text=True, timeout=1200)
    if r.returncode != 0:
        return {"crashed": f"exit {r.returncode}", "stderr": r.stderr.strip()[-300:]}
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", default="smollm2-135m,qwen2.5-coder-1.5b")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    native = native_site()
    models = load_settings().path("models")
    results: dict[str, object] = {}
    for profile in args.profiles.split(","):
        try:
            _, path = model_path(profile, "", models)
        except ModelFileError as exc:
            results[profile] = {"skipped": str(exc)}
            continue
        portable = measure(None, path, args.threads, True)
        v4 = measure(None, path, args.threads, True, v4_dir()) if (v4_dir() / "libllama.so").is_file() else {"skipped": "not installed"}
        native_default = measure(native, path, args.threads, True)
        native_safe = measure(native, path, args.threads, False)
        entry: dict[str, object] = {"portable": portable, "x86_64_v4": v4, "native": native_default, "native_no_extra_bufts": native_safe}
        for name, other in (("x86_64_v4", v4), ("native", native_default), ("native_no_extra_bufts", native_safe)):
            if "decode_tokens_per_s" in portable and "decode_tokens_per_s" in other:
                entry[f"portable_over_{name}"] = {
                    "prefill": round(float(portable["prefill_tokens_per_s"]) / float(other["prefill_tokens_per_s"]), 3),  # type: ignore[arg-type]
                    "decode": round(float(portable["decode_tokens_per_s"]) / float(other["decode_tokens_per_s"]), 3)}  # type: ignore[arg-type]
        results[profile] = entry
        print(f"bench-llama-build: {profile}: {json.dumps(entry)}", file=sys.stderr)
    print(json.dumps({"threads": args.threads, "cpu": cpu_tag(), **results}))


if __name__ == "__main__":
    main()
