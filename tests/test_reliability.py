"""No silent wrong answers: every case of issue 11 as a test, and a fuzz of every public entry point.

Each public construction, given inputs across scales $10^{-12}..10^{12}$, degenerate spectra, duplicated points and
tiny clusters, returns either a finite result that matches the numpy reference, or a named error (a ``ValueError``
whose message names the parameter or the sublayer, or a ``DomainError``), never NaN and never a plausible wrong
number.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from sklearn.datasets import load_wine

from tfconstruct.constructions import (
    MLPBuilder,
    PiecewiseLinear,
    ResidualLayout,
    Transformer,
    geometric_knots,
    within_radius,
)
from tfconstruct.constructions.domains import DomainError
from tfconstruct.constructions.em import EMConstruction
from tfconstruct.constructions.gadgets import NormalisationDomain
from tfconstruct.constructions.gd import InContextRegression
from tfconstruct.constructions.power import PowerIteration, SpectralClustering, default_seeds
from tfconstruct.constructions.tensor import OdecoPowerIteration, SpectralGMM
from tfconstruct.verify.cli import main
from tfconstruct.verify.em.reference import initial_state, lloyd, soft_em
from tfconstruct.verify.em.strategies import half_margins
from tfconstruct.verify.gd.reference import gradient_descent
from tfconstruct.verify.power.reference import (
    deflated_power_method,
    power_iteration,
    second_moment,
    sin_angle,
    spectral_labels,
)
from tfconstruct.verify.sweep import Sweep, SweepLocked
from tfconstruct.verify.tensor.reference import tensor_power_method
from tfconstruct.verify.testing import round_off_allowance

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SCALES = [1e-12, 1e-6, 1.0, 1e6, 1e12]
NAMED = (ValueError, DomainError)
EPS = float(np.finfo(np.float64).eps)


def named_or_finite(run):
    """``run()``'s result, or None when it raised a named error (a message that says what and where)."""
    try:
        return run()
    except NAMED as err:
        message = str(err)
        assert len(message) > 20 and any(word in message for word in ("must", "outside", "exceeds", "needs", "no "))
        return None


# ------------------------------------------------------------------------------------------------ the listed cases


def test_power_iteration_outside_its_default_domain_raises_naming_the_sublayer_instead_of_nan():
    wine = load_wine().data
    with pytest.raises(DomainError, match=r"sublayer 'component0\.iter0\.inv_sqrt' read norm_sq = .* instance 0"):
        PowerIteration(13).run(wine)
    for scale in (1e3, 1e-8):  # clustering of a separated mixture scaled up; data scaled down: no garbage labels/zeros
        rng = np.random.default_rng(0)
        points = np.concatenate([rng.standard_normal((30, 2)) + [4, 0], rng.standard_normal((30, 2)) - [4, 0]])
        with pytest.raises(DomainError, match="move the domain's"):
            SpectralClustering(2).run(points * scale)
    result = PowerIteration.for_data(wine, iterations=200, newton_steps=2).run(wine)  # the documented remedy works
    top = np.linalg.eigvalsh(second_moment(wine))[-1]
    assert abs(float(result.eigenvalues[0, 0]) / top - 1) < 1e-6


def test_a_batch_mixing_scales_by_a_thousand_gets_every_instance_right():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2, 200, 3)) * [3.0, 1.0, 0.5]
    X[1] *= 1e-3
    construction = PowerIteration.for_data(X, components=2, iterations=80, newton_steps=1)
    result = construction.run(X)
    for b in range(2):
        truth = np.linalg.eigvalsh(second_moment(X[b]))[::-1][:2]
        np.testing.assert_allclose(result.eigenvalues[b].numpy(), truth, rtol=1e-3)


def test_a_width_too_small_for_the_normaliser_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"width M=1 is too small .* use width >= 6"):
        PowerIteration(3, width=1)


def test_a_tensor_outside_the_normaliser_domain_raises():
    rng = np.random.default_rng(2)
    basis = np.linalg.qr(rng.standard_normal((3, 3)))[0][:2]
    tensor = np.einsum("k,ka,kb,kc->abc", [2.0, 1.0], basis, basis, basis)
    construction = OdecoPowerIteration(
        3, components=2, iterations=8, width=64, domain=NormalisationDomain.for_weights(1.0, 2.0)
    )
    with pytest.raises(DomainError, match="norm_sq"):
        construction.run(tensor * 1e3)
    with pytest.raises(ValueError, match="tensor must be symmetric"):
        construction.run(rng.standard_normal((3, 3, 3)))
    with pytest.raises(ValueError, match="tensor must hold real numbers"):
        construction.run(tensor * (1 + 1j))


def test_em_weights_below_the_floor_and_a_generous_radius_are_refused_with_what_works():
    rng = np.random.default_rng(3)
    points = rng.standard_normal((60, 2))
    means = np.array([[0.0, 0.0], [3.0, 3.0]])
    construction = EMConstruction(2, components=2, iterations=2, radius=5.0, width=32, weight_floor=0.01)
    with pytest.raises(
        DomainError, match=r"read pi = 0\.004 .* lower end \(set by weight_floor\) past 0\.004, with a margin"
    ):
        construction.run(points, means, np.array([0.996, 0.004]))
    generous = EMConstruction(2, components=2, iterations=1, radius=1e8, width=32)
    with pytest.raises(ValueError, match=r"radius=1e\+08 is .* build with radius in \[4\.24264, 424\.264\]"):
        generous.run(points.clip(-3, 3), means)


def test_spectral_gmm_on_identical_points_is_refused_not_nan():
    with pytest.raises(ValueError, match="M2 has no K=2 well-separated positive eigenvalues"):
        SpectralGMM(2).fit(np.ones((50, 3)))


def test_the_core_api_refuses_what_it_cannot_do():
    layout = ResidualLayout([("x", 3), ("s", 1), ("one", 1)])
    interpolant = PiecewiseLinear.interpolate(np.log, geometric_knots(0.1, 1.0, 8))
    with pytest.raises(ValueError, match=r"source 'x' \(size 3\) and destination 's' \(size 1\)"):
        interpolant.add_to(MLPBuilder(layout), "x", "s")
    with pytest.raises(ValueError, match=r"subspace 'x' has shape \(1, 1, 1\)"):
        layout.embed(1, 4, {"x": torch.ones(1, 1, 1)})
    model = Transformer(layout, [MLPBuilder(layout).group({"s": 1.0}, {"s": 1.0}).build()], ["mlp"])
    stream = layout.embed(1, 4, {"x": torch.ones(3), "one": 1.0})
    stream[0, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite values .* \(batch, token, coordinate\) = \(0, 2, 3\) \(s\)"):
        model(stream)
    assert within_radius("points", torch.ones(4, 2), 2.0) == pytest.approx(2**0.5)
    with pytest.raises(ValueError, match=r"a vector of points has norm 1\.41421 > radius=1"):
        within_radius("points", torch.ones(4, 2), 1.0)


def test_a_recording_pass_lists_each_violation_and_returns_the_same_stream():
    construction = PowerIteration(2, iterations=3)
    stream = construction.embed(np.random.default_rng(4).standard_normal((1, 20, 2)) * 100)
    trace = construction.model(stream, outside="record")
    assert trace.violations and {v.sublayer.split(".")[1] for v in trace.violations} <= {"iter0", "iter1", "iter2"}
    assert all(v.value > v.domain.high for v in trace.violations)
    assert torch.equal(trace.output, construction.model(stream, outside="record", trace=True).output)
    with pytest.raises(ValueError, match="outside must be 'raise' or 'record'"):
        construction.model(stream, outside="ignore")


@pytest.mark.parametrize(
    "args, message",
    [
        (["report", "--only", "bogus"], "unknown report section(s) ['bogus']"),
        (["report", "--device", "bogus", "--only", "gd"], "--device must be cpu, cuda or cuda:N, got 'bogus'"),
        (["sweep", "power", "--width", "1000000000"], "--width must be an integer in [1, 65536]"),
        (
            ["sweep", "power", "--width", "2", "8"],
            "power needs --width >= 6 on the domain [0.01, 100.0] (a narrower normaliser is off by more than 25 %)",
        ),
    ],
)
def test_cli_usage_errors_exit_2_in_one_line(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([*args, "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert stop.value.code == 2 and message in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1, error


def test_cli_output_problems_device_absence_and_runtime_failures_have_their_own_codes(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("")
    for out in (a_file, a_file / "below"):
        with pytest.raises(SystemExit) as stop:
            main(["report", "--quick", "--only", "gd", "--out", str(out)])
        assert stop.value.code == 2
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as stop:
            main(["report", "--device", "cuda", "--only", "gd", "--out", str(tmp_path / "r")])
        assert stop.value.code == 2 and "no CUDA device" in capsys.readouterr().err
    monkeypatch.setattr("tfconstruct.verify.cli.run_benchmark", lambda *a, **k: 1 / 0)
    assert main(["benchmark", "--family", "gd", "--tokens", "8"]) == 3
    error = capsys.readouterr().err
    assert "ZeroDivisionError" in error and "--debug" in error and "Traceback" not in error
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "benchmark", "--family", "gd", "--tokens", "8"])


def test_a_foreign_results_row_and_a_second_writer_are_refused(tmp_path, capsys):
    folder = tmp_path / "sweep"
    assert main(["sweep", "gd", "--out", str(folder), "--depth", "0", "60", "120", "--eta", "1.0"]) == 0
    with (folder / "results.jsonl").open("a") as sink:
        sink.write("{}\n")
    with pytest.raises(SystemExit) as stop:
        main(["sweep", "gd", "--out", str(folder), "--depth", "0", "60", "120", "--eta", "1.0"])
    assert stop.value.code == 2 and "line 10 is not a row of this sweep" in capsys.readouterr().err
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "locked").mkdir()
        (tmp_path / "locked" / ".lock").write_text(str(holder.pid))
        sweep = Sweep({"a": [1]}, 1, lambda config, seed: {"e": 0.0}, tmp_path / "locked", progress=False)
        with pytest.raises(SweepLocked, match=f"another sweep \\(process {holder.pid}\\) is writing"):
            sweep.run()
        (folder / ".lock").write_text(str(holder.pid))
        with pytest.raises(SystemExit) as stop:
            main(["sweep", "gd", "--out", str(folder), "--depth", "0", "60", "120", "--eta", "1.0"])
        assert stop.value.code == 2 and "another sweep" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert len(sweep.run()) == 1  # the lock of a process that has ended is taken over
    assert not (tmp_path / "locked" / ".lock").exists() and os.listdir(tmp_path / "locked")


# ------------------------------------------------------------------------------------------------ fuzz

scales = st.sampled_from(SCALES)
spectra = st.sampled_from(["distinct", "tied top", "all equal", "rank deficient"])


def spectrum(kind: str, dim: int) -> np.ndarray:
    return {
        "distinct": np.geomspace(1.0, 0.1, dim),
        "tied top": np.r_[1.0, 1.0, np.geomspace(0.5, 0.1, dim - 2)],
        "all equal": np.ones(dim),
        "rank deficient": np.r_[np.geomspace(1.0, 0.3, dim - 1), 0.0],
    }[kind]


@given(
    dim=st.integers(2, 5),
    tokens=st.integers(6, 40),
    scale=scales,
    kind=spectra,
    duplicated=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fuzz_power_iteration_matches_the_reference_or_names_the_problem(dim, tokens, scale, kind, duplicated, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((tokens, dim)) * np.sqrt(spectrum(kind, dim)) * scale
    if duplicated:
        X = np.concatenate([X, X[: tokens // 2]])
    seeds = default_seeds(dim, 1)
    construction = named_or_finite(lambda: PowerIteration.for_data(X, iterations=30, newton_steps=1))
    result = construction and named_or_finite(lambda: construction.run(X, seeds))
    if result is None:
        return
    assert torch.isfinite(result.eigenvalues).all() and torch.isfinite(result.vectors).all()
    reference = deflated_power_method(second_moment(X), seeds, 30, newton=1)
    assert sin_angle(result.vectors[0, 0].numpy(), reference.vectors[0]) < 1e-8  # the direction is exact
    tolerance = 4 * construction.engine.norm_error + 1e-9
    assert abs(float(result.eigenvalues[0, 0]) / reference.values[0] - 1) <= tolerance


@given(
    dim=st.integers(1, 3),
    clusters=st.integers(2, 3),
    scale=scales,
    tiny=st.booleans(),
    duplicated=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fuzz_em_matches_the_reference_or_names_the_problem(dim, clusters, scale, tiny, duplicated, seed):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)) * 4
    sizes = [1 if tiny and k == 0 else 12 for k in range(clusters)]  # a cluster of one point: a weight below 1/n
    points = np.concatenate([c + rng.standard_normal((s, dim)) for c, s in zip(centres, sizes)])
    if duplicated:
        points = np.concatenate([points, points[:5]])
    points, means = points * scale, (centres + 0.5 * rng.standard_normal(centres.shape)) * scale
    radius = 1.5 * float(np.linalg.norm(np.concatenate([points, means]), axis=1).max())
    beta = 1.0 / scale**2  # the same mixture at every scale
    construction = named_or_finite(
        lambda: EMConstruction(
            dim, components=clusters, iterations=2, beta=beta, radius=radius, width=256, weight_floor=0.02
        )
    )
    readout = construction and named_or_finite(lambda: construction.run(points, means))
    if readout is None:
        return
    reference = soft_em(points, initial_state(means, variance=1.0 / beta), 2)[-1]
    assert torch.isfinite(readout.means).all()
    error = np.linalg.norm(readout.means[0].numpy() - reference.means, axis=1).max()
    assert error <= 2e-2 * scale * 4  # M = 256: the log interpolants are good to ~1e-4; garbage is O(scale)


@given(
    dim=st.integers(1, 4), tokens=st.integers(4, 30), scale=scales, steps=st.integers(0, 20), seed=st.integers(0, 99)
)
def test_fuzz_in_context_regression_is_numpy_gradient_descent_or_names_the_problem(dim, tokens, scale, steps, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((tokens, dim)) * scale
    y, query = X @ rng.standard_normal(dim), rng.standard_normal(dim) * scale
    eta = 0.5 / scale**2  # a convergent step at every scale
    construction = named_or_finite(lambda: InContextRegression(dim, steps=steps, eta=eta))
    readout = construction and named_or_finite(lambda: construction.run(X, y, query))
    if readout is None:
        return
    reference = gradient_descent(X, y, query, eta, steps).predictions[-1]
    allowance = round_off_allowance(max(abs(reference), float(np.abs(y).max()) * 10), depth=steps, ulps=64)
    assert abs(float(readout.prediction[0]) - reference) <= allowance


@given(dim=st.integers(2, 4), scale=scales, seed=st.integers(0, 999))
def test_fuzz_tensor_power_iteration_matches_the_reference_or_names_the_problem(dim, scale, seed):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    weights = rng.uniform(1.0, 3.0, dim)
    tensor = np.einsum("k,ka,kb,kc->abc", weights, basis, basis, basis) * scale
    domain = NormalisationDomain.for_weights(weights.min() * scale, weights.max() * scale)
    seeds = default_seeds(dim, 1)
    construction = named_or_finite(
        lambda: OdecoPowerIteration(dim, components=1, iterations=8, width=64, domain=domain, newton_steps=1)
    )
    result = construction and named_or_finite(lambda: construction.run(tensor, seeds))
    if result is None:
        return
    reference = tensor_power_method(tensor, seeds, 8)
    assert sin_angle(result.vectors[0, 0].numpy(), reference.vectors[0]) < 1e-8


@given(
    dim=st.integers(2, 4),
    clusters=st.integers(2, 3),
    scale=scales,
    identical=st.booleans(),
    seed=st.integers(0, 999),
)
def test_fuzz_spectral_gmm_returns_a_valid_mixture_or_names_the_problem(dim, clusters, scale, identical, seed):
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((clusters, dim)) * 5
    labels = rng.integers(0, clusters, 120)
    x = (np.ones((120, dim)) if identical else means[labels] + rng.standard_normal((120, dim))) * scale
    estimate = named_or_finite(lambda: SpectralGMM(clusters, iterations=10).fit(x))
    if estimate is None:
        return
    assert torch.isfinite(estimate.means).all() and torch.isfinite(estimate.weights).all()
    assert bool((estimate.weights > 0).all()) and abs(float(estimate.weights.sum()) - 1) < 1e-9


@given(
    dim=st.integers(2, 4),
    per_class=st.integers(3, 25),
    scale=scales,
    separation=st.sampled_from([0.0, 1.0, 6.0]),
    duplicated=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fuzz_spectral_clustering_labels_are_the_references_or_names_the_problem(
    dim, per_class, scale, separation, duplicated, seed
):
    rng = np.random.default_rng(seed)
    offset = np.r_[separation, np.zeros(dim - 1)]
    X = np.concatenate([rng.standard_normal((per_class, dim)) + offset, rng.standard_normal((per_class, dim)) - offset])
    if duplicated:
        X = np.concatenate([X, X[:per_class]])
    X = X * scale
    construction = named_or_finite(lambda: SpectralClustering.for_data(X, iterations=40, width=32))
    stream = construction and named_or_finite(lambda: construction.model(construction.embed(X)))
    if stream is None:
        return
    labels = construction.labels(stream)[0].numpy()
    direction = power_iteration(second_moment(X, centre=True), default_seeds(dim, 1)[0], 40).iterates[-1]
    centred = X - X.mean(axis=0)
    projections = centred @ direction
    decided = np.abs(projections) > 1e-9 * np.linalg.norm(centred, axis=1)  # the construction's margin
    np.testing.assert_array_equal(labels[decided], spectral_labels(X, direction)[decided])


@given(
    dim=st.integers(1, 3),
    clusters=st.integers(2, 3),
    scale=scales,
    duplicated=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fuzz_lloyd_matches_the_reference_or_names_the_problem(dim, clusters, scale, duplicated, seed):
    rng = np.random.default_rng(seed)
    centres = np.eye(max(dim, clusters))[:clusters, :dim] * 20 + rng.standard_normal((clusters, dim))
    points = np.concatenate([c + rng.standard_normal((10, dim)) for c in centres])
    if duplicated:
        points = np.concatenate([points, points[:5]])
    points, means = points * scale, centres * scale
    trajectory = [means] + [state.means for state in lloyd(points, means, 1)]
    margin = min(half_margins(points, m).min() for m in trajectory)
    radius = 1.5 * float(np.linalg.norm(np.concatenate([points, means]), axis=1).max())
    construction = named_or_finite(
        lambda: EMConstruction(dim, components=clusters, iterations=2, mode="hard", beta=60.0 / margin, radius=radius)
    )
    readout = construction and named_or_finite(lambda: construction.run(points, means))
    if readout is None:
        return
    reference = lloyd(points, means, 2)[-1]
    np.testing.assert_array_equal(readout.labels[0].numpy(), reference.labels)
    assert np.abs(readout.means[0].numpy() - reference.means).max() <= 64 * EPS * radius


def test_a_reader_leaving_early_does_not_turn_a_pass_into_a_failure():
    """``tfconstruct bounds | head -1``: the pipe closes before the output is written; the exit status stays 0."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; from tfconstruct.verify.cli import main; sys.exit(main(['bounds']))"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child.stdout.close()
    with child.stderr:
        assert child.wait(timeout=120) == 0
        assert child.stderr.read() == b""


def test_small_refusals_found_by_a_new_user(capsys):
    with pytest.raises(ValueError, match="weights must be given as \\(lowest, highest\\)"):
        NormalisationDomain.for_weights(3.0, 1.0)
    assert main(["bounds", "--name", "bogus"]) == 2
    assert capsys.readouterr().err.startswith("tfconstruct: error: no bound named 'bogus'")
    plugin = "docs/examples/mean_family.py"
    assert main(["--plugin", plugin, "--plugin", plugin, "bounds", "--name", "power_eigenvalue_relative"]) == 0


def test_a_domain_with_a_negative_end_keeps_its_round_off_slack():
    from tfconstruct.constructions.domains import InputDomain

    domain = InputDomain("z", -1.0, 2.0)
    inside = torch.tensor([[[-1.0 - 5e-10], [2.0 + 1e-9]]], dtype=torch.float64)
    assert domain.outside(inside) == []
    assert domain.outside(torch.tensor([[[-1.0 - 1e-6], [0.0]]], dtype=torch.float64)) == [(0, -1.0 - 1e-6)]


def test_the_lens_module_without_its_extra_says_how_to_install_it():
    import importlib.util

    if importlib.util.find_spec("transformer_lens") is not None:
        pytest.skip("the extra is installed here; its own tests cover the module")
    with pytest.raises(ImportError, match=r"optional extra 'lens'\): pip install -e \"\.\[lens\]\""):
        import tfconstruct.verify.lens  # noqa: F401
