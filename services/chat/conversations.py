"""The stored conversations' RPCs: read one, list them by purpose, rename one, delete one (not while its answer runs)."""

from __future__ import annotations

import logging

import grpc

from services.chat.convert import conversation_pb
from services.chat.store import ChatStore, ConversationBusy
from shared.contracts import PURPOSE_USER, PURPOSES
from shared.conversions import check_text, citation_from_json, parse_id, sentence_from_json, timestamp
from shared.errors import FailedPrecondition, InvalidArgument, NotFound
from shared.gen.tessera.v1 import chat_pb2

log = logging.getLogger("tessera.chat")
MAX_TITLE = 200
#: ListConversations' purpose for every purpose at once.
PURPOSE_ALL = "all"


class Conversations:
    def __init__(self, store: ChatStore) -> None:
        self.store = store

    async def GetConversation(self, request: chat_pb2.GetConversationRequest, context: grpc.aio.ServicerContext) -> chat_pb2.Conversation:
        parse_id(request.conversation_id, "conversation", "chat")
        found = await self.store.conversation(request.conversation_id)
        if found is None:
            raise NotFound(f"chat: no conversation {request.conversation_id}")
        c, rows = found
        return conversation_pb(c, messages=[
            chat_pb2.StoredMessage(message_id=str(r["id"]), role=str(r["role"]), content=str(r["content"]), created_at=timestamp(r["created_at"]),
                                   citations=[citation_from_json(d) for d in r["citations"]], finish_reason=str(r["finish_reason"]),
                                   sentences=[sentence_from_json(d) for d in r["sentences"]])
            for r in rows])

    async def ListConversations(self, request: chat_pb2.ListConversationsRequest,
                                context: grpc.aio.ServicerContext) -> chat_pb2.ListConversationsResponse:
        limit = min(request.limit or 50, 500)
        purpose = request.purpose or PURPOSE_USER
        if purpose not in (*PURPOSES, PURPOSE_ALL):
            raise InvalidArgument(f"chat: purpose is {purpose[:40]!r}; expected one of {', '.join(PURPOSES)} or {PURPOSE_ALL}")
        rows = await self.store.conversations(limit, None if purpose == PURPOSE_ALL else purpose)
        return chat_pb2.ListConversationsResponse(conversations=[conversation_pb(r) for r in rows])

    async def RenameConversation(self, request: chat_pb2.RenameConversationRequest,
                                 context: grpc.aio.ServicerContext) -> chat_pb2.Conversation:
        parse_id(request.conversation_id, "conversation", "chat")
        title = " ".join(request.title.split())
        if not 1 <= len(title) <= MAX_TITLE:
            raise InvalidArgument(f"chat: a conversation's title takes 1 to {MAX_TITLE} characters (spaces collapsed); it has {len(title)}")
        check_text("chat", title=title)
        row = await self.store.rename(request.conversation_id, title)
        if row is None:
            raise NotFound(f"chat: no conversation {request.conversation_id}")
        return conversation_pb(row)

    async def DeleteConversation(self, request: chat_pb2.DeleteConversationRequest,
                                 context: grpc.aio.ServicerContext) -> chat_pb2.DeleteConversationResponse:
        parse_id(request.conversation_id, "conversation", "chat")
        try:
            count = await self.store.delete(request.conversation_id)
        except ConversationBusy:
            raise FailedPrecondition(f"chat: conversation {request.conversation_id} has an answer being generated; "
                                     "stop it or wait for it, then delete") from None
        if count is None:
            raise NotFound(f"chat: no conversation {request.conversation_id}")
        log.info("chat: deleted conversation %s (%d messages)", request.conversation_id, count)
        return chat_pb2.DeleteConversationResponse(messages=count)

