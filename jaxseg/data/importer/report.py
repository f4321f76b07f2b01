"""What an import tells its caller: the Report of what it wrote, or an InputError."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


class InputError(ValueError):
    """Bad input; `problems` holds one 'file: what is wrong' line each. Nothing was written."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        shown = "; ".join(self.problems[:10])
        more = f"; ... and {len(self.problems) - 10} more" if len(self.problems) > 10 else ""
        super().__init__(
            f"{len(self.problems)} problem(s) in the input, nothing written: {shown}{more}"
        )


@dataclasses.dataclass
class Report:
    """What an import wrote (`str(report)` is the printed summary)."""

    output: str
    count: int
    image_shape: tuple[int, ...]  # per example: spatial shape + channels
    mask_names: tuple[str, ...]
    class_names: tuple[str, ...]
    imported: list[str] = dataclasses.field(default_factory=list)
    derived: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)  # printed to stderr

    def __str__(self) -> str:
        fmt = "npz" if self.output.endswith(".npz") else "tfds"
        lines = [
            f"wrote {self.count} examples of shape {self.image_shape} to {self.output} ({fmt})",
            f"mask channels: {', '.join(self.mask_names)}; classes: {', '.join(self.class_names)}",
            *(f"imported: {s}" for s in self.imported),
            *(f"derived: {s}" for s in self.derived),
            *(f"skipped: {s}" for s in self.skipped),
        ]
        return "\n".join(lines)
