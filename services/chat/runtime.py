"""Which llama.cpp build chat loads: the portable x86-64-v3 one, or the AVX-512 one where the CPU has AVX-512.

`make setup` installs llama-cpp-python built for x86-64-v3 (AVX2, FMA, F16C; no AVX-512, no AMX),
which runs on any x86-64 CPU with AVX2. It also unpacks a second build of the same version's
libraries for x86-64-v4 (AVX-512 F/BW/VL/DQ/CD, VBMI, VNNI, BF16; still no AMX, the instructions
that crash llama_decode) into ``<venv>/lib/tessera-llama-x86-64-v4``. On a CPU that has every
instruction that build uses, chat points ``LLAMA_CPP_LIB_PATH`` at it before llama_cpp is first
imported: prefill runs about 2.5 times faster (bench/README.md). ``TESSERA_CHAT_CPU_BUILD``
pins one build; an explicit ``LLAMA_CPP_LIB_PATH`` is always respected.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

V3 = "x86-64-v3"
V4 = "x86-64-v4"
#: /proc/cpuinfo flags the x86-64-v4 build needs: every instruction set it was compiled with.
V4_FLAGS = frozenset({"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd", "avx512vbmi", "avx512_vnni",
                      "avx512_bf16"})


def v4_dir() -> Path:
    return Path(sys.prefix) / "lib" / f"tessera-llama-{V4}"


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The flags of the first processor in /proc/cpuinfo's text."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def choose(wanted: str, flags: frozenset[str], v4_available: bool) -> str:
    """The build to load: V3 or V4, for a setting of "auto", V3 or V4 (pure: unit-tested)."""
    if wanted == V3:
        return V3
    if wanted == V4:
        if not v4_available:
            raise RuntimeError(f"chat: TESSERA_CHAT_CPU_BUILD={V4}, but that build is not installed (`make setup` installs it)")
        if missing := sorted(V4_FLAGS - flags):
            raise RuntimeError(f"chat: TESSERA_CHAT_CPU_BUILD={V4}, but this CPU lacks {', '.join(missing)}")
        return V4
    return V4 if v4_available and flags >= V4_FLAGS else V3


def select(wanted: str = "auto") -> str:
    """Point llama_cpp at the chosen build (call before llama_cpp is imported); a line saying which."""
    if os.environ.get("LLAMA_CPP_LIB_PATH"):
        return f"llama.cpp from LLAMA_CPP_LIB_PATH={os.environ['LLAMA_CPP_LIB_PATH']}"
    if "llama_cpp.llama_cpp" in sys.modules:
        return "llama.cpp already loaded in this process"
    try:
        flags = cpu_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        flags = frozenset()
    build = choose(wanted, flags, (v4_dir() / "libllama.so").is_file())
    if build == V4:
        os.environ["LLAMA_CPP_LIB_PATH"] = str(v4_dir())
        return f"llama.cpp built for {V4} (AVX-512, no AMX)"
    return f"llama.cpp built for {V3} (AVX2, portable)"
