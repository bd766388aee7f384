r"""``tfconstruct benchmark``: forward-pass speed and memory of every family's benchmark case, as ratios.

For each registered family (:class:`~tfconstruct.verify.family.BenchmarkCase`) and batch size: seconds per forward
pass (median of ``repeats``), instances per second, and two ratios measured in the same run, so they mean the same
on any machine:

* ``x numpy``: the forward pass's time over the numpy reference's on the same instances;
* ``x matmul``: the forward pass's time over one $1024 \times 1024$ float64 matrix product's (on that device),
  i.e. its cost in units of the machine's own matmul rate.

On CUDA (when present) also the peak memory and the largest difference to the CPU output. Speed is measured here,
never in tests.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import torch

from .family import Family

MATMUL_SIZE = 1024


def median_seconds(run: Callable[[], object], repeats: int, device: str = "cpu") -> float:
    """The median wall time of ``run()`` over ``repeats`` calls (CUDA synchronised around each)."""
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_seconds(device: str, repeats: int) -> float:
    """The time of one ``MATMUL_SIZE`` square float64 matrix product on ``device`` (the unit of ``x matmul``)."""
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, dtype=torch.float64, device=device)
    a @ a  # warm-up
    return median_seconds(lambda: a @ a, repeats, device)


def run_benchmark(families: Sequence[Family], batches: Sequence[int], repeats: int, tokens: int) -> list[dict]:
    """Print one row per (family, batch, device) and return the rows."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    unit = {device: matmul_seconds(device, repeats) for device in devices}
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, devices {devices}"
        + (f" ({torch.cuda.get_device_name()})" if "cuda" in devices else "")
        + ", "
        + ", ".join(f"{MATMUL_SIZE}^2 float64 matmul on {d}: {unit[d] * 1e3:.2f} ms" for d in devices)
    )
    print(
        f"{'case':34} {'sublayers':>9} {'heads':>5} {'D':>5} {'N':>5} {'batch':>5} {'device':>6} {'s/forward':>10} "
        f"{'inst/s':>9} {'x numpy':>8} {'x matmul':>9} {'peak MiB':>9} {'|cuda-cpu|':>10}"
    )
    rows = []
    for family in families:
        case = family.benchmark(tokens)
        for batch in batches:
            stream = case.stream(batch)
            numpy_seconds = median_seconds(lambda: case.reference(batch), repeats)
            reference = None
            for device in devices:
                case.model.to(device)
                moved = stream.to(device)
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                    case.model(moved)  # warm-up (kernel selection)
                seconds = median_seconds(lambda: case.model(moved), repeats, device)
                out = case.model(moved)
                peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
                if device == "cpu":
                    reference, gap = out, float("nan")
                else:
                    gap = float((out.cpu() - reference).abs().max() / reference.abs().max())
                row = {
                    "family": family.name, "case": case.name, "sublayers": len(case.model),
                    "heads": case.model.max_heads, "D": case.model.layout.dim, "N": stream.shape[1], "batch": batch,
                    "device": device, "seconds": seconds, "per_second": batch / seconds,
                    "x_numpy": seconds / numpy_seconds, "x_matmul": seconds / unit[device], "peak_mib": peak,
                    "cuda_gap": gap,
                }  # fmt: skip
                rows.append(row)
                print(
                    f"{case.name:34} {row['sublayers']:>9} {row['heads']:>5} {row['D']:>5} {row['N']:>5} {batch:>5} "
                    f"{device:>6} {seconds:>10.4f} {row['per_second']:>9.1f} {row['x_numpy']:>8.3g} "
                    f"{row['x_matmul']:>9.3g} {peak:>9.1f} {gap:>10.2e}"
                )
            case.model.to("cpu")
    return rows
