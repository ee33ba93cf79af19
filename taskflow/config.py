"""Settings from `[tool.taskflow.<section>]` of the pyproject.toml beside a taskfile.

Python 3.10 has no tomllib and taskflow does not depend on tomli, so without
either a pyproject.toml is only searched for the section header: a file that
has no such section needs no parser, one that has it gets a clear error.
"""
from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from typing import Any, Literal

from .errors import UsageError

log = logging.getLogger(__name__)

PYPROJECT = "pyproject.toml"


def _toml_loads() -> Callable[[str], dict] | None:
    if sys.version_info >= (3, 11):
        import tomllib
        return tomllib.loads
    try:
        import tomli
        return tomli.loads
    except ModuleNotFoundError:
        return None


def pyproject_path(taskfile: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(taskfile)), PYPROJECT)


def read_section(taskfile: str, section: str,
                 loads: Callable[[str], dict] | None | Literal["auto"] = "auto") -> tuple[dict, str | None]:
    """(`[tool.taskflow.<section>]` of the pyproject.toml beside `taskfile`, that file's path).

    ({}, None) when there is no such file or section. `loads` is for tests.
    """
    path = pyproject_path(taskfile)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}, None
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror}") from None
    if isinstance(loads, str):
        loads = _toml_loads()
    if loads is None:
        header = re.compile(rf"^\s*\[\s*tool\s*\.\s*taskflow\s*\.\s*{re.escape(section)}\s*\]", re.M)
        if header.search(text):
            version = f"{sys.version_info[0]}.{sys.version_info[1]}"
            raise UsageError(f"{path}: has [tool.taskflow.{section}] but this Python {version} cannot read TOML: "
                             "install tomli (pip install tomli) or pass the settings on the command line")
        return {}, None
    try:
        data: Any = loads(text)
    except Exception as e:  # tomllib.TOMLDecodeError, or tomli's
        raise UsageError(f"{path}: not valid TOML: {e}") from None
    for key in ("tool", "taskflow", section):
        data = data.get(key) if isinstance(data, dict) else None
        if data is None:
            return {}, None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: tool.taskflow.{section} must be a table")
    log.debug("settings from %s: %s", path, data)
    return data, path


def configured_store(taskfile: str) -> str | None:
    """`url` of `[tool.taskflow.store]` beside the taskfile (a folder relative to that file's folder,
    or a store URL), or None. A URL holding a password is refused: pyproject.toml gets committed."""
    url, path = _store_setting(taskfile, "url")
    if url is None:
        return None
    if "://" not in url:
        return os.path.join(os.path.dirname(os.path.abspath(taskfile)), url)
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@]*:[^/@]*@", url):
        raise UsageError(f"{path}: [tool.taskflow.store] url holds a password, and pyproject.toml gets committed: "
                         "remove it and set TASKFLOW_REDIS_PASSWORD instead")
    return url


def _store_setting(taskfile: str, name: str) -> tuple[str | None, str | None]:
    """(`name` of the checked `[tool.taskflow.store]` beside the taskfile or None, the file's path)."""
    section, path = read_section(taskfile, "store")
    if not section:
        return None, path
    _check_store_section(section, path)
    return section.get(name), path


def _check_store_section(section: dict, path: str | None) -> None:
    unknown = set(section) - {"url", "group", "key_file"}
    for key in ("url", "group", "key_file"):
        if key in section and (not isinstance(section[key], str) or not section[key]):
            unknown.add(key)
    if unknown:
        raise UsageError(f"{path}: [tool.taskflow.store] takes url = \"redis://HOST:PORT/DB\" or a folder, and "
                         f"group = \"NAME\" and key_file = \"PATH\" (not {', '.join(sorted(unknown))})")


def configured_group(taskfile: str) -> str | None:
    """`group` of `[tool.taskflow.store]` beside the taskfile: the group a new store is shared with."""
    return _store_setting(taskfile, "group")[0]


def configured_key_file(taskfile: str) -> str | None:
    """`key_file` of `[tool.taskflow.store]` beside the taskfile (relative to its folder, ~ expanded):
    the key its store's results are signed with (signing.py). Only the file's name is in
    pyproject.toml, which gets committed; the key stays in the file."""
    name = _store_setting(taskfile, "key_file")[0]
    if name is None:
        return None
    return os.path.join(os.path.dirname(os.path.abspath(taskfile)), os.path.expanduser(name))


def key_file_setting(taskfile: str | None) -> str | None:
    """The key file a store opened for `taskfile` signs with: TASKFLOW_KEY_FILE, else `key_file` of
    the taskfile's [tool.taskflow.store], else None (see signing.py)."""
    path = os.environ.get("TASKFLOW_KEY_FILE") or None
    if path is None and taskfile is not None:
        path = configured_key_file(taskfile)
    return path


def configured_max_attempts(taskfile: str) -> int | None:
    """`max-attempts` of `[tool.taskflow.execute]` beside the taskfile (how often a task's worker may
    die while running it before the task is failed), or None."""
    section, path = read_section(taskfile, "execute")
    if not section:
        return None
    unknown = set(section) - {"max-attempts"}
    value = section.get("max-attempts")
    if unknown or isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{path}: [tool.taskflow.execute] takes max-attempts = N, a whole number of at least 1"
                         + (f" (not {', '.join(sorted(unknown))})" if unknown else ""))
    return value
