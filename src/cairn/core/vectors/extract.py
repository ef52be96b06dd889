"""The plain text of a file, from its bytes, its name and its declared MIME type (D28).

Which reader: the file name's extension when it is one we know (clients often declare
``application/octet-stream``), else the MIME type (its parameters ignored; any ``text/*`` reads as plain
text, any ``*+json`` as JSON). Anything else is ``UnsupportedFile``.

- Plain text and Markdown: as they are. Text files are UTF-8, with or without a byte-order mark, or
  UTF-16/UTF-32 with one; there is no guessing of legacy encodings (latin-1 decodes any bytes, so a
  binary file would pass as text). Undecodable bytes, or a NUL character, are ``InvalidFile``.
- HTML: the visible text (Python's own tolerant ``html.parser``): no ``script``, ``style``,
  ``template`` or ``noscript``; block elements and ``br`` end a line; white space collapses as a
  browser collapses it, except inside ``pre``; table cells are joined by `` | ``.
- JSON: the parsed document written back indented by two spaces, non-ASCII characters as themselves.
  Invalid JSON, or nesting deeper than ``MAX_JSON_DEPTH``, is ``InvalidFile``.
- CSV (comma) and TSV (tab): one line per record, its fields joined by `` | ``; blank records dropped.
- PDF (pypdf): each page's text, pages separated by a blank line; ``Extracted.pages`` holds where each
  page starts. A PDF encrypted with a password (an empty user password is tried), or one pypdf cannot
  parse, is ``InvalidFile``. Pages without a text layer (scans) give no text: there is no OCR.
- DOCX (python-docx): the body's paragraphs and tables in document order, a table row per line (cells
  joined by `` | ``, nested tables after their cell's text). Headers, footers, footnotes, comments, text
  boxes and content controls are not read. Before anything is parsed the archive's declared sizes
  are checked (at most ``MAX_DOCX_ENTRIES`` members and ``MAX_DOCX_UNPACKED_BYTES`` unpacked, which
  Python's ``zipfile`` then enforces while inflating): a zip bomb is ``InvalidFile`` at no cost.

Every text can be stored and encoded (``_storable``): a text file with a NUL character is
``InvalidFile``, as above; the NULs a parser returns (a PDF's unmapped glyphs) are dropped, since
PostgreSQL's ``text`` cannot hold them, and lone surrogates (JSON's ``\ud800`` escapes), which no
UTF-8 encodes, become U+FFFD.

Bounds: more than ``max_chars`` characters of text is ``InvalidFile``, never a silent truncation; the
readers stop as soon as they pass it (text files before decoding, from the byte count). PDF streams are
inflated within pypdf's own limits (75 MB per stream). Nothing bounds the CPU time of a hostile PDF:
extraction is synchronous CPU work that the caller runs in a worker thread, off the event loop, and
may abandon. The PDF and DOCX libraries are imported on first use, so a server that never reads one
does not load them (nor lxml, which python-docx parses with).

Errors name the file; their ``code`` (``unsupported_file``, ``invalid_file``) is what the vector store
file's ``last_error`` reports.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from ..errors import InvalidFile, UnsupportedFile

if TYPE_CHECKING:
    from docx.document import Document
    from docx.table import Table

MAX_JSON_DEPTH = 64
MAX_DOCX_ENTRIES = 10_000
MAX_DOCX_UNPACKED_BYTES = 128 * 1024 * 1024
CELL_SEPARATOR = " | "


@dataclass(frozen=True)
class Extracted:
    text: str
    pages: tuple[int, ...] = ()  # PDF only: the offset in ``text`` where each page's text starts


def extract_text(data: bytes, filename: str, mime_type: str | None, *, max_chars: int) -> Extracted:
    """The text of ``data``; ``UnsupportedFile`` or ``InvalidFile`` (naming ``filename``) otherwise."""
    reader = _reader_for(filename, mime_type)
    if reader is None:
        kind = f" ({mime_type})" if mime_type else ""
        raise UnsupportedFile(f"The file `{filename}`{kind} is not of a kind whose text can be read.")
    return reader(data, _Bound(filename, max_chars))


@dataclass(frozen=True)
class _Bound:
    filename: str
    max_chars: int

    def check(self, chars: int) -> None:
        if chars > self.max_chars:
            raise InvalidFile(
                f"The file `{self.filename}` has more than {self.max_chars} characters of text."
            )

    def invalid(self, reason: str) -> InvalidFile:
        return InvalidFile(f"The file `{self.filename}` {reason}.")


class _Lines:
    """Text put together piece by piece, storable, within the bound at every step."""

    def __init__(self, bound: _Bound, separator: str = "\n") -> None:
        self._bound = bound
        self._separator = separator
        self._parts: list[str] = []
        self._starts: list[int] = []
        self._chars = -len(separator)

    def add(self, part: str) -> None:
        part = _storable(part)
        self._chars += len(self._separator)
        self._starts.append(self._chars)
        self._parts.append(part)
        self._chars += len(part)
        self._bound.check(self._chars)

    def text(self) -> str:
        return self._separator.join(self._parts)

    def starts(self) -> tuple[int, ...]:
        return tuple(self._starts)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # a pair is one character in a Python string


def _storable(text: str) -> str:
    """``text`` without NUL characters, its lone surrogates U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text.replace("\x00", ""))


def _text(data: bytes, bound: _Bound) -> Extracted:
    return Extracted(_decoded(data, bound))


def _decoded(data: bytes, bound: _Bound) -> str:
    bound.check(len(data) // 4)  # UTF-8 spends at most four bytes on a character
    codec = next((codec for bom, codec in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise bound.invalid(
            f"is not {codec.removesuffix('-sig').upper()} text (undecodable bytes at offset {exc.start})"
        ) from None
    bound.check(len(text))
    if "\x00" in text:
        raise bound.invalid("holds NUL characters: it is not text")
    return text


# UTF-32's marks first: UTF-32-LE's begins with UTF-16-LE's
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _html(data: bytes, bound: _Bound) -> Extracted:
    parser = _VisibleText(bound)
    try:
        parser.feed(_decoded(data, bound))
        parser.close()
    except AssertionError as exc:  # html.parser's answer to a malformed ``<![…]>`` declaration
        raise bound.invalid(f"is not readable HTML ({exc})") from None
    return Extracted(parser.text())


_BLOCK_TAGS = (
    "address article aside blockquote body br caption dd details dialog div dl dt fieldset figcaption "
    "figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr html li main nav ol p pre section summary "
    "table tbody tfoot thead title tr ul"
)


class _VisibleText(HTMLParser):
    HIDDEN = frozenset({"script", "style", "template", "noscript"})
    BLOCKS = frozenset(_BLOCK_TAGS.split())
    CELLS = frozenset({"td", "th"})

    def __init__(self, bound: _Bound) -> None:
        super().__init__(convert_charrefs=True)
        self._lines = _Lines(bound)
        self._line: list[str] = []
        self._hidden = 0
        self._pre = 0
        self._cells = 0  # cells started in the current row

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self._hidden += 1
        elif tag in self.CELLS:
            if self._cells:
                self._line.append(CELL_SEPARATOR)
            self._cells += 1
        elif tag in self.BLOCKS:
            self._end_line()
            self._pre += tag == "pre"
            self._cells = 0 if tag == "tr" else self._cells

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCKS:  # ``<br/>``, ``<hr/>``: no content, no end tag to wait for
            self._end_line()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self.BLOCKS:
            self._end_line()
            self._pre = max(0, self._pre - (tag == "pre"))

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if self._pre:
            lines = data.split("\n")
            self._line.append(lines[0])
            for line in lines[1:]:
                self._end_line()
                self._line.append(line)
        else:
            self._line.append(data)

    def _end_line(self) -> None:
        joined = "".join(self._line)
        line = joined.rstrip() if self._pre else " ".join(joined.split())
        self._line = []
        if line or self._pre:
            self._lines.add(line)

    def text(self) -> str:
        self._end_line()
        return self._lines.text().strip("\n")


def _json(data: bytes, bound: _Bound) -> Extracted:
    try:
        value = json.loads(_decoded(data, bound))
    except json.JSONDecodeError as exc:
        raise bound.invalid(f"is not valid JSON ({exc})") from None
    except RecursionError:
        raise bound.invalid(f"nests JSON deeper than {MAX_JSON_DEPTH} levels") from None
    if _depth_over(value, MAX_JSON_DEPTH):
        raise bound.invalid(f"nests JSON deeper than {MAX_JSON_DEPTH} levels")
    text = _storable(json.dumps(value, indent=2, ensure_ascii=False))
    bound.check(len(text))
    return Extracted(text)


def _depth_over(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep (walked without recursion)."""
    level: list[Iterator[Any]] = [iter((value,))]
    while level:
        item = next(level[-1], level)
        if item is level:
            level.pop()
        elif isinstance(item, dict | list):
            if len(level) > limit:
                return True
            level.append(iter(item.values() if isinstance(item, dict) else item))
    return False


def _delimited(delimiter: str) -> Callable[[bytes, _Bound], Extracted]:
    def read(data: bytes, bound: _Bound) -> Extracted:
        lines = _Lines(bound)
        records = csv.reader(io.StringIO(_decoded(data, bound), newline=""), delimiter=delimiter)
        try:
            for record in records:
                line = CELL_SEPARATOR.join(field.strip() for field in record)
                if line.strip(CELL_SEPARATOR):
                    lines.add(line)
        except csv.Error as exc:  # a field over csv's 128 KiB limit
            raise bound.invalid(f"is not readable CSV (record {records.line_num}: {exc})") from None
        return Extracted(lines.text())

    return read


_CSV, _TSV = _delimited(","), _delimited("\t")


def _pdf(data: bytes, bound: _Bound) -> Extracted:
    from pypdf import PdfReader

    lines = _Lines(bound, separator="\n\n")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise bound.invalid("is an encrypted PDF (it needs a password)")
        for page in reader.pages:
            lines.add(page.extract_text())
    except InvalidFile:
        raise
    except Exception as exc:  # pypdf's own errors and whatever its parser trips on in a malformed file
        raise bound.invalid(f"is not a readable PDF ({type(exc).__name__}: {exc})") from None
    return Extracted(lines.text(), lines.starts())


def _docx(data: bytes, bound: _Bound) -> Extracted:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise bound.invalid("is not a DOCX file (not a zip archive)") from None
    unpacked = sum(member.file_size for member in members)
    if len(members) > MAX_DOCX_ENTRIES or unpacked > MAX_DOCX_UNPACKED_BYTES:
        raise bound.invalid(
            f"unpacks to {len(members)} members of {unpacked} bytes, over the bounds of "
            f"{MAX_DOCX_ENTRIES} members and {MAX_DOCX_UNPACKED_BYTES} bytes"
        )
    import docx

    lines = _Lines(bound)
    try:
        _blocks(docx.Document(io.BytesIO(data)), lines)
    except InvalidFile:
        raise
    except Exception as exc:  # python-docx's, lxml's and zipfile's errors on a malformed package
        raise bound.invalid(f"is not a readable DOCX file ({type(exc).__name__}: {exc})") from None
    return Extracted(lines.text())


def _blocks(document: Document, lines: _Lines) -> None:
    """The paragraphs and tables of a document's body, in order."""
    from docx.table import Table

    for block in document.iter_inner_content():
        if isinstance(block, Table):
            _table(block, lines)
        else:
            lines.add(block.text)


def _table(table: Table, lines: _Lines) -> None:
    """A line per row, then the tables nested in its cells."""
    for row in table.rows:
        cells, at, distinct = row.cells, 0, []
        while at < len(cells):  # a cell that spans n grid columns is listed n times
            distinct.append(cells[at])
            at += max(1, cells[at].grid_span)
        lines.add(CELL_SEPARATOR.join(" ".join(p.text for p in cell.paragraphs).strip() for cell in distinct))
        for cell in distinct:
            for nested in cell.tables:
                _table(nested, lines)


_TEXT_EXTENSIONS = (
    ".txt .text .log .md .markdown .rst .tex .c .h .cc .cpp .hpp .cs .css .go .java .js .mjs .ts .tsx .jsx "
    ".py .rb .php .sh .rs .kt .swift .sql .yaml .yml .toml .ini .cfg .xml .jsonl"
)
_EXTENSIONS: dict[str, Callable[[bytes, _Bound], Extracted]] = {
    **dict.fromkeys(_TEXT_EXTENSIONS.split(), _text),
    ".html": _html,
    ".htm": _html,
    ".xhtml": _html,
    ".json": _json,
    ".csv": _CSV,
    ".tsv": _TSV,
    ".pdf": _pdf,
    ".docx": _docx,
}
_MIME_TYPES: dict[str, Callable[[bytes, _Bound], Extracted]] = {
    "text/html": _html,
    "application/xhtml+xml": _html,
    "application/json": _json,
    "text/csv": _CSV,
    "text/tab-separated-values": _TSV,
    "application/pdf": _pdf,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": _docx,
    "application/xml": _text,
    "application/javascript": _text,
    "application/x-sh": _text,
}


def _reader_for(filename: str, mime_type: str | None) -> Callable[[bytes, _Bound], Extracted] | None:
    reader = _EXTENSIONS.get(PurePosixPath(filename).suffix.lower())
    if reader is not None:
        return reader
    essence = (mime_type or "").split(";", 1)[0].strip().lower()
    if essence in _MIME_TYPES:
        return _MIME_TYPES[essence]
    if essence.endswith("+json"):
        return _json
    if essence.startswith("text/") or essence.endswith("+xml"):
        return _text
    return None
