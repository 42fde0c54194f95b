"""Loading chat's generators: the embedded llama.cpp slots (with the GPU layers the scheduler grants) or a remote
OpenAI-compatible backend, and the self-test they pass before the service reports SERVING."""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path

from services.chat.backends import BackendError, RemoteModel, first_model
from services.chat.model import ChatModel, ChatTemplate, layer_count, layers_granted, offload_plan
from services.chat.selftest import Marker, SelfTestFailed, selftest
from shared.errors import DependencyError
from shared.runtime.cpu import SlotThreads, mesh_cores
from shared.runtime.gpu import GpuLeases, Priority, on_gpu
from shared.runtime.service import Runtime

SERVICE = "chat"
log = logging.getLogger("tessera.chat")
Generator = ChatModel | RemoteModel


async def load_local(rt: Runtime, path: Path) -> tuple[list[Generator], str]:
    """The embedded llama.cpp slots (GPU layers as the scheduler grants), and a line describing them."""
    settings = rt.settings
    layers = await asyncio.to_thread(layer_count, path)
    wanted, nbytes = offload_plan(path, layers, settings.chat.gpu_layers, settings.chat.context)
    slots = settings.chat.slots
    gpu = GpuLeases(settings, rt.channels, SERVICE, rt.instance_id)
    rt.host.on_close(gpu.close)
    # Weights are mmapped and shared by the slots; each slot has its own KV cache.
    lease = await gpu.acquire(Priority.PRIORITY_INTERACTIVE, nbytes * slots) if wanted else None
    n_gpu = layers_granted(lease.bytes // slots, path, layers, wanted, settings.chat.context) if lease and on_gpu(lease) else 0
    # The mesh's cores are shared out among the slots generating at the moment (TESSERA_CHAT_THREADS fixes each slot's).
    share = SlotThreads(mesh_cores(settings.core.cpu_cores), settings.chat.threads)
    models: list[Generator] = [await asyncio.to_thread(ChatModel, path, settings.chat.context, share.share(), n_gpu,
                                                       settings.chat.repeat_penalty, share) for _ in range(slots)]
    threads = f"{share.fixed} threads each" if share.fixed else f"{share.cores} cores shared by the slots generating"
    return models, f"{models[0].describe()} x{slots} slots, {threads}"


async def load_remote(rt: Runtime) -> tuple[list[Generator], str]:
    settings = rt.settings
    try:
        name = settings.chat.backend_model or await asyncio.to_thread(first_model, settings.chat.backend_url, settings.chat.backend_key,
                                                                      settings.chat.backend_timeout_s)
    except BackendError as exc:
        raise DependencyError(str(exc)) from None
    remotes = [RemoteModel(settings.chat.backend_url, settings.chat.backend_key, name, settings.chat.backend_timeout_s,
                           settings.chat.repeat_penalty) for _ in range(settings.chat.slots)]
    for m in remotes:
        rt.host.on_close(functools.partial(asyncio.to_thread, m.close))
    models: list[Generator] = list(remotes)
    return models, f"{models[0].describe()} x{settings.chat.slots} slots"


async def run_selftest(rt: Runtime, model: Generator, template: ChatTemplate) -> str:
    """The self-test before SERVING; the marker says 'running' while it runs, so a crash in it is visible to `tessera status`."""
    marker = Marker.for_instance(rt.settings.path("run"))
    marker.write("running", "decoding the self-test prompt")
    try:
        line = await asyncio.to_thread(selftest, model, template)
    except (SelfTestFailed, BackendError) as exc:
        marker.write("failed", str(exc))
        raise DependencyError(f"{exc}; the chat service does not start") from None
    except Exception as exc:
        marker.write("failed", f"{type(exc).__name__}: {exc}")
        raise
    marker.write("passed", line)
    log.info("chat: %s", line)
    return line
