"""Abstention from more than one signal, before a token is shown; no I/O but the model thread.

A question is answered only when all three agree that the notes hold its answer:

* **the relevance floor** (grounding.py): a source's cosine to the question;
* **lexical coverage**: the share of the question's content words that the relevant sources hold
  (a question about something the notes never name shares few of its words with them);
* **the model's check**: the answer's own prompt with one line added ("do these sources answer the question?"),
  the model's next token held to yes or no. It runs in the answer's slot before the answer: the KV cache then
  holds the sources and the question, and the answer evaluates only its last few tokens, so the check costs its
  own line of prefill and one token's logits. The first token a person sees comes after it.

Each floor is a setting; at debug level the chat log records every question's three figures (``grounding signals``)
for tuning on the golden set's tune split (tests/data/answers; ``bench/answers.py --signals``). A person's question is
never in the log at the default level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from services.chat.grounding import terms
from services.chat.prompt import Source

#: Each model profile's floor on the check's probability of yes, tuned on the golden set's tune split (a profile
#: not named here is not checked unless TESSERA_CHAT_CHECK_FLOOR sets one; SmolLM2-135M's yes and no are noise).
#: qwen2.5-coder-1.5b: on the tune split (57 questions) answerable ones got 0.547 and more, the unanswerable ones
#: that passed the relevance floor 0.17 to 0.58, in the first run. But a question's p_yes moves by up to 0.03 between
#: runs (what the KV cache held before changes the logits): in three runs the lowest answerable one read 0.547, 0.548
#: and 0.517, so a floor at the gap (0.545) abstained on it once. 0.50 keeps clear of that and still turns away 5 of
#: the 7 unanswerable tune questions that pass the cosine floor (15 of the 17 in all), in each of the three runs.
FLOORS: dict[str, float] = {"qwen2.5-coder-1.5b": 0.50}
#: The line the check adds to the question's turn.
QUESTION = "Do the sources above answer this question? Reply yes or no."
YES, NO = ("yes", "Yes", " yes", " Yes", "YES"), ("no", "No", " no", " No", "NO")


#: Words that ask for a kind of answer, not about a subject: "Write a long, detailed essay about descaling kettles"
#: asks about kettles; no note says "essay".
INSTRUCTION_WORDS = frozenset([
    "write", "explain", "explaining", "describe", "detail", "detailed", "details", "essay", "guide", "list",
    "summary", "summarize", "summarise", "short", "brief", "long", "longer", "many", "much", "very", "step",
    "steps", "way", "ways", "answer", "answers", "give", "tell", "show", "example", "examples", "paragraph",
    "sentence", "word", "words", "simple", "simply", "briefly", "everything", "anything", "something",
])


def coverage(question: str, sources: Sequence[Source]) -> float:
    """The share of the question's content words (not its instructions) found in the sources' text (1.0 for a question
    without any)."""
    wanted = terms(question) - INSTRUCTION_WORDS
    if not wanted:
        return 1.0
    held: set[str] = set()
    for s in sources:
        held |= terms(s.text)
    return len(wanted & held) / len(wanted)


def check_messages(messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """The answer's messages with the check's line after the question (the last turn, the user's)."""
    *before, last = messages
    return [*before, {**last, "content": f"{last['content']}\n\n{QUESTION}"}]


def answer_tokens(tokenize: Callable[[str], list[int]]) -> tuple[list[int], list[int]]:
    """The first token of each spelling of yes and of no (the ones both share are left out)."""
    yes = {t[0] for w in YES if (t := tokenize(w))}
    no = {t[0] for w in NO if (t := tokenize(w))}
    return sorted(yes - no), sorted(no - yes)
