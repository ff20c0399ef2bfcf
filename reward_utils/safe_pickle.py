"""Decode pickled reward-server answers without letting the server run code in the trainer.

The upstream reward servers answer with ``pickle.dumps(dict)``; ``pickle.loads`` on that would execute any
callable the server names. This unpickler resolves no global except a few harmless constructors, so only
plain containers (dict, list, tuple, set), str/bytes, bools, None and numbers (including numpy numeric
scalars) load.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

_SAFE_BUILTINS = {"set", "frozenset", "complex", "bytearray"}
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
        if module == "collections" and name in _SAFE_COLLECTIONS:
            return getattr(collections, name)
        if module == "_codecs" and name == "encode":
            return _latin1_bytes
        if module == "numpy" and name == "dtype":
            return _numpy_dtype
        if module in _NUMPY_MODULES and name == "scalar":
            return _numpy_scalar
        raise UnsafePickleError(f"refusing to unpickle global {module}.{name}")


def safe_loads(data: bytes) -> Any:
    """``pickle.loads`` restricted to plain data; raises :class:`pickle.UnpicklingError` otherwise."""
    return PlainDataUnpickler(io.BytesIO(data)).load()
