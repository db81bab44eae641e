"""Store width of the fast CUDA reassembly, read from the PTX the build generated.

With an aligned output, each thread of `reassemble_fast` that owns two horizontally adjacent
children (CX = 2) must write them with ONE store: `st.global[.wb].v2.f32` for fp32, one 32-bit
store of a half2 for fp16. A plain float2 assignment once compiled to two `st.global.f32`
(half the store width, twice the store instructions); this keeps that from coming back.

    check_cuda_stores.py PTX_DIR HAS_CUDA

PTX_DIR holds nvcc's kept intermediates (<source>.ptx, or <source>.compute_<arch>.ptx with
several architectures; plugins/kernels/CMakeLists.txt). Exit 0 = checked, 1 = a violation,
77 = skipped (no CUDA build), with the reason printed. Needs only Python; cuobjdump is not
required (not every toolkit install has it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SOURCES = ("dlu_cuda", "carafe_cuda")
# reassemble_fast<T, K, CX, CY, MinBlocks, Aligned, Source> as mangled by nvcc.
FAST = re.compile(
    r"reassemble_fastI(?P<t>f|6__half)Li(?P<k>\d+)ELi(?P<cx>\d+)ELi\d+ELi\d+ELb(?P<al>[01])E"
)
STORE = re.compile(r"^\s*st\.global(?P<mods>(?:\.\w+)*)\s")


def entries(ptx: str) -> dict[str, str]:
    """Kernel name -> body, for every .entry of a PTX file."""
    parts = re.split(r"^\.(?:visible\s+)?\.?entry\s+(\S+?)\(", ptx, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def store_kinds(body: str) -> list[str]:
    """The modifiers of every global store, e.g. '.wb.v2.f32', '.f32', '.u32', '.u16'."""
    return [m.group("mods") for line in body.splitlines() if (m := STORE.match(line))]


def check(ptx_file: Path) -> list[str]:
    problems = []
    checked = {"f": 0, "6__half": 0}
    for name, body in entries(ptx_file.read_text()).items():
        m = FAST.search(name)
        if not m or m.group("cx") != "2" or m.group("al") != "1":
            continue
        kinds = store_kinds(body)
        dtype = "float" if m.group("t") == "f" else "half"
        label = f"{ptx_file.name}: reassemble_fast<{dtype}, K={m.group('k')}>"
        if m.group("t") == "f":
            paired = [k for k in kinds if k.endswith(".v2.f32")]
            single = [k for k in kinds if k.endswith(".f32") and ".v2" not in k]
        else:
            paired = [k for k in kinds if k.endswith((".u32", ".b32", ".s32"))]
            single = [k for k in kinds if k.endswith((".u16", ".b16", ".s16", ".f16"))]
        if not paired or single:
            problems.append(f"{label}: stores {kinds}: expected only paired stores")
        checked[m.group("t")] += 1
    for t, count in checked.items():
        if count == 0:
            problems.append(
                f"{ptx_file.name}: no aligned CX=2 reassemble_fast<{t}> kernel found (renamed?)"
            )
    return problems


def main() -> int:
    ptx_dir, has_cuda = Path(sys.argv[1]), sys.argv[2] in ("1", "ON", "TRUE")
    if not has_cuda:
        print("skipped: this build has no CUDA kernels (no nvcc found at configure time)")
        return 77
    problems, files = [], []
    for source in SOURCES:
        # One architecture: <source>.ptx; several: <source>.compute_<arch>.ptx.
        found = sorted(ptx_dir.glob(f"{source}.ptx"))
        found += sorted(ptx_dir.glob(f"{source}.compute_*.ptx"))
        if not found:
            problems.append(
                f"no PTX of {source}.cu in {ptx_dir}: build the dlu_kernels target first"
            )
        files += found
    for ptx_file in files:
        problems += check(ptx_file)
    for problem in problems:
        print("FAIL:", problem)
    if problems:
        return 1
    print("paired stores are single vector stores in", ", ".join(f.name for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
