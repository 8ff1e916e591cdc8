"""A gallery of example cutouts beside their redshift PDFs: what a user looks at first."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepdip.atomic import atomic_path
from deepdip.catalog import read_catalog
from deepdip.store import CutoutStore


def rgb_composite(image: np.ndarray, bands: list[str]) -> np.ndarray:
    """Lupton et al. (2004) asinh colour composite from three bands (reddest as red)."""
    from astropy.visualization import make_lupton_rgb

    picks = [b for b in ("i", "r", "g") if b in bands]
    idx = [bands.index(b) for b in picks] if len(picks) == 3 else [len(bands) - 1, len(bands) // 2, 0]
    red, green, blue = (image[i] for i in idx)
    scale = np.percentile(image[idx], 99.5) or 1.0
    return make_lupton_rgb(red / scale, green / scale, blue / scale, stretch=0.5, Q=8)


def write_gallery(store_path, catalog_paths: list, out_png, n: int = 12, seed: int = 0, labels=None) -> Path:
    """Plot ``n`` random galaxies of the first catalogue: colour cutout + every catalogue's PDF.

    Galaxies are picked among the rows all catalogues share (matched by id).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store = CutoutStore(store_path)
    cats = [read_catalog(p) for p in catalog_paths]
    labels = labels or [c.method for c in cats]
    common = set(cats[0].ids.tolist())
    for c in cats[1:]:
        common &= set(c.ids.tolist())
    pick = np.random.default_rng(seed).choice(sorted(common), size=min(n, len(common)), replace=False)
    store_ids = store.column("id")
    order = np.argsort(store_ids)
    rows = order[np.searchsorted(store_ids, pick, sorter=order)]
    images = store.images(rows)
    z_spec = store.column("z_spec", rows)

    ncol = 4
    nrow = int(np.ceil(len(pick) / ncol))
    fig, axes = plt.subplots(nrow, 2 * ncol, figsize=(4.2 * ncol, 2.0 * nrow),
                             gridspec_kw={"width_ratios": [1, 1.6] * ncol}, squeeze=False)
    for k, gid in enumerate(pick):
        ax_img, ax_pdf = axes[k // ncol, 2 * (k % ncol)], axes[k // ncol, 2 * (k % ncol) + 1]
        ax_img.imshow(rgb_composite(images[k], store.bands), origin="lower")
        ax_img.set_axis_off()
        ax_img.set_title(f"id {gid}", fontsize=7)
        for cat, label in zip(cats, labels):
            i = int(np.flatnonzero(cat.ids == gid)[0])
            ax_pdf.step(cat.zgrid.centres, cat.pdf[i] / cat.zgrid.width, where="mid", lw=0.9, label=label)
        ax_pdf.axvline(z_spec[k], color="k", ls="--", lw=0.8)
        ax_pdf.set_xlim(cats[0].zgrid.zmin, cats[0].zgrid.zmax)
        ax_pdf.tick_params(labelsize=6)
        ax_pdf.set_yticks([])
    for ax in axes.flat[2 * len(pick):]:
        ax.set_axis_off()
    axes[0, 1].legend(fontsize=6, frameon=False)
    fig.suptitle("Example test-fold galaxies: gri composite and redshift PDFs (dashed: z_spec)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_png)


def save_figure(fig, out_png) -> Path:
    """Write a pyplot figure as a PNG atomically and close it (also when writing fails)."""
    import matplotlib.pyplot as plt

    out_png = Path(out_png)
    try:
        with atomic_path(out_png, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return out_png
