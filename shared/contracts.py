"""What services and their clients agree on beyond the protos: fixed replies and the names they are recognised by."""

from __future__ import annotations

#: The answer chat gives when no retrieved source passes the relevance floor (nothing is generated); the closest
#: hits follow it on later lines. Clients, the answer eval and the web page recognise an abstention by this prefix.
NOT_IN_NOTES = "Not in your notes: none of the notes I found answers this question."

#: ChatDone.finish_reason values beyond "stop", "length" and "cancelled".
FINISH_LOOP = "loop"  # the repetition guard stopped an answer that had started to repeat itself
FINISH_ABSTAINED = "abstained"  # the fixed NOT_IN_NOTES reply
FINISH_FAILED = "failed"  # stored turns only: the chat process died while generating
FINISH_GENERATING = "generating"  # stored turns only: the answer is being generated
