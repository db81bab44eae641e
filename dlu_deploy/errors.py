"""Errors a user can act on.

Command-line tools print these as one paragraph (problem, then the fix) and exit non-zero,
without a traceback unless --verbose is given. Anything else escaping is a bug.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, described together with how to fix it."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem} {fix}")
        self.problem = problem
        self.fix = fix


class OpArgumentError(UserError, ValueError):
    """An operator was called with shapes or parameters its spec (docs/ops.md) does not allow."""
