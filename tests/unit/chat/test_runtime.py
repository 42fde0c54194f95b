"""Which llama.cpp build chat loads: AVX-512 only where the CPU has every instruction it uses; never AMX."""

from __future__ import annotations

import pytest

from services.chat.runtime import V3, V4, V4_FLAGS, choose, cpu_flags

SAPPHIRE_RAPIDS = V4_FLAGS | {"amx_tile", "amx_int8", "amx_bf16", "avx_vnni"}
HASWELL = frozenset({"avx", "avx2", "fma", "f16c"})
ICE_LAKE = V4_FLAGS - {"avx512_bf16"}


def test_auto_takes_avx512_only_with_every_instruction() -> None:
    assert choose("auto", SAPPHIRE_RAPIDS, True) == V4
    assert choose("auto", HASWELL, True) == V3
    assert choose("auto", ICE_LAKE, True) == V3  # one instruction missing is enough to stay portable
    assert choose("auto", SAPPHIRE_RAPIDS, False) == V3  # not installed


def test_a_pinned_build_is_kept_or_refused_with_a_sentence() -> None:
    assert choose(V3, SAPPHIRE_RAPIDS, True) == V3
    assert choose(V4, SAPPHIRE_RAPIDS, True) == V4
    with pytest.raises(RuntimeError, match="lacks avx512_bf16"):
        choose(V4, ICE_LAKE, True)
    with pytest.raises(RuntimeError, match="not installed"):
        choose(V4, SAPPHIRE_RAPIDS, False)


def test_cpu_flags_are_read_from_cpuinfo() -> None:
    text = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu avx2 avx512f amx_tile\nbugs\t\t: spectre\n"
    assert cpu_flags(text) == frozenset({"fpu", "avx2", "avx512f", "amx_tile"})
    assert cpu_flags("") == frozenset()
