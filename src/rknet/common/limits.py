"""The limits rknet puts on what a file or an option may ask of it, in one place (docs/security.md explains
each): names that are labels and never paths, nesting and expansion that stay small, sizes checked before
anything of that size is allocated, and error messages that never echo an unbounded value."""

from __future__ import annotations

import os
import reprlib
from dataclasses import dataclass

MAX_NAME_LENGTH = 64
"""Characters in a tableau name: a label in run-folder names and logs, far longer than any real one."""
MAX_NESTING = 32
"""Levels of tables and lists in a config or tableau file: real ones use three; deeper only fills the stack."""
MAX_PICKLE_ITEMS = 2_000_000
"""Items a data pickle may hold once shared references are counted each time they are used: a CIFAR-100
training batch holds about 150,000 (labels, coarse labels, file names); a crafted one sharing a list 10^9
times would expand to gigabytes in whoever reads it."""
MAX_INFLATION = 200
"""How many times its stored size an npz member may inflate to when over `INFLATION_FLOOR` bytes: image and
feature arrays compress far less; deflate reaches ~1000 only on constant runs, the mark of a zip bomb."""
INFLATION_FLOOR = 16 * 2**20
MAX_SHOWN = 80
"""Characters of a value shown in an error message."""


def memory_bytes() -> int:
    """This machine's physical memory in bytes (0 when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def array_budget() -> int:
    """Bytes that arrays read from one file may take: half this machine's memory (the rest is for the
    copies training makes), or 8 GiB when the machine does not say."""
    return memory_bytes() // 2 or 8 * 2**30


class TooLarge(ValueError):
    """A file or option that asks for more than a limit here allows."""


def expanded_items(value: object) -> int:
    """How many items `value` holds when every shared list, tuple or dict is counted each time it is used
    (what a reader that copies or hashes it meets); TooLarge past MAX_PICKLE_ITEMS or on a cycle. Each
    container is walked once (its count kept by identity): shared references cost what their file does."""
    counts: dict[int, int] = {}
    pending: list[tuple[object, bool]] = [(value, False)]
    while pending:
        item, children_done = pending.pop()
        if not isinstance(item, (list, tuple, dict)) or counts.get(id(item), -1) >= 0:
            continue
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        if not children_done:
            if id(item) in counts:
                raise TooLarge("a container holds itself")
            counts[id(item)] = -1  # in progress
            pending.append((item, True))
            pending.extend((child, False) for child in children)
            continue
        total = len(children) + sum(counts.get(id(child), 0) for child in children
                                    if isinstance(child, (list, tuple, dict)))
        if total > MAX_PICKLE_ITEMS:
            raise TooLarge(f"it expands to more than {MAX_PICKLE_ITEMS:,} items once shared containers are "
                           "counted each time they are used")
        counts[id(item)] = total
    return counts.get(id(value), 1)


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = MAX_SHOWN
_SHORT.maxlevel = 3
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 8


def shown(value: object) -> str:
    """`repr(value)` for an error message, at most about MAX_SHOWN characters whatever `value` is (a deeply
    nested or shared structure is cut off level by level, not expanded)."""
    text = _SHORT.repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "..."


@dataclass(frozen=True)
class Limit:
    """The most of something an option or file may ask for, and why (the refusal says both)."""

    most: int
    what: str
    why: str

    def check(self, name: str, count: int) -> int:
        """`count` if it is at most the limit; TooLarge naming the option, the value and the limit's reason."""
        if count > self.most:
            raise TooLarge(f"{name} asks for {shown(count)} {self.what}; at most {self.most:,}: {self.why}")
        return count


BLOCK_STEPS = Limit(10_000, "steps per block", "each step keeps its state for the backward pass (8 MB per step "
                    "for a CIFAR batch of 128 at width 16), and the deepest residual networks have about 1,000 layers")
GRID_STEPS = Limit(1_000_000, "steps in a grid", "the grid's times are built before the first step (10^8 steps: 3.2 GB "
                   "of Python floats), and a million steps already take minutes")
BLOCKS = Limit(64, "blocks", "each block is a module of its own; published ODE networks use 3 or 4")
WIDTH = Limit(4096, "channels", "a block's layer holds about 9 w^2 weights per control (4096: 150 million), and "
              "the widest residual networks use 2048")
THREADS = Limit(1024, "threads", "each thread takes its own stack and buffers (100,000 ran libgomp out of memory), "
                "and the largest single machines have fewer cores")
RUNS = Limit(10_000, "runs", "each run is a training with its own folder; the grid and its status list every run")
KRYLOV = Limit(200, "GMRES iterations", "each keeps a copy of the state, and the Hessenberg matrix takes "
               "(max_krylov + 1) x max_krylov doubles per image (3,000: 4.6 GB for a batch of 64); 20 to 80 is usual")
NEWTON = Limit(1_000, "Newton iterations", "Newton's method converges in a few iterations or not at all; a solve "
               "that stops decreasing its residual is stopped as stagnated anyway")
EPOCHS = Limit(1_000_000, "epochs", "a million epochs of the smallest data set is months of training")


def check_label(name: object, what: str) -> str:
    """`name` stripped, if it can serve as a label in file and folder names; ValueError naming the rule it
    breaks (a name read from a file is a label, never a path)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what} must be a non-empty string, got {shown(name)}")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} has {len(name)} characters; at most {MAX_NAME_LENGTH} (it names run folders)")
    if "/" in name or "\\" in name or ".." in name or name.startswith("."):
        raise ValueError(f"{what} {shown(name)} holds a path separator, '..' or a leading '.'; a name is a "
                         "label, never a path")
    if not name.isprintable():
        raise ValueError(f"{what} {shown(name)} holds control or non-printing characters; use letters, digits, "
                         "'-' and '_'")
    return name
