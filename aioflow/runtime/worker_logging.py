"""The host's `logging` configuration, carried to the worker processes of a run.

A worker loads the flow class but not always its module: a flow file (`aioflow run flow.py`)
or a notebook cell travels by value, so the `logging.basicConfig(...)` at its top never runs
in the worker, and a process step's `log.info(...)` would vanish (with no handler anywhere,
Python prints WARNING and above, bare). A Metaflow task process imports the flow file, so its
configuration applies there; here the worker takes the host's instead: each configured logger's
level and propagation, and the handlers that write to the standard streams, with their levels
and formatters. Handlers that write elsewhere (files, sockets) and filters are not carried. A
worker whose imports configured logging already (a flow module imported by name) keeps its own.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from typing import Any

import cloudpickle

from .logs import standard_stream_name


@dataclass(frozen=True)
class HandlerConfig:
    """A handler writing to a standard stream ("stdout" or "stderr")."""

    stream: str
    level: int
    #: The formatter, pickled (None for the default one), and its format as a fallback.
    formatter: bytes | None
    fmt: str | None
    datefmt: str | None


@dataclass(frozen=True)
class LoggerConfig:
    """One configured logger ("" for the root)."""

    name: str
    level: int
    propagate: bool
    disabled: bool
    handlers: tuple[HandlerConfig, ...]


def _handler_config(handler: logging.Handler) -> HandlerConfig | None:
    if not isinstance(handler, logging.StreamHandler):
        return None
    stream = standard_stream_name(handler.stream)
    if stream is None:
        return None
    formatter = handler.formatter
    pickled = None
    if formatter is not None:
        try:
            pickled = cloudpickle.dumps(formatter)
        except Exception:  # a formatter holding something unpicklable: its format will do
            pickled = None
    return HandlerConfig(
        stream,
        handler.level,
        pickled,
        getattr(formatter, "_fmt", None),
        getattr(formatter, "datefmt", None),
    )


def snapshot() -> tuple[LoggerConfig, ...]:
    """The loggers of this process that were configured in any way."""
    loggers: list[Any] = [logging.getLogger(), *list(logging.Logger.manager.loggerDict.values())]
    configs = []
    for logger in loggers:
        if not isinstance(logger, logging.Logger):  # a PlaceHolder
            continue
        handlers = tuple(
            config for config in map(_handler_config, logger.handlers) if config is not None
        )
        root = logger is logging.getLogger()
        untouched = logger.level == (logging.WARNING if root else logging.NOTSET)
        if untouched and not handlers and logger.propagate and not logger.disabled:
            continue
        name = "" if root else logger.name
        configs.append(
            LoggerConfig(name, logger.level, logger.propagate, logger.disabled, handlers)
        )
    return tuple(configs)


def _formatter(config: HandlerConfig) -> logging.Formatter | None:
    if config.formatter is not None:
        try:
            formatter = pickle.loads(config.formatter)
        except Exception:  # its class cannot be loaded here
            formatter = None
        if isinstance(formatter, logging.Formatter):
            return formatter
    if config.fmt is None and config.datefmt is None:
        return None
    return logging.Formatter(config.fmt, config.datefmt)


def _configured() -> bool:
    loggers: list[Any] = [logging.getLogger(), *list(logging.Logger.manager.loggerDict.values())]
    return any(getattr(logger, "handlers", None) for logger in loggers)


def apply(configs: tuple[LoggerConfig, ...], streams: dict[str, Any]) -> None:
    """Configure this (worker) process's loggers as `configs` describe, unless logging was
    configured here already. `streams` maps "stdout" and "stderr" to the streams to write to."""
    if not configs or _configured():
        return
    for config in configs:
        logger = logging.getLogger(config.name or None)
        logger.setLevel(config.level)
        logger.propagate = config.propagate
        logger.disabled = config.disabled
        for handler_config in config.handlers:
            handler = logging.StreamHandler(streams[handler_config.stream])
            handler.setLevel(handler_config.level)
            handler.setFormatter(_formatter(handler_config))
            logger.addHandler(handler)
