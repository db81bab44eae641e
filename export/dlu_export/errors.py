"""Export problems a user can fix (UserError: problem + fix)."""

from __future__ import annotations

from dlu_deploy.errors import UserError


class ExportError(UserError):
    """The model could not be exported with the requested options."""


class OptionError(ExportError):
    """An export option (shape, opset, output path) is not usable."""
