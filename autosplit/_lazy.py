"""Public names imported on first use (PEP 562), for packages whose ``__init__`` should stay cheap: every
DAG script imports ``autosplit``, and importing polars, scipy or scikit-learn costs it 0.1-0.7 s."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, names: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``names`` maps each lazy name to the module defining it;
    the value is imported on first access and stored in ``namespace`` (the package's ``globals()``)."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
