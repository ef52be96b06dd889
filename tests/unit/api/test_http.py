import pytest

from cairn.api.http import _parse_range, _Unsatisfiable, content_disposition


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 10)),
        ("bytes=5-", (5, 100)),
        ("bytes=-10", (90, 100)),
        ("bytes=-1000", (0, 100)),
        ("bytes=90-1000", (90, 100)),
        ("bytes=0-0", (0, 1)),
        ("items=0-9", None),
        ("bytes=0-9,20-29", None),
        ("bytes=9-0", None),
        ("bytes=-", None),
        ("bytes=a-b", None),
    ],
)
def test_parse_range(header: str, expected: tuple[int, int] | None) -> None:
    assert _parse_range(header, 100) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=100-", 100),
        ("bytes=200-300", 100),
        ("bytes=-0", 100),
        ("bytes=0-", 0),
        ("bytes=0-0", 0),
        ("bytes=-0", 0),
        ("bytes=-1", 0),
        ("bytes=-5", 0),
    ],
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(_Unsatisfiable):
        _parse_range(header, size)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("plain.txt", 'attachment; filename="plain.txt"'),
        ('q"uote.txt', "attachment; filename=\"q_uote.txt\"; filename*=UTF-8''q%22uote.txt"),
        ("数据.csv", "attachment; filename=\".csv\"; filename*=UTF-8''%E6%95%B0%E6%8D%AE.csv"),
        ("résumé.pdf", "attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"),
        (
            "a\r\nSet-Cookie: x",
            "attachment; filename=\"a__Set-Cookie: x\"; filename*=UTF-8''a%0D%0ASet-Cookie%3A%20x",
        ),
    ],
)
def test_content_disposition(name: str, expected: str) -> None:
    value = content_disposition(name)
    assert value == expected
    assert "\r" not in value and "\n" not in value
