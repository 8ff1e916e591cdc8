"""Fitting the PIT recalibration maps of a trained network on its validation galaxies.

See :mod:`deepdip.models.calibration` for what the maps do. Here they are fitted: the network's
PDFs of up to ``max_rows`` validation galaxies (never trained on; the test fold is never touched),
their PIT values at z_spec, and the empirical CDF of those values per band-availability pattern.
A band-mask network is fitted for every pattern: each non-empty subset of the bands is imposed on
the galaxies (the other bands' pixels zeroed, as a store holds a missing band), so a pattern no
validation galaxy has by itself is calibrated too. Any other network has one map, for the full
set of bands.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from deepdip.metrics import cdf_at, pit_ks
from deepdip.models.calibration import PitCalibration, pattern_index
from deepdip.models.normalize import bands_present
from deepdip.zgrid import ZGrid


@torch.no_grad()
def fit_pit_calibration(net, store, rows: np.ndarray, zgrid: ZGrid, *, max_rows: int = 2000, seed: int = 0,
                        batch_size: int = 256) -> dict:
    """Fit ``net.calibration`` (a :class:`PitCalibration`; created if the net has none) in place.

    Returns a report: for each pattern fitted (bands as a string, e.g. ``"griz"``), the number of
    PIT values and their KS distance from uniform before recalibration.
    """
    from deepdip.predict.core import ensemble_pdf

    rows = np.asarray(rows, dtype=np.int64)
    z = store.column("z_spec", rows)
    rows = rows[np.isfinite(z)]
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng([int(seed), 23]).choice(rows, max_rows, replace=False))
    images = torch.as_tensor(store.images(rows), dtype=torch.float32)
    extra = torch.as_tensor(store.column("ebv", rows)[:, None], dtype=torch.float32)
    z = store.column("z_spec", rows).astype(np.float64)
    bands = list(store.bands)
    net.eval()
    net.calibration = None                       # PDFs of the network itself
    calibration = PitCalibration(len(bands))
    if net.normalizer.band_mask:
        subsets = [s for k in range(1, len(bands) + 1) for s in itertools.combinations(range(len(bands)), k)]
    else:
        subsets = [tuple(range(len(bands)))]
    pits: dict[int, list[np.ndarray]] = {}
    have = bands_present(images)                                               # [n, B] what each galaxy has
    for subset in subsets:
        keep = torch.zeros(len(bands))
        keep[list(subset)] = 1.0
        x = images * keep[None, :, None, None]
        present = have * keep
        ok = present.sum(dim=1) > 0
        if not ok.any():
            continue
        pdf = ensemble_pdf([net], x[ok], extra[ok], batch_size=batch_size).numpy()
        pit = cdf_at(pdf, zgrid, z[ok.numpy()])
        patterns = pattern_index(present[ok]).numpy()
        for index in np.unique(patterns):
            pits.setdefault(int(index), []).append(pit[patterns == index])
    report = {}
    for index, parts in sorted(pits.items()):
        pit = np.concatenate(parts)
        name = "".join(b for i, b in enumerate(bands) if index >> i & 1)
        fitted = calibration.fit_pattern(index, pit)
        report[name] = {"n": int(pit.size), "pit_ks_before": float(pit_ks(pit)), "fitted": bool(fitted)}
    net.calibration = calibration
    return report
