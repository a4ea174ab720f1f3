"""One registry mechanism for the things a config picks by name (heads, adapters, losses, strategies, data
sources). Objects with a Python class of their own (optimisers, schedulers, callbacks) are built by
``hydra.utils.instantiate`` from their ``_target_`` instead."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from landmark_lab.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> class (or factory) for one kind of thing; ``key`` is the config key that names it."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind, self.key = kind, key
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@HEADS.register("regression")``."""

        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        """The entry called ``name``, or a :class:`ConfigError` listing the valid names."""
        if name not in self._items:
            close = difflib.get_close_matches(str(name), list(self._items), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{self.key}={name!r} is not valid; use one of {list(self._items)}.{hint}")
        return self._items[name]

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``get(name)(*args, **kwargs)``."""
        return self.get(name)(*args, **kwargs)  # type: ignore[operator]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __len__(self) -> int:
        return len(self._items)
