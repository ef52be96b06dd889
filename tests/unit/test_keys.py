import pytest

from cairn.core.errors import InvalidInput
from cairn.core.keys import MAX_FILENAME_BYTES, sanitize_filename


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\evil.exe", "evil.exe"),
        ("a\r\nb\x00.txt", "ab.txt"),
        ("  spaced.txt ", "spaced.txt"),
        ("cafe\u0301.txt", "café.txt"),  # NFC
        ("数据.csv", "数据.csv"),
        ("🪨.png", "🪨.png"),
    ],
)
def test_sanitize_filename(raw: str, clean: str) -> None:
    assert sanitize_filename(raw) == clean


@pytest.mark.parametrize("raw", ["", "/", "a/..", ".", "\x00\x01", "bad\ufffd.txt", "dir/"])
def test_sanitize_filename_refuses_what_is_not_a_name(raw: str) -> None:
    with pytest.raises(InvalidInput):
        sanitize_filename(raw)


def test_long_filenames_are_cut_on_a_character_boundary_keeping_the_extension() -> None:
    name = sanitize_filename("数" * 200 + ".tar.gz")
    assert len(name.encode()) <= MAX_FILENAME_BYTES
    assert name.endswith(".gz") and name.startswith("数")
    name.encode().decode()  # still valid UTF-8
