"""File citations in an answer: which files of the ``file_search`` results the answer cites, and where
(OpenAI's ``file_citation`` annotations, ``{"type", "index", "file_id", "filename"}``).

Two ways, so that a small model cites as well as a large one:

- **Markers.** Each result the model reads is labelled with its file's marker, ``<|file-…|>``, and the
  model is asked to write the marker after what it takes from there (Llama Stack's way). A marker leaves
  the text with the one space before it, and, when its file is among the results, is a citation at the
  index where it stood; a marker of a file that is not (a made-up id) cites nothing. Markers leave the
  text as it streams: what may begin a marker (``<``, ``<|fi``, a space) is held back until it is one
  or is not.
- **Quotes.** A small model seldom writes markers, and paraphrases, but repeats names and phrases of
  what it read: a file whose result the answer quotes is cited at the end of the first quote, unless a
  marker cited it already. A quote is a run of at least ``QUOTE_WORDS`` words in a row that the result
  has in the same order (compared word by word without case), of at least ``QUOTE_LETTERS`` letters, so
  that the commonest phrases (``one of the``, ``because of the``) quote nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..ports.inference import Json

MAX_ID = 128
MARKER = re.compile(rf"<\|(file-[A-Za-z0-9_-]{{1,{MAX_ID}}})\|>")
PARTIAL = re.compile(rf"<(?:\|(?:f(?:i(?:l(?:e(?:-[A-Za-z0-9_-]{{0,{MAX_ID}}}\|?)?)?)?)?)?)?")
WORD = re.compile(r"\w+")
QUOTE_WORDS = 3
QUOTE_LETTERS = 16


@dataclass(frozen=True)
class Source:
    """One result the answer may cite: the passage and the file it is from."""

    file_id: str
    filename: str
    text: str


def marker(file_id: str) -> str:
    return f"<|{file_id}|>"


def citation(source: Source, index: int) -> Json:
    return {"type": "file_citation", "index": index, "file_id": source.file_id, "filename": source.filename}


@dataclass
class CitedText:
    """One answer's text as it streams: ``feed`` each piece, ``close`` at its end. Each returns the text
    to show (markers gone) and the citations found, in order; ``sources`` may grow as tools run."""

    sources: Sequence[Source]
    text: str = ""  # shown so far
    annotations: list[Json] = field(default_factory=list)
    _held: str = ""

    def feed(self, piece: str) -> tuple[str, list[Json], bool]:
        """The text to show now, its citations, and whether a marker was taken out."""
        pending, shown, removed = self._held + piece, "", False
        found: list[Json] = []
        while (match := MARKER.search(pending)) is not None:
            before = pending[: match.start()]
            shown += before.removesuffix(" ")
            source = self._source(match.group(1))
            if source is not None:
                found.append(citation(source, len(self.text) + len(shown)))
            pending, removed = pending[match.end() :], True
        held_from = _held_from(pending)
        shown, self._held = shown + pending[:held_from], pending[held_from:]
        return self._shown(shown, found), found, removed

    def close(self) -> tuple[str, list[Json]]:
        """The text still held (it was no marker), and the citations of the answer's quotes."""
        shown, self._held = self._held, ""
        self.text += shown
        cited = {annotation["file_id"] for annotation in self.annotations}
        found = quotes(self.text, self.sources, cited)
        self.annotations += found
        return shown, found

    def _shown(self, shown: str, found: list[Json]) -> str:
        self.text += shown
        self.annotations += found
        return shown

    def _source(self, file_id: str) -> Source | None:
        return next((source for source in self.sources if source.file_id == file_id), None)


def _held_from(text: str) -> int:
    """Where the text's tail that may still become a marker (with the space before it) begins."""
    at = text.rfind("<")
    start = at if at >= 0 and PARTIAL.fullmatch(text, at) else len(text)
    return start - 1 if start > 0 and text[start - 1] == " " else start


def quotes(text: str, sources: Sequence[Source], cited: set[str]) -> list[Json]:
    """A citation of each file not in ``cited`` whose result the text quotes, at the end of the first
    quote; in the text's order."""
    words = [(match.group().casefold(), match.end()) for match in WORD.finditer(text)]
    found: list[Json] = []
    seen = set(cited)
    for source in sources:
        if source.file_id in seen:
            continue
        runs = _runs(source.text)
        end = _first_quote(words, runs)
        if end is not None:
            found.append(citation(source, end))
            seen.add(source.file_id)
    return sorted(found, key=lambda annotation: int(annotation["index"]))


def _runs(text: str) -> set[tuple[str, ...]]:
    words = [match.group().casefold() for match in WORD.finditer(text)]
    return {tuple(words[at : at + QUOTE_WORDS]) for at in range(len(words) - QUOTE_WORDS + 1)}


def _first_quote(words: list[tuple[str, int]], runs: set[tuple[str, ...]]) -> int | None:
    """The end (a character index) of the first quote in ``words`` of a text whose runs of
    ``QUOTE_WORDS`` words are ``runs``: each quote runs on as long as the words go on quoting."""
    shown = [word for word, _ in words]
    at = 0
    while at <= len(words) - QUOTE_WORDS:
        if tuple(shown[at : at + QUOTE_WORDS]) not in runs:
            at += 1
            continue
        last = at + QUOTE_WORDS - 1
        while last + 1 < len(words) and tuple(shown[last + 2 - QUOTE_WORDS : last + 2]) in runs:
            last += 1
        if sum(len(word) for word in shown[at : last + 1]) >= QUOTE_LETTERS:
            return words[last][1]
        at = last + 1
    return None
