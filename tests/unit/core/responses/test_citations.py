"""The citation finder: markers taken out of a streamed answer (whatever pieces it comes in) and made
citations where they stood, and the files whose passages the answer quotes."""

from __future__ import annotations

import pytest

from cairn.core.responses.citations import MAX_ID, CitedText, Source, quotes

HERON = Source("file-heron", "facts.txt", "The Zanzibar project codename is BLUE HERON. It ships in March.")
OTHER = Source(
    "file-other", "other.txt", "Bananas grow in bunches on large herbaceous plants in the tropics."
)


def cite(source: Source, index: int) -> dict:
    return {"type": "file_citation", "index": index, "file_id": source.file_id, "filename": source.filename}


def streamed(pieces: list[str], sources: list[Source]) -> tuple[str, list[str], list[dict], list[bool]]:
    """The whole text shown, the pieces shown, every citation in order, and which feeds removed one."""
    cited = CitedText(sources)
    shown, found, removed = [], [], []
    for piece in pieces:
        text, citations, gone = cited.feed(piece)
        shown.append(text)
        found += citations
        removed.append(gone)
    text, citations = cited.close()
    shown.append(text)
    assert cited.annotations == found + citations and cited.text == "".join(shown)
    return cited.text, shown, found + citations, removed


def test_a_marker_is_a_citation_where_it_stood_and_leaves_with_its_space():
    text, _, found, _ = streamed(["It is BLUE <|file-heron|>. Done <|file-heron|>"], [HERON])
    assert text == "It is BLUE. Done"
    assert found == [cite(HERON, len("It is BLUE")), cite(HERON, len(text))]


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_a_marker_split_across_pieces_is_held_until_it_is_one(size):
    answer = "The codename is secret <|file-heron|>. Also <b> and a < c and <|fig|> stay."
    pieces = [answer[at : at + size] for at in range(0, len(answer), size)]
    text, shown, found, removed = streamed(pieces, [HERON])
    assert text == "The codename is secret. Also <b> and a < c and <|fig|> stay."
    assert found == [cite(HERON, len("The codename is secret"))]
    assert removed.count(True) == 1
    assert all("<|file" not in piece for piece in shown)


def test_a_marker_of_a_file_not_among_the_results_cites_nothing_but_leaves():
    text, _, found, removed = streamed(["Made up <|file-nowhere|>."], [HERON])
    assert (text, found, removed) == ("Made up.", [], [True])


def test_what_only_looked_like_a_marker_is_shown_at_the_end():
    _, shown, found, _ = streamed(["See <|file-her"], [HERON])
    assert shown == ["See", " <|file-her"] and found == []
    endless = "<|file-" + "x" * (MAX_ID + 1)  # too long to be a marker: not held back
    assert streamed([endless], [HERON])[1][0] == endless


def test_a_quote_of_a_result_cites_its_file_at_the_quotes_end():
    answer = "Answer: the zanzibar project codename is Blue Heron, I read."
    assert streamed([answer], [OTHER, HERON])[2] == [cite(HERON, answer.index(", I read"))]


def test_a_file_cited_by_a_marker_is_not_cited_again_for_a_quote():
    answer = "The Zanzibar project codename is BLUE HERON <|file-heron|>."
    assert streamed([answer], [HERON])[2] == [cite(HERON, answer.index(" <|"))]


def test_a_quote_is_three_words_in_a_row_and_more_than_the_commonest_phrase():
    common = Source("file-common", "common.txt", "It is one of the best. Bananas grow in bunches on plants.")
    assert quotes("It is one of the rest, Blue Heron.", [common, HERON], set()) == []
    answer = "One of the fruits: bananas grow in bunches on trees."
    assert quotes(answer, [common], set()) == [cite(common, answer.index(" trees"))]


def test_quotes_come_in_the_texts_order_once_per_file_not_cited_yet():
    answer = "Bananas grow in bunches on trees; the Zanzibar project codename is BLUE HERON."
    found = quotes(answer, [HERON, OTHER, HERON], set())
    assert found == [cite(OTHER, answer.index(" trees")), cite(HERON, len(answer) - 1)]
    assert quotes(answer, [HERON, OTHER], {"file-heron"}) == [cite(OTHER, answer.index(" trees"))]
