"""Every error class carries its exit code and survives a pickle round trip."""
from __future__ import annotations

import inspect
import pickle

import pytest

from taskflow.errors import ExitCode, StoreAccessError, StoreError, TaskflowError, UsageError


def _all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


ERROR_CLASSES = [TaskflowError, *_all_subclasses(TaskflowError)]


def _instance(cls: type[TaskflowError]) -> TaskflowError:
    """An instance with a distinct value for every parameter of the class's __init__."""
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not params:
        return cls("a message")
    values = {p.name: (7 if p.name == "line" else f"{p.name}-value-0123456789abcdef") for p in params}
    return cls(**values)


def test_the_walk_finds_the_classes_raised_across_processes():
    names = {c.__name__ for c in ERROR_CLASSES}
    assert {"ResultMissingError", "TaskFailedError", "CorruptResultError", "JugImportError"} <= names


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_pickles_with_its_type_message_and_attributes(cls):
    error = _instance(cls)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)
    assert copy.args == error.args
    assert vars(copy) == vars(error)
    if isinstance(error, ImportError):
        assert copy.name == error.name


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_carries_an_exit_code(cls):
    assert isinstance(cls.exit_code, ExitCode)
    assert cls.exit_code not in (ExitCode.OK, ExitCode.REMAINING)


def test_exit_codes_are_the_documented_ones():
    assert [(c.name, int(c)) for c in ExitCode] == [
        ("OK", 0), ("FAILED", 1), ("USAGE", 2), ("REMAINING", 3), ("STORE", 4), ("INTERRUPTED", 130)]
    assert StoreAccessError.exit_code is ExitCode.STORE
    assert StoreError.exit_code is ExitCode.USAGE and UsageError.exit_code is ExitCode.USAGE


def test_the_cli_maps_an_error_through_its_exit_code(monkeypatch, tmp_path):
    """A new error class picks its code by its attribute alone, with no change to the CLI."""
    import click
    from click.testing import CliRunner

    from taskflow.cli import _handle_errors

    class Interrupting(TaskflowError):
        exit_code = ExitCode.INTERRUPTED

    @click.command()
    @_handle_errors
    def command() -> None:
        raise Interrupting("stopped on purpose")

    result = CliRunner().invoke(command, [])
    assert result.exit_code == 130
    assert "taskflow: error: stopped on purpose" in result.output
