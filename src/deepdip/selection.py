"""Spectroscopic selections and their remedies (issue 13): which galaxies of a store have a spec-z.

Spectroscopic training sets are never the photometric sample: brighter, colour-targeted, incomplete
where spectra fail. A mock knows every redshift, so a *selection* (a rule applied to the measured
photometry, seeded) says which galaxies a spectrograph would have labelled; ``deepdip train`` and
``deepdip baseline`` with ``--labelled SEL.parquet`` train on those only, and the damage (and a
remedy's repair) is measured on the whole photometric sample.

Rules (:func:`select`), clauses joined by ``&`` and applied in order to the galaxies still selected:

- ``random:F`` (0 < F < 1) or ``random:N``: a random fraction, or N galaxies (the representative case);
- ``mag:r<17.0``: measured (dereddened) magnitude brighter than a limit (``>`` for fainter);
- ``colour:g-r<0.7`` (``>`` too), or the named targets ``colour:lrg`` (SDSS luminous red galaxies,
  Eisenstein et al. 2001 cut I: |c_perp| < 0.2 and r < 13.1 + c_par / 0.3) and ``colour:elg`` (DESI's
  emission-line colour box, Raichoor et al. 2023: 0.3 < r - z < 1.6, g - r < 1.15 (r - z) - 0.15,
  g - r < 1.6 - 1.2 (r - z));
- ``success:r50=17.5,width=0.3`` (band first): each galaxy keeps its redshift with probability
  1 / (1 + exp((m - m50) / width)), times the same logistic in the mean surface brightness within the
  measured half-light radius (``sb50=``, ``sbwidth=``, mag/arcsec^2; needs ``hlr_meas``) if given;
- ``max:N``: at most N galaxies (a random subset of those selected): the small training sets;
- ``!`` before a clause negates it: ``!colour:lrg`` is every galaxy the LRG cut leaves out (e.g. to
  mark which generated galaxies fill a colour-targeted training set's gap).

The selection file (Parquet) holds ``id`` and ``labelled`` for every galaxy of the store and, in its
metadata, the rule, the seed and the store; the same rule and seed always give the same file.

Remedies: :func:`training_weights` (``--reweight lima`` / ``zbalance``) weights the labelled training
galaxies so that they stand for the photometric sample (Lima et al. 2008) or for a flat n(z).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from deepdip.errors import DeepdipValueError

SELECTION_FORMAT = "deepdip-selection"
REWEIGHT_CHOICES = ("none", "lima", "zbalance")
#: Neighbours of the Lima et al. (2008) density-ratio estimate (their choice was a few to ~10).
LIMA_K = 10
#: Weights are clipped to this many times their mean, so that a few labelled galaxies standing alone
#: in a sparsely labelled region do not dominate a training set (an unbounded ratio's variance).
MAX_WEIGHT = 20.0

_CMP = re.compile(r"^\s*([A-Za-z]+)\s*-\s*([A-Za-z]+)\s*([<>])\s*([-+0-9.eE]+)\s*$")
_MAG = re.compile(r"^\s*([A-Za-z]+)\s*([<>])\s*([-+0-9.eE]+)\s*$")


def _magnitudes(store, rows=None) -> dict[str, np.ndarray]:
    """Dereddened measured AB magnitudes per band (NaN where not observed or flux <= 0)."""
    from deepdip.photometry import Photometry
    from deepdip.photometry.units import flux_to_mag

    phot = Photometry.from_store(store, rows)
    flux, _ = phot.dereddened()
    with np.errstate(divide="ignore", invalid="ignore"):
        mags = np.where(flux > 0, flux_to_mag(np.where(flux > 0, flux, 1.0)), np.nan)
    return {b: mags[:, i] for i, b in enumerate(phot.bands)}


def _need(mags: dict, clause: str, *bands) -> None:
    missing = [b for b in bands if b not in mags]
    if missing:
        raise DeepdipValueError(f"selection rule {clause!r}: the store has no band {', '.join(missing)} "
                                f"(bands: {''.join(mags)})")


def _number(text: str, clause: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DeepdipValueError(f"selection rule {clause!r}: {text!r} is not a number") from None


def _colour_clause(arg: str, mags: dict, clause: str) -> np.ndarray:
    if arg == "lrg":
        _need(mags, clause, "g", "r", "i")
        g, r, i = mags["g"], mags["r"], mags["i"]
        c_par = 0.7 * (g - r) + 1.2 * (r - i - 0.18)
        c_perp = (r - i) - (g - r) / 4.0 - 0.18
        return (np.abs(c_perp) < 0.2) & (r < 13.1 + c_par / 0.3)
    if arg == "elg":
        _need(mags, clause, "g", "r", "z")
        gr, rz = mags["g"] - mags["r"], mags["r"] - mags["z"]
        return (rz > 0.3) & (rz < 1.6) & (gr < 1.15 * rz - 0.15) & (gr < 1.6 - 1.2 * rz)
    m = _CMP.match(arg)
    if not m:
        raise DeepdipValueError(f"selection rule {clause!r}: expected colour:lrg, colour:elg or colour:g-r<0.7")
    a, b, op, value = m.group(1), m.group(2), m.group(3), _number(m.group(4), clause)
    _need(mags, clause, a, b)
    colour = mags[a] - mags[b]
    return colour < value if op == "<" else colour > value


def _logistic_keep(x: np.ndarray, x50: float, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(np.clip((x - x50) / width, -50, 50)))


def _success_clause(arg: str, mags: dict, store, rng, clause: str) -> np.ndarray:
    fields = dict(part.split("=", 1) for part in arg.split(",") if "=" in part)
    band = next((k[:-2] for k in fields if k.endswith("50") and k != "sb50"), None)
    if band is None or "width" not in fields:
        raise DeepdipValueError(f"selection rule {clause!r}: expected success:<band>50=MAG,width=W"
                                "[,sb50=MU,sbwidth=W]")
    _need(mags, clause, band)
    width = _number(fields["width"], clause)
    if width <= 0:
        raise DeepdipValueError(f"selection rule {clause!r}: width must be positive")
    mag = mags[band]
    p = _logistic_keep(mag, _number(fields[f"{band}50"], clause), width)
    if "sb50" in fields:
        if "hlr_meas" not in store.columns:
            raise DeepdipValueError(f"selection rule {clause!r}: sb50 needs the measured half-light radius "
                                    "column hlr_meas")
        sbw = _number(fields.get("sbwidth", "0.5"), clause)
        if sbw <= 0:
            raise DeepdipValueError(f"selection rule {clause!r}: sbwidth must be positive")
        hlr = np.maximum(store.column("hlr_meas").astype(np.float64), 1e-3)
        sb = mag + 2.5 * np.log10(2.0 * np.pi * hlr ** 2)          # mean within the half-light radius
        p = p * _logistic_keep(sb, _number(fields["sb50"], clause), sbw)
    p = np.nan_to_num(p, nan=0.0)
    return rng.random(len(p)) < p


def select(store, rule: str, seed: int = 0) -> np.ndarray:
    """bool ``[N]``: which galaxies of ``store`` the rule labels (see the module docstring).

    Deterministic in (store, rule, seed). A galaxy is never labelled unless it has a z_spec in the
    store. Raises :class:`DeepdipValueError` naming the clause for a rule it cannot read.
    """
    if not isinstance(rule, str) or not rule.strip():
        raise DeepdipValueError("a selection rule is needed, e.g. 'mag:r<17.0' or 'random:3000' (see --help)")
    rng = np.random.default_rng([int(seed), 13])
    n = len(store)
    selected = np.isfinite(store.column("z_spec").astype(np.float64))
    mags: dict | None = None
    for clause in (c.strip() for c in rule.split("&")):
        negate = clause.startswith("!")
        kind, _, arg = clause.lstrip("!").partition(":")
        kind, arg = kind.strip().lower(), arg.strip()
        if kind in ("mag", "colour", "color", "success") and mags is None:
            mags = _magnitudes(store)
        if kind == "random":
            value = _number(arg, clause)
            if value <= 0 or (value >= 1 and value != int(value)):
                raise DeepdipValueError(f"selection rule {clause!r}: a fraction in (0, 1) "
                                        "or a whole number of galaxies")
            keep = rng.random(n) < value if value < 1 else _first_n(selected, int(value), rng)
        elif kind == "max":
            value = _number(arg, clause)
            if value < 1 or value != int(value):
                raise DeepdipValueError(f"selection rule {clause!r}: max:N needs a whole number N >= 1")
            keep = _first_n(selected, int(value), rng)
        elif kind == "mag":
            assert mags is not None
            m = _MAG.match(arg)
            if not m:
                raise DeepdipValueError(f"selection rule {clause!r}: expected mag:<band><LIMIT or >LIMIT, "
                                        "e.g. mag:r<17.0")
            band, op, value = m.group(1), m.group(2), _number(m.group(3), clause)
            _need(mags, clause, band)
            keep = mags[band] < value if op == "<" else mags[band] > value
        elif kind in ("colour", "color"):
            assert mags is not None
            keep = _colour_clause(arg, mags, clause)
        elif kind == "success":
            assert mags is not None
            keep = _success_clause(arg, mags, store, rng, clause)
        else:
            raise DeepdipValueError(f"unknown selection clause {clause!r}; use random:, mag:, colour:, success: "
                                    "or max:, joined by &")
        keep = np.asarray(keep, dtype=bool)
        selected &= ~keep if negate else keep
    return selected


def _first_n(selected: np.ndarray, n: int, rng) -> np.ndarray:
    """A random subset of ``n`` of the selected galaxies (all of them if fewer)."""
    keep = np.zeros(len(selected), dtype=bool)
    idx = np.flatnonzero(selected)
    keep[rng.permutation(idx)[:n]] = True
    return keep


# ------------------------------------------------------------------------------------- files
def write_selection(store, labelled: np.ndarray, out, *, rule: str, seed: int, overwrite: bool = False) -> Path:
    """Write the selection file (``id``, ``labelled`` for every galaxy) atomically to ``out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deepdip.atomic import atomic_path, check_output

    check_output(out, inputs=(store.path,), overwrite=overwrite)
    meta = {"format": SELECTION_FORMAT, "rule": rule, "seed": int(seed), "store": str(store.path),
            "n": int(len(labelled)), "n_labelled": int(np.sum(labelled))}
    table = pa.table({"id": store.column("id").astype(np.int64), "labelled": np.asarray(labelled, dtype=bool)})
    table = table.replace_schema_metadata({b"deepdip": json.dumps(meta).encode()})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    return Path(out)


def read_selection(path, store) -> np.ndarray:
    """bool ``[N]`` in ``store``'s row order from a selection file; refuses a file of another store."""
    ids, labelled = selection_table(path)
    store_ids = store.column("id")
    if len(ids) != len(store_ids) or not np.array_equal(np.sort(ids), np.sort(store_ids)):
        raise DeepdipValueError(f"selection file {path} is for another store (its ids differ from {store.path}'s)")
    order = np.argsort(ids)
    return labelled[order][np.searchsorted(ids[order], store_ids)].astype(bool)


def selection_table(path) -> tuple[np.ndarray, np.ndarray]:
    """A selection file's ``id`` and ``labelled`` columns, read without its store (checked: one-line errors)."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {}).get(b"deepdip", b"{}"))
    except FileNotFoundError:
        raise DeepdipValueError(f"no selection file {path}") from None
    except Exception as exc:  # noqa: BLE001 - not Parquet, truncated, bad metadata: one message
        raise DeepdipValueError(f"{path} is not a readable selection file: {str(exc).splitlines()[0]}") from None
    if meta.get("format") != SELECTION_FORMAT or not {"id", "labelled"} <= set(table.column_names):
        raise DeepdipValueError(f"{path} is not a deepdip selection file (write one with deepdip select)")
    return table.column("id").to_numpy(), table.column("labelled").to_numpy(zero_copy_only=False).astype(bool)


# ------------------------------------------------------------------------------------- remedies
def augment_rows(store, other_path, labelled=None, *, pixels: bool = False):
    """The store at ``other_path`` and its rows that join ``store``'s training set (``--augment-store``):
    galaxies with a z_spec, labelled by the selection file ``labelled`` if given. E.g. galaxies generated
    for the region a spectroscopic selection leaves out, or another survey's spectra. Refused (one line
    naming the problem) when its bands differ or, with ``pixels`` (a CNN reads them), its stamp size or
    flux unit; or when no galaxy is left to add."""
    from deepdip.store import CutoutStore

    other = CutoutStore(other_path)
    what = f"--augment-store {other.path}"
    if list(other.bands) != list(store.bands):
        raise DeepdipValueError(f"{what}: bands {''.join(other.bands)} differ from the store's {''.join(store.bands)}")
    if pixels and tuple(other.image_shape) != tuple(store.image_shape):
        raise DeepdipValueError(f"{what}: stamps of {other.image_shape[0]} px, the store's are "
                                f"{store.image_shape[0]} px")
    if pixels and other.flux_unit != store.flux_unit:
        raise DeepdipValueError(f"{what}: pixels in {other.flux_unit}, the store's in {store.flux_unit}")
    keep = np.isfinite(other.column("z_spec").astype(np.float64))
    if labelled:
        keep &= read_selection(labelled, other)
    rows = np.flatnonzero(keep)
    if not len(rows):
        raise DeepdipValueError(f"{what}: no galaxy with a z_spec (and labelled) to add")
    return other, rows


def training_weights(method: str, store, labelled_rows: np.ndarray, target_rows: np.ndarray,
                     z_spec: np.ndarray | None = None, zgrid=None, k: int = LIMA_K) -> np.ndarray:
    """Positive, finite weights (mean 1) of the labelled training galaxies ``labelled_rows``.

    ``lima``: the density ratio target / labelled in measured photometry (reference luptitude and
    adjacent colours, each scaled by its spread in the target): for each labelled galaxy, the number
    of ``target_rows`` galaxies within the distance of its ``k``-th labelled neighbour, over ``k``,
    times N_labelled / N_target (Lima et al. 2008, eq. 24). ``zbalance``: 1 / n(z) of the labelled
    galaxies in the redshift bins of ``zgrid`` (a flat labelled n(z); for bins with few galaxies).
    ``none``: ones. Weights are clipped to :data:`MAX_WEIGHT` times their mean and renormalised.
    """
    labelled_rows = np.asarray(labelled_rows, dtype=np.int64)
    n = len(labelled_rows)
    if method == "none" or n == 0:
        return np.ones(n)
    if method == "lima":
        from sklearn.neighbors import KDTree, NearestNeighbors

        from deepdip.baselines.features import ColourFeatures
        from deepdip.photometry import Photometry

        phot_l = Photometry.from_store(store, labelled_rows)
        phot_t = Photometry.from_store(store, np.asarray(target_rows, dtype=np.int64))
        feats = ColourFeatures(_ref_band(store)).fit(phot_t)
        x_l, x_t = feats.transform(phot_l), feats.transform(phot_t)
        scale = np.nanstd(x_t, axis=0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        x_l, x_t = np.nan_to_num(x_l / scale), np.nan_to_num(x_t / scale)
        kk = min(k, n)
        radius = NearestNeighbors(n_neighbors=kk).fit(x_l).kneighbors(x_l)[0][:, -1]     # includes itself
        n_target = KDTree(x_t).query_radius(x_l, r=np.maximum(radius, 1e-9), count_only=True).astype(np.float64)
        w = (n_target / len(x_t)) / (kk / n)
    elif method == "zbalance":
        if z_spec is None or zgrid is None:
            raise DeepdipValueError("--reweight zbalance needs the labelled redshifts and the redshift bins")
        bins = zgrid.bin_index(z_spec)
        counts = np.bincount(bins, minlength=zgrid.nbins).astype(np.float64)
        w = 1.0 / counts[bins]
    else:
        raise DeepdipValueError(f"--reweight must be one of {', '.join(REWEIGHT_CHOICES)}, got {method!r}")
    w = np.where(np.isfinite(w), w, 0.0)
    mean = w.mean() if w.mean() > 0 else 1.0
    w = np.clip(w / mean, 1.0 / (MAX_WEIGHT * 10), MAX_WEIGHT)
    return w / w.mean()


def _ref_band(store) -> str:
    bands = list(store.bands)
    return "i" if "i" in bands else ("r" if "r" in bands else bands[len(bands) // 2])


def prior_shift(pdf: np.ndarray, train_prior: np.ndarray, *, smooth_bins: float = 2.0, max_iter: int = 500,
                tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """PDFs re-weighted to the target sample's own redshift prior (label-shift correction by EM,
    Saerens, Latinne & Decaestecker 2002), with the prior estimated from the target's PDFs alone.

    An estimator trained on labelled galaxies with redshift distribution ``train_prior`` (on the PDFs'
    bins: counts or fractions) gives p_s(z|x). Pass the estimator's *implied* prior, its stacked PDF over
    held-out labelled galaxies, rather than their z_spec histogram: EM needs posteriors consistent with
    the prior they are divided by, and an estimator's PDFs are broader than the histogram (measured in
    docs/training-sets.md: with the histogram the correction wrecks even a representative training set).
    If the target's n(z), π_t, differs but p(x|z) is the same, p_t(z|x) ∝ p_s(z|x) π_t(z) / π_s(z); π_t is
    the fixed point of π_t = mean over the target of p_t(z|x) (the maximum-likelihood mixture weights).
    Both priors are smoothed with a Gaussian of ``smooth_bins`` bins (a histogram of a few thousand
    redshifts on 180 bins is mostly noise, which the ratio would imprint on every PDF); bins the training
    set never reached keep a floor (1 % of a flat prior) and the ratio is bounded by :data:`MAX_WEIGHT`,
    because an estimator's PDFs carry mass where its training set had none (smoothing, regularisation)
    that an unbounded ratio would blow up into a spike. Returns the corrected PDFs (rows sum to 1) and π_t.

    Exact for a training set unbalanced *in z* only: where the selection also changes p(x|z) (a
    magnitude limit: the faint galaxies at a given z are missing; a colour cut) it corrects the prior,
    not the likelihood (docs/training-sets.md measures both cases).
    """
    from scipy.ndimage import gaussian_filter1d

    pdf = np.asarray(pdf, dtype=np.float64)
    prior = np.asarray(train_prior, dtype=np.float64)
    if pdf.ndim != 2 or prior.shape != (pdf.shape[1],):
        raise DeepdipValueError(f"prior_shift: PDFs [N, {pdf.shape[-1]}] need a training prior of {pdf.shape[-1]} "
                                f"bins, got {prior.shape}")
    if not (np.all(np.isfinite(prior)) and np.all(prior >= 0) and prior.sum() > 0):
        raise DeepdipValueError("prior_shift: the training prior must be finite, non-negative and not all zero")

    def smoothed(p):
        p = gaussian_filter1d(p / p.sum(), smooth_bins, mode="nearest") if smooth_bins > 0 else p / p.sum()
        p = np.maximum(p, 1e-2 / len(p))  # a floor: 1 % of a flat prior
        return p / p.sum()

    def ratio(pi_t):  # bounded as the training weights are: a bin the labels barely reach cannot take over
        return np.clip(pi_t / pi_s, 1.0 / MAX_WEIGHT, MAX_WEIGHT)

    pdf = pdf / np.maximum(pdf.sum(axis=1, keepdims=True), 1e-300)
    pi_s = smoothed(prior)
    pi_t = pi_s.copy()
    for _ in range(max_iter):
        post = pdf * ratio(pi_t)
        post /= np.maximum(post.sum(axis=1, keepdims=True), 1e-300)
        new = smoothed(post.mean(axis=0))
        done = np.abs(new - pi_t).max() < tol
        pi_t = new
        if done:
            break
    post = pdf * ratio(pi_t)
    return post / np.maximum(post.sum(axis=1, keepdims=True), 1e-300), pi_t


def prior_shift_catalog(catalog, out, reference_pdf: np.ndarray, *, smooth_bins: float = 2.0,
                        provenance: dict | None = None, overwrite: bool = False, inputs=()):
    """Write ``catalog`` (a :class:`deepdip.catalog.PhotozCatalog`) to ``out`` with its PDFs moved to its
    own sample's prior by :func:`prior_shift`.

    ``reference_pdf`` holds the estimator's PDFs of held-out labelled galaxies (rows on the catalogue's
    grid); their mean is the estimator's implied prior. Every other column of the catalogue is kept; the
    method becomes ``<method>+prior`` and the config records ``provenance`` (what the reference was) and
    the smoothing. ``inputs``: files ``out`` must not be (e.g. the catalogue's own file), even with
    ``overwrite``. Returns (path written, the target prior π_t, the reference prior).
    """
    from deepdip.catalog import POINT_COLUMNS, RESERVED, write_catalog

    reference_pdf = np.asarray(reference_pdf, dtype=np.float64)
    if reference_pdf.ndim != 2:
        raise DeepdipValueError(f"prior_shift_catalog: reference_pdf must be [galaxies, bins], got shape "
                                f"{reference_pdf.shape}")
    if not len(reference_pdf):
        raise DeepdipValueError("prior_shift_catalog: no reference galaxies")
    reference_prior = reference_pdf.mean(axis=0)
    pdf, target_prior = prior_shift(catalog.pdf, reference_prior, smooth_bins=smooth_bins)
    t = catalog.table
    extra = {c: t[c].to_numpy() for c in t.columns if c not in RESERVED and c not in POINT_COLUMNS}
    config = {**catalog.config, "prior_shift": {**(provenance or {}), "n_reference": len(reference_pdf),
                                                "smooth_bins": smooth_bins}}
    path = write_catalog(out, catalog.ids, pdf, catalog.zgrid,
                         z_spec=t["z_spec"].to_numpy() if "z_spec" in t else None,
                         fold=t["fold"].to_numpy() if "fold" in t else None, method=f"{catalog.method}+prior",
                         config=config, extra=extra or None, overwrite=overwrite, inputs=inputs)
    return path, target_prior, reference_prior / reference_prior.sum()
