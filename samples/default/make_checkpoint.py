"""Reproduce samples/default/dlu_default.pth bit for bit.

    python samples/default/make_checkpoint.py [DIRECTORY]

The weights are drawn from a seeded generator (dlu_export.default.default_state_dict); torch.save
of the same tensors under the same file name gives identical bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dlu_export.default import write_default_checkpoint


def main() -> None:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    print(write_default_checkpoint(directory))


if __name__ == "__main__":
    main()
