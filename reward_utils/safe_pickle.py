"""Decode pickled reward-server answers without letting the server run code in the trainer.

The upstream reward servers answer with ``pickle.dumps(dict)``; ``pickle.loads`` on that would execute any
callable the server names. This unpickler resolves no global except a few harmless constructors, so only
plain containers (dict, list, tuple, set), str/bytes, bools, None and numbers (including numpy numeric
scalars) load. Nothing a pickle builds may be larger than the answer's byte bound allows: ``bytearray(n)``
(a few bytes asking for gigabytes) is refused, and the decoded value is checked against
:class:`~reward_utils.answer_limits.ResponseLimits` (nesting depth, element count).
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from reward_utils.answer_limits import AnswerTooLarge, ResponseLimits, check_plain_data

_SAFE_BUILTINS = {"set", "frozenset", "complex"}
_SAFE_COLLECTIONS = {"OrderedDict"}
_NUMPY_MODULES = {"numpy.core.multiarray", "numpy._core.multiarray"}
_NUMERIC_KINDS = set("biufc")


class UnsafePickleError(pickle.UnpicklingError):
    """The payload asked for a global outside the allow-list."""


def _numpy_dtype(*args: Any):
    import numpy as np

    dtype = np.dtype(*args)
    if dtype.kind not in _NUMERIC_KINDS:
        raise UnsafePickleError(f"refusing numpy dtype {dtype} (only numeric scalars are allowed)")
    return dtype


def _numpy_scalar(dtype: Any, *args: Any):
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS:
        raise UnsafePickleError(f"refusing numpy scalar of dtype {dtype!r}")
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    return scalar(dtype, *args)


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Protocol 2 pickles ``bytes`` as ``_codecs.encode(text, "latin1")``; allow exactly that."""
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickleError(f"refusing _codecs.encode with {type(text).__name__} / {encoding!r}")
    return text.encode("latin1")


def _bytearray_from_data(data: Any = b"", encoding: str | None = None) -> bytearray:
    """``bytearray`` as pickles spell it (from bytes, or latin-1 text), never ``bytearray(n)``."""
    if isinstance(data, bytes) and encoding is None:
        return bytearray(data)
    if isinstance(data, str) and encoding in ("latin-1", "latin1"):
        return bytearray(data.encode("latin-1"))
    raise UnsafePickleError(
        f"refusing bytearray({type(data).__name__}{', ' + repr(encoding) if encoding else ''})"
        " (only bytes or latin-1 text, never a size)"
    )


class PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        import _compat_pickle
        import builtins
        import collections

        # protocols < 3 name Python 2 modules; map them as pickle's own find_class does
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)

        if module == "builtins" and name in _SAFE_BUILTINS:
            return getattr(builtins, name)
        if module == "builtins" and name == "bytearray":
            return _bytearray_from_data
        if module == "collections" and name in _SAFE_COLLECTIONS:
            return getattr(collections, name)
        if module == "_codecs" and name == "encode":
            return _latin1_bytes
        if module == "numpy" and name == "dtype":
            return _numpy_dtype
        if module in _NUMPY_MODULES and name == "scalar":
            return _numpy_scalar
        raise UnsafePickleError(f"refusing to unpickle global {module}.{name}")


def safe_loads(data: bytes, limits: ResponseLimits | None = None) -> Any:
    """``pickle.loads`` restricted to plain data within ``limits``.

    Raises :class:`pickle.UnpicklingError` for forbidden or malformed content and
    :class:`~reward_utils.answer_limits.AnswerTooLarge` for content over the limits.
    """
    limits = limits or ResponseLimits()
    if len(data) > limits.max_bytes:
        raise AnswerTooLarge(f"pickle of {len(data)} > {limits.max_bytes} bytes")
    try:
        value = PlainDataUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, AnswerTooLarge):
        raise
    except (EOFError, ValueError, TypeError, IndexError, KeyError, OverflowError, MemoryError) as err:
        # what a malformed stream raises from inside the unpickler (a truncated body, a bad opcode argument)
        raise pickle.UnpicklingError(f"malformed pickle ({type(err).__name__}: {err})") from err
    return check_plain_data(value, limits)
