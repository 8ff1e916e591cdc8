"""Settings declared once: a dataclass field carries its help, CLI flag, group and valid range.

A command's settings are one dataclass (``deepdip.train.config.TrainConfig``,
``deepdip.predict.config.PredictConfig``) whose fields are made with :func:`option`. From that one
declaration come the library's keyword arguments, the argparse options (:func:`add_arguments`,
:func:`from_namespace`) and the checks (:func:`check_options`, run before anything is read or
written), so ``--help``, the docstring and the error messages cannot drift apart — as
``baselines/params.py`` does for the baselines and RAIL's ``Param`` for its stages.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Callable
from typing import Any

from deepdip.errors import DeepdipValueError, check_number


def option(default: Any, help: str, *, group: str = "", flag: str | None = None, cli: bool = True,
           identity: bool = False, minimum=None, above=None, maximum=None, integer: bool = False,
           choices: tuple | None = None, check: Callable[[str, Any], None] | None = None,
           parse: Callable[[str], Any] | None = None, metavar: str | None = None) -> Any:
    """A dataclass field with everything the CLI and the checks need.

    ``flag``: the CLI option (default ``--field-name``; a boolean that defaults to True is offered
    as ``--no-field-name``); ``cli=False`` keeps a library-only setting off the command line;
    ``identity``: the setting defines what a training run *is* (see ``deepdip.train.run``);
    ``minimum``/``above``/``maximum``/``integer``/``choices``: the valid values (None always allowed
    for an optional field); ``check(flag, value)``: a further check that raises
    :class:`DeepdipValueError`; ``parse``: turns the CLI string into the value (default: the field's type).
    """
    meta = dict(help=help, group=group, flag=flag, cli=cli, identity=identity, minimum=minimum, above=above,
                maximum=maximum, integer=integer, choices=choices, check=check, parse=parse, metavar=metavar)
    return dataclasses.field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field) -> str:
    """The CLI flag of a field (``--no-x`` for a boolean defaulting to True)."""
    if f.metadata.get("flag"):
        return f.metadata["flag"]
    name = f.name.replace("_", "-")
    return f"--no-{name}" if f.default is True else f"--{name}"


def _base_type(cls, f: dataclasses.Field):
    """The non-None type of a field (``int | None`` -> int), from the resolved annotations."""
    hint = typing.get_type_hints(cls)[f.name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return hint


def add_arguments(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = ()) -> None:
    """Add one option per CLI field of the dataclass ``cls``, in groups, with its declared help."""
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", True) or f.name in skip:
            continue
        title = meta.get("group", "")
        target = parser if not title else groups.setdefault(title, parser.add_argument_group(title))
        default = f.default
        flag = flag_of(f)
        if _base_type(cls, f) is bool:
            action = "store_false" if default is True else "store_true"
            text = f"turn off {meta['help']}" if default is True else meta["help"]
            target.add_argument(flag, dest=f.name, action=action, help=text)
            continue
        shown = "" if default is None else f" [{default}]"
        kwargs: dict[str, Any] = dict(dest=f.name, default=default, help=meta["help"] + shown)
        kwargs["type"] = meta.get("parse") or _base_type(cls, f)
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if meta.get("choices") and not meta.get("parse"):
            kwargs["choices"] = meta["choices"]
        target.add_argument(flag, **kwargs)


def from_namespace(cls, args: argparse.Namespace, **extra):
    """The dataclass ``cls`` from parsed arguments (fields absent from ``args`` keep their defaults)."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**given, **extra})


def check_options(config) -> None:
    """Check every field of a settings dataclass against its declared range and choices.

    Raises :class:`DeepdipValueError` naming the CLI flag (or the field for library-only settings).
    """
    for f in dataclasses.fields(config):
        meta, value = f.metadata, getattr(config, f.name)
        name = flag_of(f) if meta.get("cli", True) else f.name
        if value is None:
            continue
        if meta.get("choices") is not None and value not in meta["choices"]:
            raise DeepdipValueError(f"{name} must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
        if any(meta.get(k) is not None for k in ("minimum", "above", "maximum")) or meta.get("integer"):
            check_number(name, value, minimum=meta.get("minimum"), above=meta.get("above"),
                         maximum=meta.get("maximum"), integer=bool(meta.get("integer")))
        if meta.get("check") is not None:
            meta["check"](name, value)


def identity_fields(cls) -> tuple[str, ...]:
    """Names of the fields declared ``identity=True``."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("identity"))


def parse_json_object(text: str) -> dict:
    """A CLI string holding a JSON object (``--model-kwargs '{"widths": [16, 32]}'``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object of keywords, got {text!r}")
    return value


def parse_devices(text: str):
    """``--devices``: an integer count, or Lightning's strings (``auto``, ``0,1``)."""
    text = str(text).strip()
    return int(text) if text.lstrip("-").isdigit() else text


# -- Lightning's hardware options, checked against Lightning's own registries (imported only then) --
def check_precision(flag: str, value) -> None:
    """A precision Lightning's Trainer accepts: its own list, so a newer Lightning brings its new values."""
    import typing

    from lightning.fabric.connector import _PRECISION_INPUT

    values: list = []
    for literal in typing.get_args(_PRECISION_INPUT):
        values.extend(typing.get_args(literal))
    if value not in values:
        names = dict.fromkeys(str(p) for p in values if isinstance(p, str))  # ints are aliases of "64", "32"...
        raise DeepdipValueError(f"{flag} {value!r} is not one Lightning accepts: {', '.join(names)}")


def check_accelerator(flag: str, value) -> None:
    """A Lightning accelerator name (or a Lightning object, passed through)."""
    if isinstance(value, str):
        from lightning.pytorch.accelerators import AcceleratorRegistry

        known = ["auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators())]
        if value not in known:
            raise DeepdipValueError(f"{flag} must be one of {', '.join(known)}, got {value!r}")


def check_strategy(flag: str, value) -> None:
    """A registered Lightning strategy name (or a Lightning object, passed through)."""
    if isinstance(value, str):
        from lightning.pytorch.strategies import StrategyRegistry

        if value not in ["auto", *StrategyRegistry.available_strategies()]:
            raise DeepdipValueError(f"{flag} {value!r} is not a Lightning strategy; e.g. auto, ddp, ddp_spawn")


def check_devices(flag: str, value) -> None:
    """Lightning's ``devices``: a count, -1 (all), a comma list of ids, or auto."""
    # Lightning reads devices=-1 as "all"; 0 or other negatives are no devices at all.
    if isinstance(value, int) and not isinstance(value, bool) and value < 1 and value != -1:
        raise DeepdipValueError(f"{flag} must be a positive number, -1 (all), a list or auto, got {value}")
    if isinstance(value, str) and value != "auto" and not all(p.strip().lstrip("-").isdigit()
                                                              for p in value.split(",") if p.strip()):
        raise DeepdipValueError(f"{flag} must be a number, a comma list of device ids or auto, got {value!r}")
