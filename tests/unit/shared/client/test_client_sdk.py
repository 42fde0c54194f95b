"""The client SDK's public surface, its typed events and errors, and that it loads no model runtime."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest

import shared.client
from shared.client import Citation, Done, Finished, Started, TileReady, Token
from shared.client._rpc import from_rpc_error
from shared.client.events import chat_event, tensor_event
from shared.errors import InvalidArgument, NotFound, ResourceExhausted, StatusError, Unavailable
from shared.gen.tessera.v1 import chat_pb2, common_pb2, tensor_pb2

PUBLIC = {
    "Answer", "Cancelled", "ChatEvent", "Citation", "Client", "DeadlineExceeded", "Done", "FailedPrecondition", "Finished", "Internal",
    "InvalidArgument", "NotFound", "PermissionDenied", "ResampleResult", "ResourceExhausted", "Started", "StatusError", "Step", "Stitcher",
    "SyncClient", "TensorEvent", "TesseraError", "TileReady", "Token", "Transport", "Unavailable", "filters", "spec_for",
}


def test_the_public_names_are_exactly_all() -> None:
    assert set(shared.client.__all__) == PUBLIC
    for name in shared.client.__all__:
        assert getattr(shared.client, name) is not None
    methods = {"search", "related", "ingest_path", "ingest", "upload", "capture", "chat", "ask", "resample", "close"}
    assert methods <= set(dir(shared.client.Client))


def test_importing_the_sdk_loads_no_model_runtime() -> None:
    code = ("import sys, shared.client\n"
            "heavy = [m for m in ('torch', 'llama_cpp', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "", f"the SDK imported {out.stdout.strip()}"


def test_chat_frames_become_typed_events() -> None:
    ref = common_pb2.SourceRef(path="/n/kettle.md", line_start=3, line_end=9, title="Kettle")
    assert chat_event(chat_pb2.ChatEvent(token=chat_pb2.TokenChunk(text="Use [1]", index=4, citations=[1]))) == Token("Use [1]", 4, (1,))
    cited = chat_event(chat_pb2.ChatEvent(citation=chat_pb2.Citation(number=1, source=ref, score=0.5, origin="model")))
    assert isinstance(cited, Citation) and cited.number == 1 and cited.source.path == "/n/kettle.md" and cited.origin == "model"
    done = chat_event(chat_pb2.ChatEvent(done=chat_pb2.ChatDone(finish_reason="stop", completion_tokens=7, conversation_id="c",
                                                                sources=[chat_pb2.Citation(number=1, source=ref)])))
    assert isinstance(done, Done) and done.finish_reason == "stop" and done.completion_tokens == 7
    assert [s.source.title for s in done.sources] == ["Kettle"]


def test_an_answer_whose_stored_text_differs_shows_the_stored_text() -> None:
    """With TESSERA_CHAT_UNSUPPORTED=remove, ChatDone.text is the answer without its unsupported sentences: an
    Answer (what stream: false returns through the gateway) ends with it instead of the streamed tokens."""
    answer = shared.client.Answer()
    for text in ("Boil vinegar [1]. ", "The moon helps."):
        answer.add(chat_event(chat_pb2.ChatEvent(token=chat_pb2.TokenChunk(text=text))))
    plain = shared.client.Answer()
    plain.add(Token("Boil vinegar [1].", 0))
    plain.add(chat_event(chat_pb2.ChatEvent(done=chat_pb2.ChatDone(finish_reason="stop"))))
    answer.add(chat_event(chat_pb2.ChatEvent(done=chat_pb2.ChatDone(finish_reason="stop", text="Boil vinegar [1]."))))
    assert answer.text == "Boil vinegar [1]." and answer.done is not None and answer.done.text == "Boil vinegar [1]."
    assert plain.text == "Boil vinegar [1]." and plain.done is not None and plain.done.text == ""


def test_an_error_frame_raises_the_status_of_its_code() -> None:
    with pytest.raises(ResourceExhausted, match="busy"):
        chat_event(chat_pb2.ChatEvent(error=chat_pb2.ChatError(code="RESOURCE_EXHAUSTED", message="chat: busy")))
    with pytest.raises(Unavailable):
        tensor_event(tensor_pb2.TensorFrame(error=tensor_pb2.TensorError(code="UNAVAILABLE", message="tensor: no worker")))
    with pytest.raises(StatusError) as err:
        chat_event(chat_pb2.ChatEvent())
    assert err.value.code == "INTERNAL"


def test_tensor_frames_become_typed_events() -> None:
    s = tensor_event(tensor_pb2.TensorFrame(start=tensor_pb2.TensorStart(job_id="j", output_shape=[1, 2, 3, 4], tiles=2)))
    assert s == Started("j", (1, 2, 3, 4), 0, 2, ())
    t = tensor_event(tensor_pb2.TensorFrame(tile=tensor_pb2.Tile(index=1, offset=[0, 0, 0, 2], shape=[1, 2, 3, 2], data=b"ab")))
    assert isinstance(t, TileReady) and t.offset == (0, 0, 0, 2) and t.data == b"ab"
    e = tensor_event(tensor_pb2.TensorFrame(end=tensor_pb2.TensorEnd(tiles=2, backends=["numpy"])))
    assert isinstance(e, Finished) and e.backends == ["numpy"]


def rpc_error(code: grpc.StatusCode, details: str, trailing: tuple[tuple[str, str], ...] = ()) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details)


def test_a_failed_call_becomes_the_error_of_its_status() -> None:
    err = from_rpc_error(rpc_error(grpc.StatusCode.NOT_FOUND, "search: no document 'x'"), "search")
    assert isinstance(err, NotFound) and str(err) == "search: no document 'x'" and err.http_status == 404
    busy = from_rpc_error(rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "chat: all slots busy", (("retry-after-ms", "2500"),)), "chat")
    assert isinstance(busy, ResourceExhausted) and busy.retry_after == 2.5
    down = from_rpc_error(rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"), "embed")
    assert isinstance(down, Unavailable) and str(down).startswith("embed: the service cannot be reached")
    bad = from_rpc_error(rpc_error(grpc.StatusCode.INVALID_ARGUMENT, ""), "ingest")
    assert isinstance(bad, InvalidArgument) and str(bad) == "ingest: the call ended with INVALID_ARGUMENT"
    # chaos found it: chat stopping cancelled a call it had not answered, and the gateway passed on a bare "CANCELLED" (499)
    stopped = from_rpc_error(rpc_error(grpc.StatusCode.CANCELLED, "CANCELLED"), "chat")
    assert isinstance(stopped, Unavailable) and str(stopped).startswith("chat: the service cancelled the call (CANCELLED)")
