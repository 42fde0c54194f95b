"""Two llama.cpp slots of the real test model on one share of the cores: an answer alone runs on every core, and while
a second answer runs beside it both run on half (read from llama.cpp's own context, token by token)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from services.chat.model import ChatModel, ChatTemplate, Sampling
from services.chat.profiles import model_path
from shared.runtime.cpu import SlotThreads

CORES = 4  # the share's own count: the test holds on a 2-core machine too (threads may outnumber cores)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_path("smollm2-135m", "", tmp_path_factory.mktemp("models"))[1]


def prompt(template: ChatTemplate, text: str) -> list[int]:
    return template.tokenize(template.render([{"role": "user", "content": text}]))


def test_an_answer_runs_on_every_core_alone_and_on_half_beside_another(model_file: Path) -> None:
    share = SlotThreads(CORES, stream_cores=0)  # (no core kept for the mesh: the next test covers it)
    first, second = (ChatModel(model_file, 1024, share.share(), 0, 1.1, share) for _ in range(2))
    template = ChatTemplate(model_file)
    seen: list[int] = []  # the first answer's threads at each of its tokens
    second_seen: list[int] = []
    second_started, first_far, second_done = threading.Event(), threading.Event(), threading.Event()

    def run_second() -> None:
        def emit(_: str) -> bool:
            second_seen.append(second.running_threads)
            second_started.set()
            return first_far.wait(60)  # it stays busy until the first answer has run beside it for a while

        second.generate(prompt(template, "Name three colours."), [], Sampling(max_tokens=6), [], threading.Event(), emit)
        second_done.set()

    beside = threading.Thread(target=run_second)

    def emit(_: str) -> bool:
        seen.append(first.running_threads)
        if len(seen) == 4:  # a second answer starts, and is under way before this one goes on
            beside.start()
            assert second_started.wait(60)
        if len(seen) == 11:
            first_far.set()
        if len(seen) == 12:  # it has ended before this one goes on
            assert second_done.wait(60)
        return True

    finish, produced = first.generate(prompt(template, "Write a long story about a lighthouse keeper."), [],
                                      Sampling(max_tokens=20), [], threading.Event(), emit)
    beside.join()
    assert produced == 20, (finish, produced)
    assert seen[:4] == [CORES] * 4  # alone
    assert seen[4:12] == [CORES // 2] * 8  # beside the second, from the first token after it started
    assert second_seen and set(second_seen) == {CORES // 2}
    assert seen[12:] == [CORES] * 8  # alone again, from the first token after it ended
    assert share.busy == 0


def test_a_fixed_thread_count_is_kept_whatever_runs(model_file: Path) -> None:
    share = SlotThreads(CORES, fixed=1)  # TESSERA_CHAT_THREADS=1
    model = ChatModel(model_file, 1024, share.share(), 0, 1.1, share)
    seen: list[int] = []
    with share.running():  # another slot busy
        model.generate(prompt(ChatTemplate(model_file), "Say hello."), [], Sampling(max_tokens=4), [], threading.Event(),
                       lambda _: seen.append(model.running_threads) is None)
    assert seen and set(seen) == {1}


def test_an_answer_alone_decodes_beside_a_free_core_and_its_prompt_runs_on_every_core(model_file: Path) -> None:
    """An answer alone decodes on every core but one (the mesh's per-token work runs there) and its prompt steps on every
    core; beside another answer nothing is kept back."""
    import llama_cpp

    share = SlotThreads(CORES)
    model = ChatModel(model_file, 1024, share.share(), 0, 1.1, share)
    template = ChatTemplate(model_file)
    seen: list[tuple[int, int]] = []

    def emit(_: str) -> bool:
        seen.append((model.running_threads, int(llama_cpp.llama_n_threads_batch(model.llm._ctx.ctx))))
        return True

    model.generate(prompt(template, "Write a long story about a lighthouse keeper."), [], Sampling(max_tokens=8), [],
                   threading.Event(), emit)
    assert seen and set(seen) == {(CORES - 1, CORES)}
    seen.clear()
    with share.running():  # another answer runs: half each, and nothing kept back
        model.generate(prompt(template, "Say hello."), [], Sampling(max_tokens=4), [], threading.Event(), emit)
    assert seen and set(seen) == {(CORES // 2, CORES // 2)}


def tasks() -> set[int]:
    return {int(t.name) for t in Path("/proc/self/task").iterdir()}


def test_a_model_call_gives_its_threads_openmp_workers_back(model_file: Path) -> None:
    """llama.cpp's step threads are OpenMP's: the thread that ran a call keeps a pool of workers, and once several
    threads keep one libgomp stops spinning at barriers (services/chat/omp.py). A call ends with its workers gone."""
    from services.chat import omp

    model = ChatModel(model_file, 1024, 2, 0, 1.1, None)  # prompt and answer steps on 2 threads: OpenMP's workers
    if not omp.loaded_libgomp():
        pytest.skip("this llama.cpp build does not use OpenMP (no libgomp loaded): there are no workers to give back")
    template = ChatTemplate(model_file)
    before = tasks()
    during: set[int] = set()
    caller: list[int] = []
    finished, leave = threading.Event(), threading.Event()

    def run() -> None:
        caller.append(threading.get_native_id())

        def emit(_: str) -> bool:
            during.update(tasks() - before)
            return True

        model.generate(prompt(template, "Write a long story about a lighthouse keeper."), [], Sampling(max_tokens=4), [],
                       threading.Event(), emit)
        finished.set()
        leave.wait(60)  # the thread lives on, as asyncio's worker threads do

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert finished.wait(120)
        workers = during - set(caller)
        assert workers, f"no OpenMP worker ran beside the calling thread: {during}"
        for _ in range(100):  # the workers leave as soon as they are released; give them a moment to exit
            if not workers & tasks():
                break
            threading.Event().wait(0.05)
        assert not workers & tasks(), f"OpenMP workers {sorted(workers & tasks())} outlived the call on a thread that lives on"
    finally:
        leave.set()
        thread.join()
