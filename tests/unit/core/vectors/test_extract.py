"""A file's text from its bytes: each kind read (its fixtures built in the tests: PDFs with pypdf's
writer, DOCX with python-docx), which reader a name and a type pick, the bound on the text, and hostile files
(zip bombs, encrypted and truncated PDFs, binary bytes named .txt, deep JSON)."""

from __future__ import annotations

import io
import json
import struct
import zipfile

import docx
import pytest
from _documents import pdf

from cairn.core.errors import InvalidFile, UnsupportedFile
from cairn.core.vectors.extract import MAX_DOCX_UNPACKED_BYTES, MAX_JSON_DEPTH, Extracted, extract_text

LIMIT = 10_000


def text_of(data: bytes, name: str, mime: str | None = None, limit: int = LIMIT) -> str:
    return extract_text(data, name, mime, max_chars=limit).text


def invalid(data: bytes, name: str, mime: str | None = None, limit: int = LIMIT) -> str:
    with pytest.raises(InvalidFile) as caught:
        extract_text(data, name, mime, max_chars=limit)
    assert caught.value.code == "invalid_file"
    assert f"`{name}`" in caught.value.message
    return caught.value.message


def word_document() -> bytes:
    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Revenue grew in every region.")
    table = document.add_table(rows=2, cols=3)
    for column, label in enumerate(("Region", "Q1", "Q2")):
        table.cell(0, column).text = label
    table.cell(1, 0).text = "North"
    table.cell(1, 1).merge(table.cell(1, 2)).text = "flat"
    table.cell(0, 0).add_table(rows=1, cols=2).cell(0, 1).text = "nested"
    document.add_paragraph("Outlook: steady.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_plain_text_and_markdown_are_as_they_are() -> None:
    assert text_of("héllo\r\n  wörld 😀\n".encode(), "notes.txt") == "héllo\r\n  wörld 😀\n"
    markdown = "# Title\n\n- *one*\n- `two`\n"
    assert text_of(markdown.encode(), "README.md", "text/markdown") == markdown
    assert text_of(b"print('hi')\n", "tool.py", "application/octet-stream") == "print('hi')\n"


def test_byte_order_marks_are_read_and_dropped() -> None:
    for encoding in ("utf-8-sig", "utf-16", "utf-32"):
        assert text_of("ça va? 文字".encode(encoding), "bom.txt") == "ça va? 文字"


def test_bytes_that_are_not_utf8_text_are_invalid() -> None:
    assert "not UTF-8 text (undecodable bytes at offset 5)" in invalid(b"caf\xc3\xa9\xff", "x.txt")
    assert "not UTF-8" in invalid(bytes(range(128, 256)) * 4, "garbage.txt")
    assert "NUL" in invalid(b"ELF\x00\x01\x02", "binary.txt")


def test_html_gives_its_visible_text_a_line_per_block() -> None:
    page = b"""<!doctype html><html><head><title>Guide</title>
    <style>p { color: red }</style><script>var hidden = "secret";</script></head>
    <body><nav>Home</nav><h1>Install   the &amp; <b>server</b></h1>
    <p>Run it\n   twice.<br>Then stop.</p><template>not shown</template><noscript>enable js</noscript>
    <pre>  indented\n    code</pre>
    <table><tr><th>Name</th><th>Size</th></tr><tr><td>a.txt</td><td>3</td></tr></table>
    <ul><li>one</li><li>two</li></ul><p>caf&eacute; &#x1F600;</body></html>"""
    assert text_of(page, "guide.html") == (
        "Guide\nHome\nInstall the & server\nRun it twice.\nThen stop.\n  indented\n    code\n"
        "Name | Size\na.txt | 3\none\ntwo\ncafé 😀"
    )


def test_html_that_the_parser_refuses_is_invalid() -> None:
    assert "not readable HTML" in invalid(b"<p>a</p><![unknown stuff]>", "odd.htm")


def test_json_is_written_back_indented_with_its_characters() -> None:
    document = {"title": "Café", "tags": ["a", "b"], "n": 1}
    assert text_of(json.dumps(document).encode(), "data.json") == json.dumps(
        document, indent=2, ensure_ascii=False
    )
    assert "not valid JSON" in invalid(b'{"a": }', "data.json")


def test_a_lone_surrogate_escape_in_json_becomes_the_replacement_character() -> None:
    text = text_of(b'{"a": "x\\ud800y", "b": "\\ud83d\\ude00"}', "odd.json")
    assert text == '{\n  "a": "x\ufffdy",\n  "b": "\U0001f600"\n}'
    text.encode()


def test_json_nested_beyond_the_limit_is_invalid() -> None:
    deep = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert text_of(deep, "ok.json").count("[") == MAX_JSON_DEPTH
    over = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    assert f"deeper than {MAX_JSON_DEPTH}" in invalid(over, "deep.json")
    assert f"deeper than {MAX_JSON_DEPTH}" in invalid(
        b"[" * 100_000 + b"]" * 100_000, "deep.json", limit=10**6
    )
    assert f"deeper than {MAX_JSON_DEPTH}" in invalid(b'{"a":' * 70 + b"1" + b"}" * 70, "deep.json")


def test_csv_and_tsv_give_a_line_per_record() -> None:
    table = b'name,notes\r\n"Smith, J","said ""hi""\nthen left"\r\n\r\n,\r\nlast,row\r\n'
    assert text_of(table, "people.csv") == 'name | notes\nSmith, J | said "hi"\nthen left\nlast | row'
    assert text_of(b"a\tb\n1\t2\n", "t.tsv") == "a | b\n1 | 2"
    assert "not readable CSV (record 1" in invalid(b'"' + b"x" * 200_000 + b'"', "huge.csv", limit=10**6)


def test_pdf_pages_are_read_with_where_each_starts() -> None:
    extracted = extract_text(pdf("First page text", "Second page"), "doc.pdf", None, max_chars=LIMIT)
    assert extracted == Extracted("First page text\n\nSecond page", (0, 17))
    assert extract_text(pdf("by type"), "scan", "application/pdf", max_chars=LIMIT).text == "by type"


def test_nul_characters_a_pdf_holds_are_dropped_and_pages_start_where_they_do() -> None:
    extracted = extract_text(pdf("\x00First\x00 page", "Second"), "doc.pdf", None, max_chars=LIMIT)
    assert extracted == Extracted("First page\n\nSecond", (0, 12))


def test_a_pdf_encrypted_with_an_empty_password_is_read_one_with_a_password_is_invalid() -> None:
    assert text_of(pdf("open to all", password=""), "open.pdf") == "open to all"
    assert "encrypted PDF" in invalid(pdf("secret", password="hunter2"), "locked.pdf")


def test_broken_pdfs_are_invalid() -> None:
    whole = pdf("some text")
    assert "not a readable PDF" in invalid(whole[: len(whole) // 3], "truncated.pdf")
    assert "not a readable PDF" in invalid(b"%PDF-1.7\n" + bytes(range(256)) * 8, "garbage.pdf")
    assert "not a readable PDF" in invalid(b"", "empty.pdf")


def test_docx_gives_paragraphs_and_table_rows_in_order() -> None:
    assert text_of(word_document(), "report.docx") == (
        "Quarterly report\nRevenue grew in every region.\nRegion | Q1 | Q2\n | nested\nNorth | flat\n"
        "Outlook: steady."
    )


def test_a_docx_that_unpacks_past_the_bound_is_refused_before_it_is_read() -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"\0" * (1 << 20)
            for _ in range(MAX_DOCX_UNPACKED_BYTES // len(block) + 1):
                member.write(block)
    assert len(bomb.getvalue()) < 1 << 20
    assert "over the bounds" in invalid(bomb.getvalue(), "bomb.docx")


def test_a_docx_whose_sizes_lie_is_invalid() -> None:
    data = bytearray(word_document())
    directory = data.index(b"PK\x01\x02")  # the first central directory entry: declare 10 bytes
    struct.pack_into("<I", data, directory + 24, 10)
    assert "not a readable DOCX" in invalid(bytes(data), "lying.docx")


def test_other_broken_docx_files_are_invalid() -> None:
    assert "not a zip archive" in invalid(b"PK\x03\x04 not really", "x.docx")
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("hello.txt", "hi")
    assert "not a readable DOCX" in invalid(empty.getvalue(), "x.docx")


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"x" * 101, "a.txt"),
        (b"<p>" + b"word " * 30 + b"</p>", "a.html"),
        (b"[" + b"1," * 40 + b"1]", "a.json"),
        (b"a,b\n" * 30, "a.csv"),
        (pdf("x" * 60, "y" * 60), "a.pdf"),
    ],
)
def test_more_text_than_the_bound_is_invalid_not_truncated(data: bytes, name: str) -> None:
    assert "more than 100 characters of text" in invalid(data, name, limit=100)


def test_a_long_docx_stops_at_the_bound() -> None:
    document = docx.Document()
    for _ in range(30):
        document.add_paragraph("a paragraph of text")
    out = io.BytesIO()
    document.save(out)
    assert "more than 100 characters" in invalid(out.getvalue(), "long.docx", limit=100)


@pytest.mark.parametrize(
    ("name", "mime", "text"),
    [
        ("page.HTM", None, "hi"),  # the extension decides, in any case
        ("page.txt", "text/html", "<p>hi</p>"),
        ("page", "text/html; charset=utf-8", "hi"),
        ("feed", "application/ld+json", '"<p>hi</p>"'),
        ("notes", "text/x-rst", "<p>hi</p>"),
        ("config", "application/xml", "<p>hi</p>"),
    ],
)
def test_the_extension_picks_the_reader_then_the_mime_type(name: str, mime: str | None, text: str) -> None:
    data = b'"<p>hi</p>"' if "json" in (mime or "") else b"<p>hi</p>"
    assert text_of(data, name, mime) == text


@pytest.mark.parametrize(("name", "mime"), [("photo.png", "image/png"), ("archive", None), ("old.doc", None)])
def test_other_kinds_are_unsupported(name: str, mime: str | None) -> None:
    with pytest.raises(UnsupportedFile) as caught:
        extract_text(b"\x89PNG", name, mime, max_chars=LIMIT)
    assert caught.value.code == "unsupported_file"
    assert f"`{name}`" in caught.value.message
