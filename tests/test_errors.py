"""Every ``SyndicationError`` crosses a process boundary intact: parse workers raise them and
the main process unpickles them (one that did not broke the parse pool for good).

The subclasses are discovered, not listed, so a new one is covered the day it is written:
each constructor parameter gets a sample value by its annotation (a new kind of parameter
fails here until it gets one)."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
from datetime import UTC, datetime
from typing import Any

import pytest

import syndication
from syndication.errors import FetchError, ParseError, SyndicationError


def _import_everything() -> None:
    """Import every module of the package, so subclasses defined outside errors.py count too."""
    for module in pkgutil.walk_packages(syndication.__path__, "syndication."):
        if ".migrations" not in module.name and module.name != "syndication.__main__":
            importlib.import_module(module.name)


def _subclasses(cls: type[SyndicationError]) -> list[type[SyndicationError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


_import_everything()
ERRORS: list[type[SyndicationError]] = [SyndicationError, *_subclasses(SyndicationError)]


def _sample(annotation: str, name: str) -> Any:
    """A value for a parameter, distinct per parameter name so that a swapped field shows."""
    optional = annotation.removesuffix(" | None")
    if optional == "str":
        return f"giá trị của {name}"
    if optional == "int":
        return 400 + len(name)
    if optional == "datetime":
        return datetime(2026, 11, 27, 1, 30, len(name), tzinfo=UTC)
    if optional == "list[str]":
        return [f"{name}: vấn đề một", f"{name}: vấn đề hai"]
    if optional == "tuple[RowProblem, ...]":
        from syndication.directory import RowProblem

        return (RowProblem(source="subscribers/branches.csv", line=3, column=name, message="sai"),)
    pytest.fail(f"no sample value for a parameter {name}: {annotation}; add one to _sample")


def _instance(cls: type[SyndicationError]) -> SyndicationError:
    """``cls`` made with a value for every parameter, optional ones included."""
    if cls.__init__ is SyndicationError.__init__:
        return cls("thông điệp của lỗi")  # the constructor of Exception: a message
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in inspect.signature(cls).parameters.values():
        value = _sample(str(param.annotation), param.name)
        if param.kind is param.KEYWORD_ONLY:
            kwargs[param.name] = value
        else:
            args.append(value)
    return cls(*args, **kwargs)


def test_every_error_class_is_covered() -> None:
    # The discovery works: the tree's known branches and one defined outside errors.py.
    names = {cls.__name__ for cls in ERRORS}
    assert {"ConfigError", "StoreError", "SourceError", "FetchError", "BlockedAddressError"} <= names
    assert {"ParseError", "TransportError", "DirectoryError"} <= names


@pytest.mark.parametrize("cls", ERRORS, ids=[cls.__name__ for cls in ERRORS])
def test_every_error_survives_pickling_with_its_fields(cls: type[SyndicationError]) -> None:
    error = _instance(cls)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert copy.args == error.args
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_a_parse_error_keeps_its_url_and_source() -> None:
    error = ParseError("not a feed", url="https://portal.example.vn/rss", source_id="tin")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.url, copy.source_id, str(copy)) == ("https://portal.example.vn/rss", "tin", "not a feed")
    fetch = pickle.loads(pickle.dumps(FetchError("HTTP 503", url="https://x.vn/", status=503)))
    assert (fetch.url, fetch.status, fetch.retry_after) == ("https://x.vn/", 503, None)
