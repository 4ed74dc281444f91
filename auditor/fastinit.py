"""Fast constructors for frozen, slotted dataclasses made once per log line.

Code generation, as :mod:`dataclasses` itself does it: :func:`slot_init` swaps the
generated ``__init__`` for one that fills each slot through its descriptor, and
:func:`slot_maker` builds a positional factory for the hottest call sites. The
records stay frozen; the tests compare every fast path with the general one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

_C = TypeVar("_C", bound=type)
_T = TypeVar("_T")


def slot_init(cls: _C) -> _C:
    """Give a frozen, slotted dataclass an ``__init__`` that fills its slots directly.

    The ``__init__`` that dataclasses write for frozen classes calls
    ``object.__setattr__`` once per field; setting each slot through its
    descriptor does the same work in about half the time, which matters for the
    records made once per log line. Same signature, defaults and default
    factories; instances stay frozen (``__setattr__`` is untouched).
    """
    generated = cls.__dict__["__init__"]
    fields = dataclasses.fields(cls)
    names = generated.__code__.co_varnames[1 : generated.__code__.co_argcount]
    if (
        "__slots__" not in cls.__dict__
        or hasattr(cls, "__post_init__")
        or names != tuple(f.name for f in fields)
        or generated.__code__.co_kwonlyargcount
    ):
        return cls  # shapes not needed so far (InitVar, kw_only...): keep the generated one
    ns: dict[str, Any] = {"_FACTORY": _FACTORY}
    params: list[str] = []
    body: list[str] = []
    for i, f in enumerate(fields):
        ns[f"_set{i}"] = getattr(cls, f.name).__set__
        if f.default is not dataclasses.MISSING:
            ns[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
        elif f.default_factory is not dataclasses.MISSING:
            ns[f"_f{i}"] = f.default_factory
            params.append(f"{f.name}=_FACTORY")
            body.append(f"    if {f.name} is _FACTORY:\n        {f.name} = _f{i}()")
        else:
            params.append(f.name)
        body.append(f"    _set{i}(self, {f.name})")
    exec(f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body), ns)
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = dict(generated.__annotations__)
    type.__setattr__(cls, "__init__", init)
    return cls


def slot_maker(cls: type[_T], *names: str) -> Callable[..., _T]:
    """A function taking just ``names``, positionally, that makes a ``cls`` record.

    The other fields get their defaults. For the few places that make a record
    per log line: positional arguments cost markedly less than keywords, and
    naming the arguments once here keeps the call sites checkable.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    unknown = set(names) - {f.name for f in fields}
    if "__slots__" not in cls.__dict__:
        raise TypeError(f"slot_maker: {cls.__qualname__} has no slots")
    if unknown or len(set(names)) != len(names):
        raise TypeError(f"slot_maker: bad field names {sorted(unknown) or names}")
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = ["    self = _new(_cls)"]
    for i, f in enumerate(fields):
        ns[f"_set{i}"] = getattr(cls, f.name).__set__
        if f.name in names:
            value = f.name
        elif f.default is not dataclasses.MISSING:
            ns[f"_d{i}"], value = f.default, f"_d{i}"
        else:
            ns[f"_f{i}"], value = f.default_factory, f"_f{i}()"
        body.append(f"    _set{i}(self, {value})")
    exec(f"def make({', '.join(names)}):\n" + "\n".join(body) + "\n    return self", ns)
    make: Callable[..., _T] = ns["make"]
    make.__qualname__ = f"{cls.__qualname__}.make"
    return make


class _Factory:
    """The "use the default factory" marker of the fast ``__init__`` (shown as dataclasses do)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY: Any = _Factory()
