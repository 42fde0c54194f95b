"""The mesh's CPU budget (shared/runtime/cpu.py): the slots generating at once share the cores, background upkeep and
PostgreSQL get their shares, and native pools are held to what they are given."""

from __future__ import annotations

import contextlib
import os
import threading

import pytest

from shared.errors import ConfigError
from shared.runtime.config import load_settings
from shared.runtime.cpu import STREAM_CORES, SlotThreads, mesh_cores, native_threads, postgres_parallel_workers, upkeep_threads


def running(share: SlotThreads, n: int) -> contextlib.ExitStack:
    """``n`` slots generating on ``share`` until the stack closes."""
    stack = contextlib.ExitStack()
    for _ in range(n):
        stack.enter_context(share.running())
    return stack


def test_an_answer_alone_gets_every_core_and_answers_together_share_them() -> None:
    share = SlotThreads(8)
    assert share.share() == 8  # asked before it counts itself: a slot about to start
    with share.running():
        assert share.share() == 8
        with share.running():
            assert share.share() == 4
            with share.running():
                assert share.share() == 2  # 8 // 3: together 6, never more than 8
        assert share.share() == 8
    assert share.busy == 0


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 6, 16, 64])
def test_busy_slots_never_ask_for_more_threads_than_cores(cores: int) -> None:
    share = SlotThreads(cores)
    for busy in range(1, cores + 1):
        with running(share, busy):
            assert share.share() >= 1 and share.share() * busy <= cores


def test_more_busy_slots_than_cores_get_one_thread_each_and_a_fixed_count_is_kept() -> None:
    share = SlotThreads(2)
    with running(share, 3):
        assert share.share() == 1
    fixed = SlotThreads(8, fixed=3)  # TESSERA_CHAT_THREADS
    with running(fixed, 2):
        assert fixed.share() == 3


def test_an_answer_alone_leaves_a_core_to_the_mesh_while_it_decodes() -> None:
    share = SlotThreads(4)
    with share.running():
        assert share.decode_share(share.share()) == 4 - STREAM_CORES
        with share.running():  # beside another answer: its half, nothing kept back
            assert share.decode_share(share.share()) == 2
    assert SlotThreads(1).decode_share(1) == 1, "one core: the model keeps it"
    assert SlotThreads(2).decode_share(2) == 1
    assert SlotThreads(4, fixed=4).decode_share(4) == 4, "TESSERA_CHAT_THREADS is kept"
    assert SlotThreads(4, stream_cores=0).decode_share(4) == 4


def test_the_count_stays_right_when_slots_start_and_end_on_many_threads() -> None:
    share = SlotThreads(4)
    seen: list[int] = []

    def work() -> None:
        for _ in range(2000):
            with share.running():
                seen.append(share.share())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert share.busy == 0 and set(seen) <= {1, 2, 4}


def test_upkeep_and_postgres_get_their_shares() -> None:
    assert [upkeep_threads(c) for c in (1, 2, 4, 8, 16)] == [1, 1, 1, 2, 4]
    assert [postgres_parallel_workers(c) for c in (1, 2, 3, 4, 8, 16)] == [0, 0, 0, 1, 2, 4]


def test_the_cores_are_the_setting_or_this_process_cpus() -> None:
    assert mesh_cores(3) == 3
    assert mesh_cores() == len(os.sched_getaffinity(0))
    assert load_settings({"TESSERA_CPU_CORES": "6"}).core.cpu_cores == 6
    with pytest.raises(ConfigError, match="TESSERA_CPU_CORES"):
        load_settings({"TESSERA_CPU_CORES": "-1"})


def test_native_pools_are_held_to_their_share_inside_and_given_back_after() -> None:
    from sklearn.cluster import KMeans  # noqa: F401  (loads scikit-learn's OpenMP runtime)
    from threadpoolctl import threadpool_info

    def counts() -> list[int]:
        return [int(p["num_threads"]) for p in threadpool_info()]

    before = counts()
    assert before, "no OpenMP or BLAS pool is loaded: nothing to hold"
    with native_threads(1):
        assert counts() == [1] * len(before)
    assert counts() == before


def test_background_work_yielding_to_an_answer_leaves_the_answer_every_core() -> None:
    share = SlotThreads(4, stream_cores=0)
    with share.running(background=True):
        assert share.share(background=True) == 4  # alone
        with share.running():  # an answer starts: the enrichment is stopping (it aborts within a graph operation)
            assert share.share() == 4 and share.share(background=True) == 2
            with share.running():  # a second answer: the answers split the cores between them
                assert share.share() == 2
    assert share.busy == 0 and share.share() == 4
