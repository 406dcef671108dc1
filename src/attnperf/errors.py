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


class UsageError(AttnperfError):
    """A bad command line: a flag, value or combination the command does not accept."""


class ProjectError(AttnperfError):
    """An asv project attnperf cannot work on: no such config, not a git repository,
    a ref git cannot resolve, asv not installed."""


class InitError(AttnperfError):
    """A repository ``attnperf init`` cannot work on (not git, not a directory...)."""


class BenchJobError(AttnperfError):
    """``attnperf ci bench`` cannot run its job: a ref git cannot resolve, an unreadable
    asv config, ``[tool.attnperf]`` or thresholds file, a failed machine description.

    The job still writes a summary saying so; the exit code is ``HARNESS`` (3), or
    ``USAGE`` (2) for :class:`BenchInputError`."""


class BenchInputError(BenchJobError):
    """``attnperf ci bench``'s input is wrong: a ref git cannot resolve, a missing or
    unreadable asv config, ``[tool.attnperf]`` or thresholds file (exit ``USAGE``, 2; the
    summary still says why)."""


class AssetFetchError(AttnperfError):
    """asv's page scripts could not be fetched or failed their pinned integrity check."""


class SelectionError(AttnperfError, ValueError):
    """``ATTNPERF_ASV_KERNELS`` / ``PROBLEMS`` / ``PASSES`` name something the asv grid does not
    hold, or select nothing this device can run.

    Raised in asv's ``setup_cache``; ``asv run -e`` (``--show-stderr``) prints it --
    without it asv says only "setup_cache failed"."""


class WorkerStartError(RuntimeError):
    """A measuring worker process died or hung before it was ready (the caller retries or
    records the config as crashed; never shown to a user as such)."""


class PairedWorkerError(RuntimeError):
    """A paired re-measurement worker exited, answered nothing in time or reported an error
    (the pair is recorded as not measured, with this message)."""


# ---- control flow, not errors: asv's "n/a", and signals turned into exceptions ----
class BenchmarkSkipped(NotImplementedError):
    """asv shows the combination as n/a with this reason (asv treats ``NotImplementedError``
    raised in ``setup`` as "skip")."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread as ``KeyboardInterrupt`` is for SIGINT.

    A ``BaseException``: kernel code's ``except Exception`` must not swallow it."""


class Signalled(BaseException):
    """SIGINT or SIGTERM during a build that cleans up after itself (``signum`` says which).

    A ``BaseException``: no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
