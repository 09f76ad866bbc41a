"""Small checks shared by the importers; each raises FormatError naming the source and the item."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from convmem.errors import FormatError, InputError

T = TypeVar("T")


def field(obj: Any, key: str, kind: type | tuple[type, ...], *, source: str, item: Any, required: bool = True):
    if not isinstance(obj, dict):
        raise FormatError(f"expected an object, got {type(obj).__name__}", source=source, item=item)
    if key not in obj or obj[key] is None:
        if required:
            raise FormatError(f"missing field {key!r}", source=source, item=item)
        return None
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise FormatError(f"field {key!r} must be {names}, got {type(value).__name__}", source=source, item=item)
    return value


def build(make: Callable[[], T], *, source: str, item: Any) -> T:
    """Run a constructor that validates (Session, parse_time) and re-raise its InputError with the location."""
    try:
        return make()
    except FormatError:
        raise
    except InputError as exc:
        raise FormatError(str(exc), source=source, item=item) from exc


def as_list(data: Any, *, source: str) -> list:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        return [data]
    raise FormatError(f"expected an object or a list of objects, got {type(data).__name__}", source=source)
