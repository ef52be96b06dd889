"""The one path policy: NFC first, then every rule; portable paths for what becomes a file on a disk;
client filenames sanitised to one portable segment."""

import unicodedata

import pytest

from cairn.core.errors import InvalidInput
from cairn.core.paths import (
    MAX_PATH_BYTES,
    MAX_SEGMENT_BYTES,
    sanitize_filename,
    validate_path,
    validate_portable_path,
)


@pytest.mark.parametrize(
    "path",
    [
        "docs",
        "docs/spec.pdf",
        "报告/2024 第一季度/数据.csv",
        "emoji/🪨🔥.png",
        ".hidden/.env",
        "a b/c d",
        "文件．txt",  # a fullwidth dot inside a name stays a name
        "C:/not-a-drive",  # ':' is an ordinary character on the server; the zip prefixes every name
        "x" * MAX_SEGMENT_BYTES,
    ],
)
def test_valid_paths_pass_unchanged(path: str) -> None:
    assert validate_path(path, param="path") == path
    assert validate_portable_path(path, param="path") == path


@pytest.mark.parametrize("path", ["x/.../y", "-_.x/..a/b..", "trailing.", "trailing ", "k" * 1024, "a/…"])
def test_keys_need_not_be_portable_names(path: str) -> None:
    assert validate_path(path, param="key") == path
    with pytest.raises(InvalidInput):
        validate_portable_path(path, param="dir")


def test_paths_are_nfc_normalised_before_validation() -> None:
    decomposed = "cafe\u0301/nai\u0308ve.txt"
    assert validate_path(decomposed, param="path") == "café/naïve.txt"
    assert validate_path(unicodedata.normalize("NFD", "한국어/파일"), param="path") == "한국어/파일"


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("//server/share", "absolute"),
        ("a//b", "empty"),
        ("a/", "empty"),
        (".", "'.'"),
        ("..", "'..'"),
        ("a/../b", "'..'"),
        ("a/./b", "'.'"),
        ("../../etc/passwd", "'..'"),
        ("a\\b", "backslash"),
        ("..\\..\\x", "backslash"),
        ("a\x00b", "U+0000"),
        ("a\nb", "U+000A"),
        ("a\x7fb", "U+007F"),
        ("a\x85b", "U+0085"),
        ("bad\ufffd", "U+FFFD"),
        ("evil\u202etxt.exe", "U+202E"),
        ("\ud800x", "U+D800"),
        ("．．/x", "stands for '..'"),  # fullwidth full stops: NFKC makes them '..'
        ("a／b", "separator"),  # fullwidth solidus
        ("a＼b", "separator"),  # fullwidth reverse solidus
        ("a﹨b", "separator"),  # small reverse solidus
        ("℀", "separator"),  # NFKC: "a/c"
        ("‥", "stands for '..'"),  # two dot leader: NFKC ".."
        ("trailing.", "dot or a space"),
        ("trailing ", "dot or a space"),
        ("dir./x", "dot or a space"),
        ("x" * (MAX_SEGMENT_BYTES + 1), "segment"),
        ("数" * 86, "segment"),  # 258 bytes in 86 characters
        ("/".join(["abcdefgh"] * 114), "path"),  # 1025 bytes
    ],
)
def test_invalid_paths_are_refused_with_the_reason(path: str, why: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_portable_path(path, param="dir")
    assert caught.value.param == "dir"
    assert why in caught.value.message, caught.value.message
    if why not in ("dot or a space", "segment"):  # what every key must obey, portable or not
        with pytest.raises(InvalidInput):
            validate_path(path, param="key")


def test_path_length_bound_is_in_bytes() -> None:
    fits = "/".join(["a" * 100] * 10) + "/" + "b" * (MAX_PATH_BYTES - 1010)
    assert len(fits.encode()) == MAX_PATH_BYTES
    assert validate_portable_path(fits, param="path") == fits


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\evil.exe", "evil.exe"),
        ("..／..／etc／passwd", "passwd"),  # look-alike separators split too
        ("a＼b.txt", "b.txt"),
        ("a\r\nb\x00.txt", "ab.txt"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
        ("  spaced.txt ", "spaced.txt"),
        ("name. . .", "name"),
        ("name．", "name"),
        ("cafe\u0301.txt", "café.txt"),
        ("数据.csv", "数据.csv"),
        ("🪨.png", "🪨.png"),
        (".env", ".env"),
    ],
)
def test_sanitize_filename(raw: str, clean: str) -> None:
    assert sanitize_filename(raw) == clean
    assert validate_portable_path(clean, param="filename") == clean  # always one portable segment


@pytest.mark.parametrize(
    "raw", ["", "/", "a/..", ".", "..", "...", "‥", "．．", "\x00\x01", "dir/", " ", "bad\ufffd"]
)
def test_sanitize_filename_refuses_what_is_not_a_name(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        sanitize_filename(raw)
    assert caught.value.param == "filename"


def test_long_filenames_are_cut_on_a_character_boundary_keeping_the_extension() -> None:
    name = sanitize_filename("数" * 200 + ".tar.gz")
    assert len(name.encode()) <= MAX_SEGMENT_BYTES
    assert name.endswith(".gz") and name.startswith("数")
    name.encode().decode()
    cut_before_a_dot = sanitize_filename("a" * 252 + ". b" + ".averyveryverylongextension")
    assert len(cut_before_a_dot.encode()) <= MAX_SEGMENT_BYTES
    assert validate_portable_path(cut_before_a_dot, param="filename") == cut_before_a_dot
