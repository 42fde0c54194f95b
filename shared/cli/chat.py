"""`tessera chat`: ask a question and watch the answer arrive, then its sources; no question: a session."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any

import grpc
from rich.console import Console

from shared.errors import DependencyError
from shared.gen.tessera.v1 import chat_pb2, chat_pb2_grpc, common_pb2
from shared.quic import QuicClient, QuicError
from shared.runtime.channels import Channels
from shared.runtime.config import Settings

console = Console(soft_wrap=not sys.stdout.isatty())
ANSWER_TIMEOUT_S = 600.0


@dataclass
class Answer:
    text: str = ""
    citations: list[chat_pb2.Citation] = field(default_factory=list)
    done: chat_pb2.ChatDone | None = None


def request_for(question: str, conversation_id: str, args: argparse.Namespace) -> chat_pb2.ChatRequest:
    return chat_pb2.ChatRequest(conversation_id=conversation_id, messages=[chat_pb2.ChatMessage(role="user", content=question)],
                                rag=not args.no_rag, top_k_sources=args.sources, max_tokens=args.max_tokens,
                                temperature=args.temperature, filters=common_pb2.Filters(project=args.project))


async def ask(stub: chat_pb2_grpc.ChatServiceStub, request: chat_pb2.ChatRequest, out: Console, quic: QuicClient | None = None) -> Answer:
    """Over the QUIC data plane when ``quic`` is given (StartChat, then the ticket's stream), else the gRPC stream."""
    answer = Answer()
    call: Any
    try:
        if quic is not None:
            reply = await stub.StartChat(request, timeout=ANSWER_TIMEOUT_S)
            call = await quic.open(reply.ticket, chat_pb2.ChatEvent)
        else:
            call = stub.Chat(request, timeout=ANSWER_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        raise DependencyError(f"chat: {exc.details() or exc.code().name} ({exc.code().name})") from None
    except QuicError as exc:
        raise DependencyError(f"chat: the answer stream could not be opened: {exc} (try --grpc)") from None
    try:
        async for ev in call:
            kind = ev.WhichOneof("event")
            if kind == "token":
                answer.text += ev.token.text
                out.print(ev.token.text, end="", markup=False, highlight=False)
                out.file.flush()
            elif kind == "citation":
                answer.citations.append(ev.citation)
            elif kind == "done":
                answer.done = ev.done
            elif kind == "error":
                _end_line(answer, out)
                raise DependencyError(f"chat: {ev.error.message} ({ev.error.code})")
    except grpc.aio.AioRpcError as exc:
        _end_line(answer, out)
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            raise DependencyError(f"chat: the chat service went away while answering ({exc.details() or 'UNAVAILABLE'}); "
                                  "ask again once it is back") from None
        raise DependencyError(f"chat: {exc.details() or exc.code().name} ({exc.code().name})") from None
    except QuicError as exc:
        _end_line(answer, out)
        raise DependencyError(f"chat: the answer stream broke: {exc}; ask again once the chat service is back") from None
    finally:
        call.cancel()
    out.print()
    return answer


def _end_line(answer: Answer, out: Console) -> None:
    """End the half-printed answer's line, so that an error after it starts a line of its own."""
    if answer.text and not answer.text.endswith("\n"):
        out.print()


def print_sources(answer: Answer, out: Console) -> None:
    if answer.done is None or not answer.done.sources:
        return
    cited = {c.number for c in answer.citations}
    out.print("[bold]Sources[/]")
    for s in answer.done.sources:
        ref = s.source
        mark = "[green]cited[/]" if s.number in cited else "[dim]read[/]"
        out.print(f"  [{s.number}] {ref.title}  [cyan]{ref.path}:{ref.line_start}-{ref.line_end}[/]  {mark}", highlight=False)
    d = answer.done
    out.print(f"[dim]{d.completion_tokens} tokens in {d.duration_ms / 1000:.1f} s (retrieval {d.retrieval_ms:.0f} ms), "
              f"{d.finish_reason}; conversation {d.conversation_id}[/]")


async def run_chat(settings: Settings, args: argparse.Namespace) -> int:
    channels = Channels(settings)
    quic = None if args.grpc else QuicClient(settings)
    try:
        stub = await channels.stub("chat", chat_pb2_grpc.ChatServiceStub)
        conversation = args.conversation
        if args.question:
            answer = await ask(stub, request_for(" ".join(args.question), conversation, args), console, quic)
            print_sources(answer, console)
            return 0 if answer.done else 1
        console.print("[dim]Ask about your notes. Ctrl-C stops an answer; Ctrl-D or /exit leaves; /new starts over.[/]")
        while True:
            try:
                question = (await asyncio.to_thread(input, "\nyou> ")).strip()
            except (EOFError, KeyboardInterrupt):
                console.print()
                return 0
            if question in ("/exit", "/quit"):
                return 0
            if question == "/new":
                conversation = ""
                continue
            if not question:
                continue
            task = asyncio.ensure_future(ask(stub, request_for(question, conversation, args), console, quic))
            try:
                answer = await task
            except asyncio.CancelledError:
                console.print("\n[yellow]stopped[/]")
                continue
            except DependencyError as exc:
                console.print(f"[red]{exc}[/]")
                continue
            print_sources(answer, console)
            if answer.done:
                conversation = answer.done.conversation_id
    finally:
        if quic is not None:
            await quic.close()
        await channels.close()


def cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(run_chat(settings, args))


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("chat", help="ask your notes; streams the answer, then its sources (no question: a session)")
    p.add_argument("question", nargs="*")
    p.add_argument("--conversation", default="", help="continue this conversation id")
    p.add_argument("--project", default="", help="only retrieve from this project")
    p.add_argument("--sources", type=int, default=0, help="chunks to retrieve (default: TESSERA_CHAT_SOURCES)")
    p.add_argument("--max-tokens", type=int, default=0, help="answer length limit (default: TESSERA_CHAT_MAX_TOKENS)")
    p.add_argument("--temperature", type=float, default=0.0, help="0: the most likely words (default)")
    p.add_argument("--no-rag", action="store_true", help="answer without retrieving notes")
    p.add_argument("--grpc", action="store_true", help="read the answer from the gRPC stream instead of the QUIC data plane")
    p.set_defaults(fn=cmd_chat)
