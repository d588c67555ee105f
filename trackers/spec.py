"""``MODULE:ATTR`` specs: the one way every command line of the project names user code (detectors, motion sources,
detector factories for training)."""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from typing import Any

__all__ = ["resolve_callable"]


def resolve_callable(spec: str, argument: str, expected: str = "a callable") -> Callable[..., Any]:
    """Import ``MODULE:ATTR`` (dots allowed in ATTR) and return the attribute, which must be callable.

    Args:
        spec: ``"package.module:name"`` or ``"package.module:Class.method"``.
        argument: the option or argument name the errors start with (e.g. ``"--detector"``).
        expected: what the callable should be, for the not-callable error.

    Returns:
        The callable.

    Raises:
        ValueError: ``spec`` is not ``MODULE:ATTR``, the module cannot be imported, the attribute is missing, or it
            is not callable; the message names ``argument`` and the value.

    Example:
        >>> import math
        >>> resolve_callable("math:sqrt", "--f") is math.sqrt
        True
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{argument}: expected MODULE:ATTR (e.g. my_module:function), got {spec!r}")
    try:
        obj = pkgutil.resolve_name(spec)
    except ImportError as err:
        raise ValueError(f"{argument}: cannot import module {module_name!r} ({err})") from None
    except AttributeError:
        raise ValueError(f"{argument}: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise ValueError(f"{argument}: {spec} is not callable (expected {expected})")
    return obj  # type: ignore[no-any-return]
