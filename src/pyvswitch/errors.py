"""Exception types.  API misuse raises one of these, with a message that says
what was wrong; each carries the errno the kernel would have returned, so the
CLI can print OVS's familiar ``(File exists)``-style text."""

from __future__ import annotations

import errno as _errno
import os


class PyvswitchError(Exception):
    """Base class of every error pyvswitch raises on purpose."""

    errno: int = _errno.EINVAL

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        if errno is not None:
            self.errno = errno

    @property
    def strerror(self) -> str:
        """The C library text of :attr:`errno` (``File exists``, ...)."""
        return os.strerror(self.errno)


class VportTypeError(PyvswitchError):
    """Unknown or badly registered vport type."""

    errno = _errno.EAFNOSUPPORT


class VportError(PyvswitchError):
    """A vport could not be created, found, changed or deleted."""


class DeviceError(PyvswitchError):
    """A network device operation failed (missing device, bad MTU, ...)."""

    errno = _errno.ENODEV


class DatapathError(PyvswitchError):
    """A datapath could not be created, found or deleted."""


class FlowError(PyvswitchError):
    """A flow could not be installed, modified, found or deleted."""


class ActionError(FlowError):
    """An action list failed validation."""


class NotSupportedError(PyvswitchError):
    """A feature pyvswitch does not implement (yet), e.g. conntrack."""

    errno = _errno.EOPNOTSUPP


class OdpParseError(PyvswitchError, ValueError):
    """Flow or action text that does not parse.  ``position`` is the 0-based
    offset of the offending ``token`` in the input."""

    def __init__(self, message: str, text: str, position: int, token: str | None = None) -> None:
        self.text = text
        self.position = position
        self.token = token if token is not None else _token_at(text, position)
        super().__init__(f"{message} at position {position} near '{self.token}'")


def _token_at(text: str, position: int) -> str:
    end = position
    while end < len(text) and text[end] not in ",() \t\r\n=/":
        end += 1
    if end == position and position < len(text):
        end = position + 1
    return text[position:end] or "<end of input>"
