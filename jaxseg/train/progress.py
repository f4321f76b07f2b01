"""Throughput and ETA from the steps after the first (the first includes warm-up: allocation,
and compilation where a step is compiled at first call)."""

from __future__ import annotations

import time


class Progress:
    """Call ``tick(step)`` after each step has *finished*; the first tick ends the warm-up."""

    def __init__(self, total_steps: int, batch_size: int):
        self.total = total_steps
        self.batch_size = batch_size
        self.t0 = time.perf_counter()
        self.first_s: float | None = None
        self.t_run = self.t0
        self.run_step = 0

    def tick(self, step: int) -> None:
        """``step`` = number of steps done so far."""
        if self.first_s is None:
            now = time.perf_counter()
            self.first_s = now - self.t0
            self.t_run, self.run_step = now, step

    def images_per_s(self, step: int) -> float:
        steps = step - self.run_step
        elapsed = time.perf_counter() - self.t_run
        return steps * self.batch_size / elapsed if steps > 0 and elapsed > 0 else float("nan")

    def eta_s(self, step: int) -> float:
        rate = self.images_per_s(step) / self.batch_size
        return (self.total - step) / rate if rate == rate and rate > 0 else float("nan")

    def _rate_text(self, step: int) -> str:
        rate = self.images_per_s(step)
        return "?" if rate != rate else f"{rate:.1f}"

    def line(self, step: int, loss: float, compile_s: float) -> str:
        """The log line at ``step``; ``compile_s`` is the run's compile time so far."""
        eta = self.eta_s(step)
        eta_text = "?" if eta != eta else f"{int(eta // 60)}m{int(eta % 60):02d}s"
        return (
            f"step {step}/{self.total}  loss {loss:.4f}  {self._rate_text(step)} img/s  "
            f"ETA {eta_text}  (compile {compile_s:.1f}s)"
        )
