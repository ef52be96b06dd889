import unicodedata

import pytest

from cairn.core.errors import InvalidInput
from cairn.core.keys import (
    MAX_FILENAME_BYTES,
    prefix_end,
    sanitize_filename,
    validate_bucket,
    validate_key,
    validate_object_key,
)
from cairn.core.objects import new_object_id


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


@pytest.mark.parametrize(
    "key", ["runs/42/out.csv", "a", "x/.hidden", "v1.2/model_final-b.bin", "x/.../y", "b.."]
)
def test_artifact_keys_are_ascii_paths(key: str) -> None:
    assert validate_key(key) == key
    assert validate_object_key(key) == key


@pytest.mark.parametrize("key", ["数据/x.csv", "a b", "café", "a/../b", "a/", "a//b", "a\\b"])
def test_artifact_keys_refuse_what_object_keys_may_or_may_not_allow(key: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_key(key)
    assert caught.value.param == "key"


@pytest.mark.parametrize("key", ["数据/x.csv", "a b/c d.txt", "cafe\u0301"])
def test_object_keys_take_any_key_the_path_policy_allows(key: str) -> None:
    assert validate_object_key(key) == unicodedata.normalize("NFC", key)


def test_reserved_first_segments_are_refused_only_where_reserved() -> None:
    with pytest.raises(InvalidInput):
        validate_key("sessions/x", reserved=("sessions",))
    assert validate_key("sessions-x/y", reserved=("sessions",)) == "sessions-x/y"


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        ("", None),
        ("a/", "a0"),
        ("docs/数据/", "docs/数据0"),
        ("z\U0010ffff", "{"),
        ("\U0010ffff", None),
        ("x\ud7ff", "x\ue000"),  # the next character skips the surrogates
    ],
)
def test_prefix_end(prefix: str, end: str | None) -> None:
    assert prefix_end(prefix) == end


def test_prefix_end_bounds_exactly_the_keys_under_the_prefix() -> None:
    keys = ["a", "a/", "a/b", "a/\U0010ffff", "a/数", "a0", "a.", "a/\x7f", "a/\ue000", "b"]
    end = prefix_end("a/")
    assert end is not None
    assert [k for k in sorted(keys) if "a/" <= k < end] == [k for k in sorted(keys) if k.startswith("a/")]


@pytest.mark.parametrize("name", ["files", "File-x", "file_x", "filex", "a" * 64])
def test_bucket_names_may_start_with_anything_but_what_file_ids_start_with(name: str) -> None:
    assert validate_bucket(name) == name


def test_no_bucket_name_looks_like_a_file_id() -> None:
    for name in (new_object_id(0), "file-", "file-x"):
        with pytest.raises(InvalidInput):
            validate_bucket(name)
