"""The config machinery: fields with a help text and allowed values (``opt``), their validation
(``validate_fields``), and building, copying and dumping a config (``Params``).

Every experiment's config is a frozen dataclass of ``opt`` fields that subclasses ``Params`` and calls
``validate_fields`` in ``__post_init__``. The same metadata drives validation, the CLI's flags (``cli.py``)
and the notebooks' parameter check, so there is one list of options.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import typing
from dataclasses import field
from typing import Any


def opt(default: Any, help: str, *, choices: tuple | None = None, min: float | None = None,
        max: float | None = None) -> Any:
    """A dataclass field with its help text and allowed values (read by validation and the CLI).

    A dict or list default is copied for each instance (dataclasses forbid shared mutable defaults).
    """
    metadata = {"help": help, "choices": choices, "min": min, "max": max}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def field_default(f: dataclasses.Field) -> Any:
    """A field's default value, whether given directly or by a factory."""
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def written(value: Any) -> str:
    """A value as a help text writes it: 100 (not 100.0), 0.1, 1e-4 (not 0.0001), voc."""
    if isinstance(value, float) and 0 < abs(value) < 1e-3:
        mantissa, exponent = f"{value:e}".split("e")  # '1.000000e-04'
        return f"{float(mantissa):g}e{int(exponent)}"
    return f"{value:g}" if isinstance(value, float) else str(value)


class Params:
    """Shared by every config dataclass: build from a flat dict, copy with changes, dump as a dict."""

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Any:
        """Build from a flat dict (notebook parameters, JSON). Unknown keys are an error, not ignored."""
        if not isinstance(params, dict):
            raise ValueError(f"parameters for {cls.__name__} must be a dict of field values, got {type(params).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            hints = {k: difflib.get_close_matches(k, names, n=1) for k in unknown}
            detail = "; ".join(f"{k!r} (did you mean {v[0]!r}?)" if v else repr(k) for k, v in hints.items())
            raise ValueError(f"unknown parameter(s) for {cls.__name__}: {detail}. Allowed: {sorted(names)}")
        return cls(**params)

    @classmethod
    def from_namespace(cls, namespace: dict[str, Any]) -> Any:
        """Build from a notebook's variables: the parameters cell defines one variable per field."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in namespace]
        if missing:
            raise ValueError(f"the notebook's parameters cell lacks {missing} for {cls.__name__}")
        return cls.from_params({n: namespace[n] for n in names})

    def to_dict(self) -> dict[str, Any]:
        return {"method": getattr(self, "method", type(self).__name__), **dataclasses.asdict(self)}

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def validate_fields(cfg: Any) -> None:
    """Check every field's type, choices and range. Raises ValueError naming field, value and what is allowed."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        expected = hints[f.name]
        if f.default is None and value is None:
            continue  # checked by the class itself
        ok = (isinstance(value, bool) if expected is bool
              else isinstance(value, (int, float)) and not isinstance(value, bool) if expected is float
              else isinstance(value, int) and not isinstance(value, bool) if expected is int
              else isinstance(value, expected))
        if not ok:
            raise ValueError(f"{f.name}: expected {expected.__name__}, got {value!r} ({type(value).__name__})")
        if expected is float and not math.isfinite(value):  # NaN would pass every range check below
            raise ValueError(f"{f.name}: {value!r} is not allowed; give a finite number")
        meta = f.metadata
        if meta.get("choices") and value not in meta["choices"]:
            raise ValueError(f"{f.name}: {value!r} is not allowed; choose one of {list(meta['choices'])}")
        if meta.get("min") is not None and value < meta["min"]:
            raise ValueError(f"{f.name}: {value!r} is below the minimum {meta['min']}")
        if meta.get("max") is not None and value > meta["max"]:
            raise ValueError(f"{f.name}: {value!r} is above the maximum {meta['max']}")
