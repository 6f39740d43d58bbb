"""Keeping Numba's on-disk cache honest across files.

``cache=True`` keys a compiled function on the text of its own source file only (Numba 0.68 hashes the
file), yet the compiled code holds every jitted function or intrinsic it calls, from whatever file. Edit
``simd.py`` alone and ``fused.forward`` would keep loading machine code built from the old intrinsics, in a
developer's tree and in an upgraded install alike (pip does not remove ``__pycache__``).

So a kernel module that calls compiled code from sibling modules states ``COMPILED_IN = "<digest>"``: the
:func:`digest` of those modules' sources, found by following its relative imports (:func:`compiled_in`).
A change to any of them changes the digest, hence the caller's own text, hence Numba's key.
``tests/test_cache_key.py`` recomputes every module's digest and prints the value to write when one is stale.
"""
import ast
import hashlib
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
_DIGEST_LINE = re.compile(rb"^COMPILED_IN = .*$", re.MULTILINE)


def _source(name):
    """A module's source without its own ``COMPILED_IN`` line (so digests do not depend on each other)."""
    with open(os.path.join(HERE, name + ".py"), "rb") as f:
        return _DIGEST_LINE.sub(b"", f.read())


def sibling_imports(name):
    """The sibling modules ``name`` imports (``from .x import ...``)."""
    tree = ast.parse(_source(name))
    return sorted({node.module for node in ast.walk(tree)
                   if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module and "." not in node.module
                   and node.module != "cache_key"})


def compiled_in(name):
    """Every sibling module ``name`` depends on, directly or through another one."""
    seen, todo = set(), sibling_imports(name)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(sibling_imports(m))
    return sorted(seen)


def digest(name):
    """SHA-256 (first 16 hex digits) of the sources of :func:`compiled_in` ``(name)``, each with its name."""
    h = hashlib.sha256()
    for m in compiled_in(name):
        h.update(m.encode() + b"\0" + _source(m) + b"\0")
    return h.hexdigest()[:16]
