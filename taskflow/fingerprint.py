"""Fingerprints of task functions, to tell when stored results came from other code.

The fingerprint hashes the function's source tokens, leaving out comments,
blank lines and indentation, so reformatting or editing a comment changes
nothing while any change to what the code says does. Source tokens, unlike
bytecode, stay the same across Python versions. Functions without Python
source (builtins, C extensions) fall back to their qualified name.
"""
from __future__ import annotations

import inspect
import io
import tokenize
from collections.abc import Callable

from .hashing import blake2b

_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENCODING, tokenize.ENDMARKER}
_cache: dict[object, str] = {}


def fingerprint(f: Callable) -> str:
    """A short hex digest of `f`'s code, ignoring comments and whitespace."""
    code = getattr(f, "__code__", None)
    key = code if code is not None else f
    cached = _cache.get(key)
    if cached is not None:
        return cached
    try:
        source = inspect.getsource(f)
        words = [tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                 if tok.type not in _SKIP]
        # Decorators are not the function's code (a version= bump is reported on its own).
        start = next((i for i, w in enumerate(words) if w in ("def", "async", "class")), 0)
        text = "\x00".join(words[start:])
    except (OSError, TypeError, tokenize.TokenError, IndentationError, SyntaxError):
        text = f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', repr(f))}"
    digest = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    _cache[key] = digest
    return digest
