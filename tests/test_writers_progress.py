"""Tests for jaxseg.train.progress (throughput/ETA, compile excluded) and
jaxseg.train.writers (metrics.jsonl + TensorBoard event files without TensorFlow)."""

import glob
import math
import os
import struct

import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from jaxseg.train import progress as progress_lib
from jaxseg.train.progress import Progress
from jaxseg.train.writers import MetricWriter, read_jsonl


class FakeClock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock(100.0)
    monkeypatch.setattr(progress_lib.time, "perf_counter", c)
    return c


def test_progress_excludes_the_first_step(clock):
    p = Progress(total_steps=101, batch_size=4)
    assert math.isnan(p.images_per_s(0)) and math.isnan(p.eta_s(0))
    assert "ETA ?" in p.line(0, 1.0, 0.0)
    clock.t = 110.0  # the first step (warm-up) took 10 s
    p.tick(1)
    assert p.first_s == pytest.approx(10.0)
    assert math.isnan(p.images_per_s(1))  # no step after the first one yet
    clock.t = 120.0  # 10 more steps in 10 s
    p.tick(11)  # later ticks do not restart the clock
    assert p.first_s == pytest.approx(10.0)
    assert p.images_per_s(11) == pytest.approx(4.0)  # 10 steps × 4 images / 10 s
    assert p.eta_s(11) == pytest.approx(90.0)  # 90 steps left at 1 step/s
    line = p.line(11, 0.123456, 10.0)
    for part in ("step 11/101", "loss 0.1235", "4.0 img/s", "ETA 1m30s", "compile 10.0s"):
        assert part in line, (part, line)
    clock.t = 140.0  # 30 steps in 30 s since the first tick, at step 31
    assert p.images_per_s(31) == pytest.approx(4.0)
    assert p.eta_s(31) == pytest.approx(70.0)
    assert "ETA 1m10s" in p.line(31, 0.5, 10.0)


def test_progress_eta_long_and_zero(clock):
    p = Progress(total_steps=1000, batch_size=2)
    clock.t = 101.0
    p.tick(1)
    clock.t = 111.0  # 5 steps in 10 s: 0.5 step/s -> 994 steps left = 1988 s
    assert p.images_per_s(6) == pytest.approx(1.0)
    assert p.eta_s(6) == pytest.approx(1988.0)
    assert "ETA 33m08s" in p.line(6, 0.0, 0.0)
    assert p.eta_s(1000) == pytest.approx(0.0)


def _tb_scalars(directory: str) -> list[tuple[int, str, float]]:
    """Read scalar summaries from TFRecord event files (length, crc, payload, crc)."""
    out = []
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            for v in event.summary.value:
                out.append((event.step, v.tag, v.simple_value))
    return out


def test_metric_writer_jsonl_and_tensorboard(tmp_path):
    workdir = str(tmp_path / "run")  # created by the writer
    w = MetricWriter(workdir)
    w.write(1, {"train/loss": 0.5, "train/img_per_s": np.float32(3.25)})
    w.write(2, {"train/loss": 0.25})
    w.close()
    records = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    assert records == [
        {"step": 1, "train/loss": 0.5, "train/img_per_s": 3.25},
        {"step": 2, "train/loss": 0.25},
    ]
    events = glob.glob(os.path.join(workdir, "tb", "events.out.tfevents.*"))
    assert events and os.path.getsize(events[0]) > 0
    scalars = _tb_scalars(os.path.join(workdir, "tb"))
    assert sorted(scalars) == [
        (1, "train/img_per_s", 3.25),
        (1, "train/loss", 0.5),
        (2, "train/loss", 0.25),
    ]


def test_metric_writer_records_readable_before_close(tmp_path):
    w = MetricWriter(str(tmp_path))
    w.write(7, {"test/dice": 0.75})
    assert read_jsonl(str(tmp_path / "metrics.jsonl")) == [{"step": 7, "test/dice": 0.75}]
    w.close()


def test_metric_writer_appends(tmp_path):
    w = MetricWriter(str(tmp_path))
    w.write(1, {"a": 1.0})
    w.close()
    w = MetricWriter(str(tmp_path))
    w.write(2, {"a": 2.0})
    w.close()
    records = read_jsonl(str(tmp_path / "metrics.jsonl"))
    assert [r["step"] for r in records] == [1, 2]
    assert [r["a"] for r in records] == [1.0, 2.0]


def test_read_jsonl_skips_blank_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1, "x": 2.0}\n\n{"step": 2}\n')
    assert read_jsonl(str(path)) == [{"step": 1, "x": 2.0}, {"step": 2}]
