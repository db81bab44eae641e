"""Checkpoint problems a user can fix; each names the problem and the fix (UserError)."""

from __future__ import annotations

from dlu_deploy.errors import UserError


class CheckpointError(UserError):
    """Base of every checkpoint loading failure."""


class CheckpointNotFoundError(CheckpointError):
    """The path does not exist or is not a file."""


class CorruptCheckpointError(CheckpointError):
    """The file is not a readable torch checkpoint (truncated, corrupt, or another format)."""


class UnsafeCheckpointError(CheckpointError):
    """The file holds Python objects that safe loading does not read (a whole pickled model)."""


class CodeInCheckpointError(UnsafeCheckpointError):
    """The file's pickle would run code (os.system, eval, a getattr gadget, ...): refused."""


class UnknownArchitectureError(CheckpointError):
    """No registered architecture matches the checkpoint (or --arch names none)."""


class StateDictMismatchError(CheckpointError):
    """Keys are missing, unexpected, or have shapes the architecture cannot take."""


class HyperParameterError(CheckpointError):
    """Hyper-parameters (inferred or given) are inconsistent or outside the ops' limits."""
