"""The answer check's pure parts: lexical coverage, the check's prompt, the yes and no tokens."""

from __future__ import annotations

from services.chat.check import QUESTION, answer_tokens, check_messages, coverage
from services.chat.prompt import Source


def src(text: str) -> Source:
    return Source(number=1, chunk_id="c1", document_id="d1", title="Doc", path="notes/1.md", line_start=1, line_end=4, text=text)


def test_coverage_is_the_share_of_the_questions_words_the_sources_hold() -> None:
    kettle = src("To descale a kettle, boil equal parts white vinegar and water, then rinse it twice.")
    assert coverage("How do I descale a kettle?", [kettle]) == 1.0
    # the words overlap (descale), but what is asked about is never named: an espresso machine's grinder
    assert coverage("How do I descale the espresso machine's grinder?", [kettle]) <= 0.34
    assert coverage("How long should the kettle stand after boiling vinegar?", [kettle, src("Let it stand for an hour.")]) >= 0.5
    assert coverage("How?", [kettle]) == 1.0  # no content word: nothing to hold against it
    assert coverage("How do I descale a kettle?", []) == 0.0


def test_the_check_adds_its_line_to_the_question_turn_and_keeps_the_rest() -> None:
    messages = [{"role": "system", "content": "Answer from the sources."}, {"role": "user", "content": "[1] ...\n\nQuestion: q?"}]
    checked = check_messages(messages)
    assert checked[0] == messages[0] and len(checked) == 2
    assert checked[1] == {"role": "user", "content": f"[1] ...\n\nQuestion: q?\n\n{QUESTION}"}
    assert messages[1]["content"].endswith("q?")  # the answer's own messages are left as they were


def test_yes_and_no_are_each_spellings_first_token_and_never_both() -> None:
    vocab = {"yes": [5], "Yes": [6], " yes": [7, 1], " Yes": [8], "YES": [9, 9], "no": [10], "No": [11], " no": [12], " No": [8], "NO": []}
    yes, no = answer_tokens(vocab.__getitem__)
    assert yes == [5, 6, 7, 9] and no == [10, 11, 12]  # 8 is both " Yes" and " No": it says neither


def test_words_that_ask_for_a_kind_of_answer_do_not_count() -> None:
    kettle = src("Kettle descaling. To descale a kettle, boil equal parts white vinegar and water, then rinse it twice.")
    assert coverage("Write a very long and detailed essay about descaling kettles, with many steps.", [kettle]) == 1.0
    assert coverage("Explain in detail how to descale the espresso machine's grinder.", [kettle]) <= 0.34
