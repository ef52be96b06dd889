"""The error tree drawn in ``core/errors.py``'s docstring is the hierarchy the module defines."""

from __future__ import annotations

import inspect
import re

from cairn.core import errors


def drawn_tree() -> dict[str, str | None]:
    """Each class named in the docstring's tree, with the class drawn as its parent."""
    parents: dict[str, str | None] = {}
    path: list[str] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.fullmatch(r"    ((?:[│ ]   )*)([├└]── )?([A-Z]\w*)\b.*", line)
        if match is None:
            continue
        depth = len(match[1]) // 4 + (1 if match[2] else 0)
        del path[depth:]
        parents[match[3]] = path[-1] if path else None
        path.append(match[3])
    return parents


def test_the_docstring_draws_every_error_class_under_its_base() -> None:
    defined = {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, errors.CairnError) and cls.__module__ == errors.__name__
    }
    drawn = drawn_tree()
    assert set(drawn) == set(defined)
    for name, cls in defined.items():
        base = cls.__bases__[0]
        assert drawn[name] == (None if base is Exception else base.__name__), name
