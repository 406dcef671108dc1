"""Named exceptions.  Every user-facing failure is one of these; the CLI turns
them into a single ``error:`` line and a documented exit code."""


class AttnperfError(Exception):
    """Base class: a problem the user can fix (bad input, missing device...)."""


class InvalidShapeError(AttnperfError, ValueError):
    """An attention problem with an impossible size, dtype or layout."""


class UnknownNameError(AttnperfError, KeyError):
    """A kernel, preset or sweep name that does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; we do not want that.
        return str(self.args[0]) if self.args else ""


class KernelUnavailableError(AttnperfError):
    """The kernel cannot run this problem on this device (reason in message)."""


class DeviceUnavailableError(AttnperfError):
    """A device was asked for that this machine does not have."""


class InsufficientMemoryError(AttnperfError):
    """The problem would not fit in the device's free memory."""


class ReportError(AttnperfError):
    """A report or baseline file that cannot be read (missing, empty, not JSON...)."""


class SchemaVersionError(ReportError):
    """A report written with a schema version this attnperf does not know."""


class OutputPathError(AttnperfError):
    """An output path that cannot be written."""


class PluginError(AttnperfError):
    """A kernel plugin that cannot be loaded or used (the message names it and why)."""


class ConfigError(AttnperfError):
    """An invalid ``[tool.attnperf]`` project configuration (the message names the key)."""
