"""Forward-pass timings and memory of each construction, on the CPU and (if present) CUDA.

Prints one row per (construction, batch, device): depth, heads, residual width D,
tokens N, seconds per forward pass (median of repeats), instances per second, peak
CUDA memory, and the largest difference between the CUDA and CPU outputs.
Speed is measured here, never in tests.

Usage: ``python benchmarks/forward.py [--batches 1 8 64] [--repeats 3] [--tokens 256]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from tfconstruct.constructions.em import EMConstruction
from tfconstruct.constructions.model import Transformer
from tfconstruct.constructions.power import PowerIteration
from tfconstruct.constructions.tensor import SpectralGMM, preprocess
from tfconstruct.verify.em.strategies import build_mixture
from tfconstruct.verify.tensor.strategies import build_means, sample_mixture


@dataclass
class Case:
    """A model and a function making its input stream for a given batch size."""

    name: str
    model: Transformer
    stream: Callable[[int], torch.Tensor]


def power_case(tokens: int) -> Case:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1, tokens, 16)) * np.linspace(2.0, 0.5, 16)
    construction = PowerIteration.for_data(torch.as_tensor(X), components=2, iterations=20, width=32, newton_steps=1)
    return Case(
        "power (d=16, k=2, T=20)",
        construction.model,
        lambda batch: construction.embed(torch.as_tensor(np.repeat(X, batch, axis=0))),
    )


def em_case(tokens: int) -> Case:
    instance = build_mixture(0, 4, 8, tokens // 4, separation=4.0, init_radius=0.5)
    radius = 1.01 * float(
        max(np.linalg.norm(instance.points, axis=-1).max(), np.linalg.norm(instance.init_means, axis=-1).max())
    )
    construction = EMConstruction(8, components=4, iterations=5, mode="soft", width=64, radius=radius)
    return Case(
        "soft EM (d=8, K=4, L=5)",
        construction.model,
        lambda batch: construction.embed(
            np.repeat(instance.points[None], batch, 0), np.repeat(instance.init_means[None], batch, 0)
        ),
    )


def tensor_case(tokens: int) -> Case:
    means = build_means(8, 3, separation=5.0, cosine=0.0, seed=0)
    x = sample_mixture(np.array([0.2, 0.3, 0.5]), means, tokens, seed=0).x
    gmm = SpectralGMM(3, iterations=10, width=64, newton_steps=1)

    def stream(batch: int) -> torch.Tensor:
        pre = preprocess(np.repeat(x[None], batch, 0), 3)
        return gmm.build(pre).embed(pre, gmm.seeds)

    return Case("tensor power (d=8, K=3, J=10)", gmm.build(preprocess(x[None], 3)).model, stream)


def time_forward(model: Transformer, stream: torch.Tensor, repeats: int) -> tuple[float, torch.Tensor]:
    times = []
    for _ in range(repeats):
        if stream.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = model(stream)
        if stream.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=256)
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, devices {devices}"
        + (f" ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "")
    )
    print(
        f"{'construction':32} {'sublayers':>9} {'heads':>5} {'D':>5} {'N':>5} {'batch':>5} {'device':>6} "
        f"{'s/forward':>10} {'inst/s':>9} {'peak MiB':>9} {'|cuda-cpu|':>10}"
    )
    for make in (power_case, em_case, tensor_case):
        case = make(args.tokens)
        for batch in args.batches:
            stream = case.stream(batch)
            reference = None
            for device in devices:
                case.model.to(device)
                moved = stream.to(device)
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                    time_forward(case.model, moved, 1)  # warm-up (kernel selection)
                seconds, out = time_forward(case.model, moved, args.repeats)
                peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
                if device == "cpu":
                    reference, gap = out, float("nan")
                else:
                    gap = float((out.cpu() - reference).abs().max() / reference.abs().max())
                print(
                    f"{case.name:32} {len(case.model):>9} {case.model.max_heads:>5} {case.model.layout.dim:>5} "
                    f"{stream.shape[1]:>5} {batch:>5} {device:>6} {seconds:>10.4f} {batch / seconds:>9.1f} "
                    f"{peak:>9.1f} {gap:>10.2e}"
                )
            case.model.to("cpu")


if __name__ == "__main__":
    main()
