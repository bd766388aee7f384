r"""``tfconstruct benchmark``: forward-pass speed of every family's benchmark case, as ratios measured in one run.

For each registered family (:class:`~tfconstruct.verify.family.BenchmarkCase`), number of tokens $N$ and device:

* ``factored`` and ``dense``: seconds per instance of the forward pass as it runs (heads in their factors, scores
  in query chunks; the median of ``repeats`` passes over ``batch`` instances, fewer when $N$ is large:
  :data:`BATCH_TOKENS`) and of the full-matrix reference path
  (``dense=True``, one pass over one instance; skipped above ``dense_max_tokens``, whose unchunked $N \times N$
  scores and $N D^2$ products would take minutes and gigabytes);
* ``numpy``: seconds per instance of the family's numpy reference on the same instances, and ``x numpy`` =
  factored / numpy;
* ``GFLOP/s``: the matrix-product FLOPs the factored pass performs (counted by torch's ``FlopCounterMode``) per
  second, and ``of matmul``: that rate over the machine's own float64 rate, a $1024 \times 1024$ product timed in
  the same run on the same device.

On CUDA (when present) also the peak memory and the largest difference to the CPU output. Speed is measured here,
never in tests.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from .family import Family

MATMUL_SIZE = 1024
BATCH_TOKENS = 16_000  # at most this many tokens per timed pass: the batch shrinks as N grows (one instance at 10^4)


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


def matmul_rate(device: str, repeats: int) -> float:
    """FLOP/s of one ``MATMUL_SIZE`` square float64 matrix product on ``device`` (the machine's own rate)."""
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, dtype=torch.float64, device=device)
    a @ a  # warm-up
    return 2 * MATMUL_SIZE**3 / median_seconds(lambda: a @ a, repeats, device)


def counted_flops(run: Callable[[], object]) -> int:
    """The FLOPs of the matrix products ``run()`` performs."""
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def run_benchmark(
    families: Sequence[Family],
    tokens: Sequence[int],
    batch: int,
    repeats: int,
    *,
    dense_max_tokens: int = 1000,
) -> list[dict[str, Any]]:
    """Print one row per (family, tokens, device) and return the rows."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rate = {device: matmul_rate(device, repeats) for device in devices}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {batch} (at most {BATCH_TOKENS} tokens), "
        f"devices {devices}"
        + (f" ({torch.cuda.get_device_name()})" if "cuda" in devices else "")
        + "; float64 matmul "
        + ", ".join(f"{d}: {rate[d] / 1e9:.1f} GFLOP/s" for d in devices)
    )
    print(
        f"{'case':38} {'N':>6} {'D':>5} {'layers':>6} {'device':>6} {'factored':>9} {'dense':>9} "
        f"{'numpy':>9} {'x numpy':>8} {'GFLOP/s':>8} {'of matmul':>9} {'peak MiB':>9} {'|cuda-cpu|':>10}"
        "   (seconds per instance)"
    )
    rows = []
    for family in families:
        for n in tokens:
            case = family.benchmark(n)
            batch_n = max(1, min(batch, BATCH_TOKENS // n))
            stream = case.stream(batch_n)
            numpy_seconds = median_seconds(lambda: case.reference(batch_n), repeats)
            reference = None
            for device in devices:
                case.model.to(device)
                moved = stream.to(device)
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                out = case.model(moved)  # warm-up (factor caches, kernel selection)
                seconds = median_seconds(lambda: case.model(moved), repeats, device)
                single = moved[:1]
                dense = (
                    median_seconds(lambda: case.model(single, dense=True), 1, device)
                    if n <= dense_max_tokens
                    else float("nan")
                )
                flops = counted_flops(lambda: case.model(moved))
                peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
                if device == "cpu":
                    reference, gap = out, float("nan")
                else:
                    gap = float((out.cpu() - reference).abs().max() / reference.abs().max())
                row = {
                    "family": family.name, "case": case.name, "N": n, "D": case.model.layout.dim,
                    "sublayers": len(case.model), "batch": batch_n, "device": device, "seconds": seconds / batch_n,
                    "dense_seconds": dense, "numpy_seconds": numpy_seconds / batch_n,
                    "x_numpy": seconds / numpy_seconds, "gflops": flops / seconds / 1e9,
                    "of_matmul": flops / seconds / rate[device], "peak_mib": peak, "cuda_gap": gap,
                }  # fmt: skip
                rows.append(row)
                print(
                    f"{case.name:38} {n:>6} {row['D']:>5} {row['sublayers']:>6} {device:>6} {row['seconds']:>9.2e} "
                    f"{_shown(dense, '9.2e')} {row['numpy_seconds']:>9.2e} {row['x_numpy']:>8.3g} "
                    f"{row['gflops']:>8.2f} {row['of_matmul']:>9.1%} {_shown(peak, '9.1f')} {_shown(gap, '10.2e')}"
                )
            case.model.to("cpu")
    return rows


def _shown(value: float, spec: str) -> str:
    """``value`` formatted to ``spec``, or ``-`` (right-aligned) where it was not measured."""
    width = int(spec.split(".")[0])
    return format(value, spec) if value == value else "-".rjust(width)
