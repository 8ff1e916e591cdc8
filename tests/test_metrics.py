"""Metrics against closed forms (Gaussian PDFs, one-bin PDFs) and against plain numpy."""

import numpy as np
import pytest
from scipy import stats

from deepdip import metrics
from deepdip.errors import DeepdipError
from deepdip.zgrid import ZGrid


def binned_gaussians(grid, mu, sigma):
    """Exact bin probabilities of N(mu_i, sigma) on the grid."""
    return np.diff(stats.norm.cdf((grid.edges[None, :] - mu[:, None]) / sigma), axis=1)


@pytest.fixture(scope="module")
def gaussian_case():
    grid = ZGrid(0.2, 1.8, 1000)  # bins 30x narrower than sigma; mu is 6 sigma inside the grid
    rng = np.random.default_rng(42)
    n, sigma = 2500, 0.05
    mu = rng.uniform(0.5, 1.5, n)
    z_spec = rng.normal(mu, sigma)  # drawn from the PDFs themselves: perfectly calibrated
    return grid, mu, sigma, z_spec, binned_gaussians(grid, mu, sigma)


def test_gaussian_point_estimates(gaussian_case):
    grid, mu, sigma, _, pdf = gaussian_case
    pe = metrics.point_estimates(pdf, grid)
    np.testing.assert_allclose(pe["z_mean"], mu, atol=1e-9)
    np.testing.assert_allclose(pe["z_median"], mu, atol=1e-6)
    np.testing.assert_allclose(pe["z_std"], sigma, rtol=1e-4)
    np.testing.assert_allclose(pe["z_mode"], mu, atol=grid.width)
    half_width = sigma * stats.norm.ppf(0.84)
    np.testing.assert_allclose(pe["z_lo68"], mu - half_width, atol=1e-5)
    np.testing.assert_allclose(pe["z_hi68"], mu + half_width, atol=1e-5)


def test_gaussian_pit_is_uniform_and_coverage_nominal(gaussian_case):
    grid, mu, sigma, z_spec, pdf = gaussian_case
    pit = metrics.pit_values(pdf, grid, z_spec)
    # Linear interpolation of the CDF inside a bin errs by at most w^2 max|f'| / 8, f' <= phi(1)/sigma^2.
    interpolation_error = grid.width**2 / 8 * stats.norm.pdf(1.0) / sigma**2
    np.testing.assert_allclose(pit, stats.norm.cdf((z_spec - mu) / sigma), rtol=0, atol=1.01 * interpolation_error)
    assert stats.kstest(pit, "uniform").pvalue > 1e-3
    assert metrics.pit_ks(pit) == pytest.approx(stats.kstest(pit, "uniform").statistic)
    n = len(pit)
    for level, nominal in ((68, 0.68), (95, 0.95)):
        binomial_sd = np.sqrt(nominal * (1 - nominal) / n)
        assert abs(metrics.coverage(pit, level) - nominal) < 4 * binomial_sd


def test_gaussian_crps_closed_form(gaussian_case):
    grid, mu, sigma, z_spec, pdf = gaussian_case
    x = (z_spec - mu) / sigma
    expected = sigma * (x * (2 * stats.norm.cdf(x) - 1) + 2 * stats.norm.pdf(x) - 1 / np.sqrt(np.pi))
    np.testing.assert_allclose(metrics.crps(pdf, grid, z_spec), expected, rtol=1e-4)  # binning effects only


def test_gaussian_cde_loss_closed_form(gaussian_case):
    """For calibrated Gaussians both CDE terms equal 1/(2 sqrt(pi) sigma): loss = -1/(2 sqrt(pi) sigma)."""
    grid, mu, sigma, z_spec, pdf = gaussian_case
    density_at_z = stats.norm.pdf(z_spec, mu, sigma)
    expected = 1 / (2 * np.sqrt(np.pi) * sigma) - 2 * density_at_z.mean()
    assert metrics.cde_loss(pdf, grid, z_spec) == pytest.approx(expected, rel=1e-3)


def test_one_bin_pdf_uses_bin_centres():
    grid = ZGrid(0.0, 0.4, 8)
    k = np.array([0, 3, 7])
    pdf = np.eye(grid.nbins)[k] * 5.0  # unnormalised on purpose
    pe = metrics.point_estimates(pdf, grid)
    lower = grid.edges[k]
    np.testing.assert_allclose(pe["z_mean"], lower + grid.width / 2)  # centres, not left edges
    np.testing.assert_allclose(pe["z_median"], lower + grid.width / 2)
    np.testing.assert_allclose(pe["z_mode"], lower + grid.width / 2)
    np.testing.assert_allclose(pe["z_std"], grid.width / np.sqrt(12))
    np.testing.assert_allclose(pe["z_lo68"], lower + 0.16 * grid.width)
    np.testing.assert_allclose(pe["z_hi68"], lower + 0.84 * grid.width)
    # Uniform density on [a, a + w] scored at its lower edge: integral of (u/w - 1)^2 = w / 3.
    np.testing.assert_allclose(metrics.crps(pdf, grid, lower), grid.width / 3)


def independent_scores(pdf, grid, z):
    """PIT, CRPS, quantiles and CDE terms by plain numpy: np.interp and numerical integration."""
    prob = pdf / pdf.sum()
    cum = np.concatenate([[0.0], np.cumsum(prob)])
    pit = np.interp(z, grid.edges, cum)
    # Integrate either side of the step at z separately so the trapezoid rule stays accurate.
    below = np.linspace(min(grid.zmin, z) - 0.1, z, 200001)
    above = np.linspace(z, max(grid.zmax, z) + 0.1, 200001)
    crps = np.trapezoid(np.interp(below, grid.edges, cum) ** 2, below) + np.trapezoid(
        (np.interp(above, grid.edges, cum) - 1) ** 2, above)
    quantiles = {q: np.interp(q, cum, grid.edges) for q in (0.16, 0.3, 0.5, 0.84)}
    inside = grid.zmin <= z < grid.zmax
    f_at_z = prob[int((z - grid.zmin) // grid.width)] / grid.width if inside else 0.0
    return pit, crps, quantiles, np.sum(prob**2) / grid.width, f_at_z


def test_against_independent_numpy():
    grid = ZGrid(0.1, 1.3, 24)
    rng = np.random.default_rng(7)
    n = 40
    pdf = rng.gamma(0.5, size=(n, grid.nbins)) + 1e-3  # lumpy but strictly positive
    z = rng.uniform(0.0, 1.45, n)  # some below and above the grid
    ref = [independent_scores(pdf[i], grid, z[i]) for i in range(n)]
    np.testing.assert_allclose(metrics.pit_values(pdf, grid, z), [r[0] for r in ref], atol=1e-12)
    np.testing.assert_allclose(metrics.crps(pdf, grid, z), [r[1] for r in ref], rtol=1e-6, atol=1e-9)
    pe = metrics.point_estimates(pdf, grid)
    for key, q in (("z_lo68", 0.16), ("z_median", 0.5), ("z_hi68", 0.84)):
        np.testing.assert_allclose(pe[key], [r[2][q] for r in ref], atol=1e-12)
    np.testing.assert_allclose(metrics.quantile(pdf, grid, 0.3), [r[2][0.3] for r in ref], atol=1e-12)
    prob = pdf / pdf.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(pe["z_mean"], prob @ grid.centres)
    expected_cde = np.mean([r[3] for r in ref]) - 2 * np.mean([r[4] for r in ref])
    assert metrics.cde_loss(pdf, grid, z) == pytest.approx(expected_cde, rel=1e-12)


def test_chunking_does_not_change_results():
    grid = ZGrid(0.0, 1.0, 30)
    rng = np.random.default_rng(3)
    pdf, z = rng.random((101, 30)), rng.uniform(0, 1, 101)
    for func in (metrics.pit_values, metrics.crps):
        np.testing.assert_array_equal(func(pdf, grid, z, chunk_size=7), func(pdf, grid, z))
    small, whole = metrics.point_estimates(pdf, grid, chunk_size=7), metrics.point_estimates(pdf, grid)
    for key in whole:
        np.testing.assert_allclose(small[key], whole[key], rtol=1e-14)  # BLAS summation order


def test_point_metrics_by_hand():
    z_spec = np.array([0.0, 0.0, 1.0, 1.0, 0.5])
    dz = np.array([0.01, 0.06, -0.07, 0.02, 0.0])  # two outliers beyond 0.05
    z_phot = z_spec + dz * (1 + z_spec)
    np.testing.assert_allclose(metrics.delta_z(z_phot, z_spec), dz, atol=1e-15)
    assert metrics.outlier_frac(z_phot, z_spec) == pytest.approx(0.4)
    assert metrics.outlier_frac(z_phot, z_spec, threshold=0.065) == pytest.approx(0.2)
    assert metrics.bias(z_phot, z_spec) == pytest.approx(np.mean(dz))
    assert metrics.bias_median(z_phot, z_spec) == pytest.approx(0.01)
    # median 0.01; |dz - 0.01| = .00 .05 .08 .01 .01 -> median 0.01
    assert metrics.sigma_mad(z_phot, z_spec) == pytest.approx(1.4826 * 0.01)


def test_compute_metrics_skips_unknown_z_spec():
    grid = ZGrid(0.0, 1.0, 20)
    rng = np.random.default_rng(5)
    pdf, z_spec = rng.random((60, 20)), rng.uniform(0, 1, 60)
    z_phot = metrics.point_estimates(pdf, grid)["z_mean"]
    z_spec_missing = z_spec.copy()
    z_spec_missing[::3] = np.nan
    keep = np.isfinite(z_spec_missing)
    got = metrics.compute_metrics(z_phot, z_spec_missing, pdf, grid)
    want = metrics.compute_metrics(z_phot[keep], z_spec[keep], pdf[keep], grid)
    assert got == want
    assert got["n"] == 40
    assert got["crps"] == pytest.approx(np.mean(metrics.crps(pdf[keep], grid, z_spec[keep])))


def test_binned_metrics_partition_the_sample():
    grid = ZGrid(0.0, 1.0, 20)
    rng = np.random.default_rng(6)
    pdf, z_spec = rng.random((90, 20)), rng.uniform(0, 1, 90)
    z_phot = metrics.point_estimates(pdf, grid)["z_mean"]
    mag = rng.uniform(18, 22, 90)
    mag[0] = np.nan  # unusable for magnitude bins
    edges = np.array([18.0, 19.5, 21.0, mag[1:].max()])
    table = metrics.binned_metrics(z_phot, z_spec, mag, edges, pdf=pdf, zgrid=grid)
    assert [row["lo"] for row in table] == list(edges[:-1])
    assert sum(row["n"] for row in table) == 89  # the maximum falls in the closed last bin
    sel = (mag >= 19.5) & (mag < 21.0)
    assert {k: v for k, v in table[1].items() if k not in ("lo", "hi")} == metrics.compute_metrics(
        z_phot[sel], z_spec[sel], pdf[sel], grid)


def test_invalid_pdfs_are_rejected():
    grid = ZGrid(0.0, 1.0, 4)
    with pytest.raises(DeepdipError, match="not valid"):
        metrics.point_estimates(np.array([[0.5, -0.1, 0.3, 0.3]]), grid)
    with pytest.raises(DeepdipError, match="not valid"):
        metrics.crps(np.zeros((1, 4)), grid, np.array([0.5]))
    with pytest.raises(DeepdipError, match=r"expected \[N, 4\]"):
        metrics.point_estimates(np.ones((2, 5)), grid)
    with pytest.raises(DeepdipError, match="2 PDFs but 3 redshifts"):
        metrics.pit_values(np.ones((2, 4)), grid, np.zeros(3))
    with pytest.raises(DeepdipError, match="NaN or infinite"):
        metrics.compute_metrics([np.nan, 0.1], [0.2, 0.1])


# -- written from mutation-testing survivors (docs/mutation-testing.md) ------------------------------
def test_compute_metrics_returns_each_metric_under_its_name():
    grid = ZGrid(0.0, 1.0, 20)
    rng = np.random.default_rng(8)
    pdf, z_spec = rng.random((70, 20)), rng.uniform(0, 1, 70)
    z_phot = metrics.point_estimates(pdf, grid)["z_mean"]
    got = metrics.compute_metrics(z_phot, z_spec, pdf, grid, outlier_threshold=0.1)
    pit = metrics.pit_values(pdf, grid, z_spec)
    want = {"n": 70, "sigma_mad": metrics.sigma_mad(z_phot, z_spec),
            "outlier_frac": metrics.outlier_frac(z_phot, z_spec, 0.1), "bias": metrics.bias(z_phot, z_spec),
            "bias_median": metrics.bias_median(z_phot, z_spec), "sigma_iqr": metrics.sigma_iqr(z_phot, z_spec),
            "outlier_frac_rail": metrics.outlier_frac_rail(z_phot, z_spec), "pit_ks": metrics.pit_ks(pit),
            "pit_cvm": metrics.pit_cvm(pit), "pit_ad": metrics.pit_ad(pit),
            "crps": float(np.mean(metrics.crps(pdf, grid, z_spec))), "coverage_68": metrics.coverage(pit, 68),
            "coverage_95": metrics.coverage(pit, 95), "cde_loss": metrics.cde_loss(pdf, grid, z_spec)}
    assert got == want
    assert got["outlier_frac"] != metrics.outlier_frac(z_phot, z_spec)   # the threshold is passed on
    assert set(metrics.compute_metrics(z_phot, z_spec)) == {"n", "sigma_mad", "outlier_frac", "bias", "bias_median",
                                                            "sigma_iqr", "outlier_frac_rail"}
    with pytest.raises(DeepdipError, match="must be 1-D of the same length"):
        metrics.compute_metrics(z_phot[:5], z_spec[:6])
    with pytest.raises(DeepdipError, match="must be 1-D of the same length"):
        metrics.compute_metrics(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(DeepdipError, match="^1 point estimate"):
        metrics.compute_metrics([np.inf, 0.1, 0.2], [0.2, 0.1, 0.2])
    with pytest.raises(ValueError, match="needs the zgrid"):
        metrics.compute_metrics(z_phot, z_spec, pdf)


def test_point_metrics_edge_cases():
    for f in (metrics.sigma_mad, metrics.outlier_frac, metrics.bias, metrics.bias_median):
        assert np.isnan(f([], []))
    assert metrics.sigma_mad([0.3], [0.1]) == 0.0 and metrics.bias([0.3], [0.0]) == pytest.approx(0.3)
    # |dz| exactly at the threshold is not an outlier (strictly greater, as in Pasquet et al.)
    assert metrics.outlier_frac([0.05, 0.0625], [0.0, 0.0]) == 0.5
    assert metrics.outlier_frac([0.05], [0.0], threshold=0.0625) == 0.0
    # float32 inputs are computed in float64 (catalogues store float32 point estimates)
    zp, zs = np.float32([0.1234567, 0.2345678, 0.3456789]), np.float32([0.1, 0.3, 0.31])
    assert metrics.delta_z(zp, zs).dtype == np.float64
    np.testing.assert_array_equal(metrics.delta_z(zp, zs), (zp.astype(np.float64) - zs) / (1.0 + zs.astype(np.float64)))
    assert metrics.sigma_mad(zp, zs) == metrics.sigma_mad(zp.astype(np.float64), zs.astype(np.float64))


def test_pdf_metric_edge_cases():
    grid = ZGrid(0.0, 1.0, 4)
    # empty input: empty arrays and NaN summaries, not errors
    for f in (metrics.cdf_at, metrics.crps):
        assert f(np.zeros((0, 4)), grid, np.zeros(0)).shape == (0,)
    assert np.isnan(metrics.cde_loss(np.zeros((0, 4)), grid, np.zeros(0)))
    assert np.isnan(metrics.pit_ks([])) and np.isnan(metrics.coverage([], 68))
    # one row: a real CDE loss (1 galaxy is not "no galaxy")
    assert metrics.cde_loss(np.array([[0, 1.0, 0, 0]]), grid, np.array([0.3])) == pytest.approx(4.0 - 8.0)
    # the median of a PDF with an empty gap is the lowest z where the CDF reaches 1/2
    assert metrics.quantile(np.array([[0.5, 0.0, 0.0, 0.5]]), grid, 0.5)[0] == pytest.approx(0.25)
    for q in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"quantile level must be in \(0, 1\)"):
            metrics.quantile(np.ones((1, 4)), grid, q)
    # interval ends belong to the interval
    assert metrics.coverage([0.16, 0.84, 0.5, 0.1599], 68) == 0.75
    assert metrics.coverage([0.025, 0.975, 0.99], 95) == pytest.approx(2 / 3)
    # the density at z: zmin is inside the grid, zmax is not
    one = np.array([[0.25, 0.25, 0.25, 0.25]] * 2)
    assert metrics.cde_loss(one, grid, np.array([0.0, 0.0])) == pytest.approx(1.0 - 2.0)
    assert metrics.cde_loss(one, grid, np.array([1.0, 1.0])) == pytest.approx(1.0)
    # float32 PIT values give the float64 statistic
    pit = np.float32([0.1, 0.5, 0.7, 0.33333334])
    assert metrics.pit_ks(pit) == stats.kstest(pit.astype(np.float64), "uniform").statistic


def test_invalid_rows_are_counted_and_named():
    pdf = np.ones((5, 4))
    pdf[2, 1] = -0.5
    with pytest.raises(DeepdipError, match=r"^1 PDF row\(s\) are not valid .*e\.g\. row 2$"):
        metrics.normalise(pdf)
    pdf[4] = 0.0
    with pytest.raises(DeepdipError, match=r"^2 PDF row\(s\).*e\.g\. row 2$"):
        metrics.normalise(pdf)
    assert metrics.normalise(np.float32([[1, 1, 2, 0]])).dtype == np.float64


def test_binned_metrics_edges_and_bins():
    grid = ZGrid(0.0, 1.0, 10)
    rng = np.random.default_rng(9)
    n = 60
    pdf, z_spec = rng.random((n, 10)), rng.uniform(0, 1, n)
    z_phot = metrics.point_estimates(pdf, grid)["z_mean"]
    by = np.round(rng.uniform(0, 3, n), 1)
    by[:3] = [0.0, 3.0, np.nan]              # both ends, and a row with no value
    z_spec[3] = np.nan                        # a row with no z_spec
    by[4] = 5.0                               # outside the explicit edges below
    table = metrics.binned_metrics(z_phot, z_spec, by, [0.0, 1.0, 2.0, 3.0], pdf=pdf, zgrid=grid,
                                   outlier_threshold=0.2)
    assert [(r["lo"], r["hi"]) for r in table] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    for r in table:
        in_bin = (by >= r["lo"]) & ((by < r["hi"]) | ((r["hi"] == 3.0) & (by == 3.0)))   # the last bin is closed
        sel = np.isfinite(by) & np.isfinite(z_spec) & in_bin
        want = metrics.compute_metrics(z_phot[sel], z_spec[sel], pdf[sel], grid, outlier_threshold=0.2)
        assert {k: v for k, v in r.items() if k not in ("lo", "hi")} == want
    assert sum(r["n"] for r in table) == n - 3   # NaN by, NaN z_spec and the row outside left out
    # A number of bins: equal widths over the usable rows (rows without z_spec do not set the range)
    by2 = by.copy()
    by2[3] = -10.0                          # its z_spec is NaN: must not stretch the range
    auto = metrics.binned_metrics(z_phot, z_spec, by2, 4)
    usable = np.isfinite(by2) & np.isfinite(z_spec)
    assert len(auto) == 4 and auto[0]["lo"] == by2[usable].min() and auto[-1]["hi"] == by2[usable].max()
    assert sum(r["n"] for r in auto) == usable.sum()
    # One value only: one unit-wide range; nothing usable: no bins
    flat = metrics.binned_metrics(z_phot, z_spec, np.full(n, 2.0), 2)
    assert [(r["lo"], r["hi"]) for r in flat] == [(2.0, 2.5), (2.5, 3.0)]
    assert flat[0]["n"] == np.isfinite(z_spec).sum() and flat[1]["n"] == 0
    assert metrics.binned_metrics(z_phot, z_spec, np.full(n, np.nan), 3) == []


def test_empty_inputs_give_nan_quietly_and_chunk_size_is_honoured(monkeypatch):
    import warnings

    grid = ZGrid(0.0, 1.0, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no "mean of empty slice": the empty case is handled, not stumbled on
        for f in (metrics.sigma_mad, metrics.outlier_frac, metrics.bias, metrics.bias_median):
            assert np.isnan(f([], []))
        assert np.isnan(metrics.pit_ks([])) and np.isnan(metrics.coverage([], 95))
        got = metrics.compute_metrics([np.nan], [np.nan], np.ones((1, 4)), grid)
        assert got["n"] == 0 and np.isnan(got["crps"]) and np.isnan(got["cde_loss"])
    with pytest.raises(DeepdipError, match="2 PDFs but 1 redshifts"):
        metrics.pit_values(np.ones((2, 4)), grid, 0.5)
    # Memory is bounded by chunk_size: every PDF function works through chunks of that many rows.
    seen = []
    real = metrics._row_chunks
    monkeypatch.setattr(metrics, "_row_chunks", lambda n, size: seen.append(size) or real(n, size))
    pdf, z = np.ones((10, 4)), np.full(10, 0.3)
    metrics.cdf_at(pdf, grid, z, chunk_size=3)
    metrics.crps(pdf, grid, z, chunk_size=3)
    metrics.quantile(pdf, grid, 0.3, chunk_size=3)
    metrics.point_estimates(pdf, grid, chunk_size=3)
    metrics.cde_loss(pdf, grid, z, chunk_size=3)
    assert seen == [3] * 5


# -- RAIL/qp's definitions (issue 16): sigma_IQR, RAIL's outlier rate, median bias, PIT CvM and AD --------
def test_rail_style_point_metrics_by_hand():
    z_spec = np.zeros(8)
    dz = np.array([-0.3, -0.02, -0.01, 0.0, 0.01, 0.02, 0.07, 0.5])
    # numpy's linear percentiles: P25 = -0.0125, P75 = 0.0325 -> IQR 0.045
    assert metrics.sigma_iqr(dz, z_spec) == pytest.approx(0.045 / 1.349)
    # 3 sigma_iqr = 0.1 > 0.06: the threshold grows with the scatter, so 0.07 is not an outlier here
    assert metrics.outlier_frac_rail(dz, z_spec) == pytest.approx(2 / 8)
    assert metrics.outlier_frac(dz, z_spec) == pytest.approx(3 / 8)      # the fixed |dz| > 0.05 counts it
    narrow = np.array([-0.07, 0.0, 0.0, 0.0, 0.001, 0.002, 0.003, 0.061])
    assert metrics.outlier_frac_rail(narrow, z_spec) == pytest.approx(2 / 8)   # floor 0.06 when scatter is small
    assert metrics.bias_median(dz, z_spec) == pytest.approx(0.005) and metrics.bias(dz, z_spec) == pytest.approx(
        np.mean(dz))
    for f in (metrics.sigma_iqr, metrics.outlier_frac_rail):
        assert np.isnan(f([], []))
    assert np.isnan(metrics.pit_cvm([0.3])) and np.isnan(metrics.pit_ad([0.3])) and np.isnan(metrics.pit_ad([]))


def test_deepdip_metrics_equal_qp_and_rail_functions_on_the_same_ensemble():
    """Every statistic whose definition deepdip shares with qp (which RAIL's evaluators call) gives
    the same number on the same qp.hist ensemble: the PIT values, their KS, CvM and AD statistics,
    sigma_MAD, sigma_IQR, median bias and RAIL's outlier rate, on each of the three point estimates."""
    import warnings

    import qp
    from qp.metrics import point_estimate_metric_classes as pe
    from qp.metrics.pit import PIT

    grid = ZGrid(0.0, 0.4, 180)
    rng = np.random.default_rng(16)
    n = 400
    z_spec = rng.uniform(0.02, 0.38, n)
    mu = z_spec + rng.normal(0, 0.015, n) * (1 + z_spec)
    mu[:12] = rng.uniform(0.0, 0.4, 12)      # catastrophic outliers, so the outlier rates are not zero
    pdf = binned_gaussians(grid, mu, 0.02) + 1e-6
    point = metrics.point_estimates(pdf, grid)
    ens = qp.hist.create_ensemble(bins=grid.edges, pdfs=metrics.normalise(pdf) / grid.width)

    pit = metrics.pit_values(pdf, grid, z_spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qp_pit = PIT(ens, z_spec)
        ks, cvm = qp_pit.evaluate_PIT_KS().statistic, qp_pit.evaluate_PIT_CvM().statistic
        ad = qp_pit.evaluate_PIT_anderson_ksamp().statistic
    np.testing.assert_allclose(pit, qp_pit.pit_samps, rtol=0, atol=1e-12)
    assert metrics.pit_ks(pit) == pytest.approx(ks, rel=1e-12, abs=1e-14)
    assert metrics.pit_cvm(pit) == pytest.approx(cvm, rel=1e-10)
    assert metrics.pit_ad(pit) == pytest.approx(ad, rel=1e-10)
    for key in ("z_mean", "z_median", "z_mode"):
        zp = point[key]
        assert metrics.sigma_mad(zp, z_spec) == pytest.approx(pe.PointSigmaMAD().evaluate(zp, z_spec), rel=1e-12)
        assert metrics.sigma_iqr(zp, z_spec) == pytest.approx(pe.PointSigmaIQR().evaluate(zp, z_spec), rel=1e-12)
        assert metrics.bias_median(zp, z_spec) == pytest.approx(pe.PointBias().evaluate(zp, z_spec), abs=1e-15)
        assert metrics.outlier_frac_rail(zp, z_spec) == pe.PointOutlierRate().evaluate(zp, z_spec)
        assert metrics.outlier_frac_rail(zp, z_spec) > 0
        np.testing.assert_allclose(metrics.delta_z(zp, z_spec), pe.PointStatsEz().evaluate(zp, z_spec), atol=1e-15)
    # qp's own point estimates of a hist ensemble agree with deepdip's (mean and median exactly)
    np.testing.assert_allclose(np.squeeze(ens.mean()), point["z_mean"], atol=1e-12)
    np.testing.assert_allclose(np.squeeze(ens.median()), point["z_median"], atol=1e-9)
