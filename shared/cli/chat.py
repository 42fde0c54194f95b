"""`tessera chat`: ask a question and watch the answer arrive, then its sources; no question: a session."""

from __future__ import annotations

import argparse
import asyncio
import sys

from rich.console import Console

from shared.client import Answer, Client, Done, StatusError, Step, Token, Unavailable
from shared.gen.tessera.v1 import chat_pb2, common_pb2
from shared.runtime.config import Settings

console = Console(soft_wrap=not sys.stdout.isatty())


STEP_WORDS = {"plan": "planned", "search": "searched", "covered": "enough found", "bound": "stopped"}


def request_for(question: str, conversation_id: str, args: argparse.Namespace) -> chat_pb2.ChatRequest:
    return chat_pb2.ChatRequest(conversation_id=conversation_id, messages=[chat_pb2.ChatMessage(role="user", content=question)],
                                rag=not args.no_rag, top_k_sources=args.sources, max_tokens=args.max_tokens,
                                temperature=args.temperature, filters=common_pb2.Filters(project=args.project),
                                mode="research" if args.research else "")


async def ask(client: Client, request: chat_pb2.ChatRequest, out: Console) -> Answer:
    """Print the answer as it arrives (over the client's transport); the whole answer when it is done."""
    answer = Answer()
    stream = await client.chat(request)
    try:
        async for event in stream:
            answer.add(event)
            if isinstance(event, Token):
                out.print(event.text, end="", markup=False, highlight=False)
                out.file.flush()
            elif isinstance(event, Step):
                out.print(f"[dim]{STEP_WORDS.get(event.kind, event.kind)}: {' · '.join(event.text.splitlines())}"
                          + (f" ({event.new_sources} new sources)" if event.kind == "search" else "") + "[/]", highlight=False)
    except Unavailable as exc:
        _end_line(answer, out)
        raise Unavailable(f"{exc}; ask again once the chat service is back") from None
    except StatusError:
        _end_line(answer, out)
        raise
    out.print()
    return answer


def _end_line(answer: Answer, out: Console) -> None:
    """End the half-printed answer's line, so that an error after it starts a line of its own."""
    if answer.text and not answer.text.endswith("\n"):
        out.print()


def print_sources(answer: Answer, out: Console) -> None:
    done: Done | None = answer.done
    if done is None or not done.sources:
        return
    cited = {c.number for c in answer.citations}
    out.print("[bold]Sources[/]")
    for s in done.sources:
        ref = s.source
        mark = "[green]cited[/]" if s.number in cited else "[dim]read[/]"
        out.print(f"  [{s.number}] {ref.title}  [cyan]{ref.path}:{ref.line_start}-{ref.line_end}[/]  {mark}", highlight=False)
    out.print(f"[dim]{done.completion_tokens} tokens in {done.duration_ms / 1000:.1f} s (retrieval {done.retrieval_ms:.0f} ms), "
              f"{done.finish_reason}; conversation {done.conversation_id}[/]")


async def session(client: Client, args: argparse.Namespace) -> int:
    conversation = args.conversation
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
        task = asyncio.ensure_future(ask(client, request_for(question, conversation, args), console))
        try:
            answer = await task
        except asyncio.CancelledError:
            console.print("\n[yellow]stopped[/]")
            continue
        except StatusError as exc:
            console.print(f"[red]{exc} ({exc.code})[/]")
            continue
        print_sources(answer, console)
        if answer.done:
            conversation = answer.done.conversation_id


async def run_chat(settings: Settings, args: argparse.Namespace) -> int:
    async with Client(settings, transport="grpc" if args.grpc else "quic", timeout_s=600.0) as client:
        if not args.question:
            return await session(client, args)
        answer = await ask(client, request_for(" ".join(args.question), args.conversation, args), console)
        print_sources(answer, console)
        return 0 if answer.done else 1


def cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(run_chat(settings, args))


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="ask your notes; streams the answer, then its sources (no question: a session)")
    p.add_argument("question", nargs="*")
    p.add_argument("--conversation", default="", help="continue this conversation id")
    p.add_argument("--project", default="", help="only retrieve from this project")
    p.add_argument("--sources", type=int, default=0, help="chunks to retrieve (default: TESSERA_CHAT_SOURCES)")
    p.add_argument("--max-tokens", type=int, default=0, help="answer length limit (default: TESSERA_CHAT_MAX_TOKENS)")
    p.add_argument("--temperature", type=float, default=0.0, help="0: the most likely words (default)")
    p.add_argument("--no-rag", action="store_true", help="answer without retrieving notes")
    p.add_argument("--research", action="store_true", help="for a question that spans notes: the model plans searches, each is "
                   "run (shown as it happens), and one answer cites what they found")
    p.add_argument("--grpc", action="store_true", help="read the answer from the gRPC stream instead of the QUIC data plane")
    p.set_defaults(fn=cmd_chat)
