"""``deepdip embed``: the representation a trained CNN gives every galaxy, for similarity search and anomalies.

For each galaxy of a store, the network's representation (``--layer pre_logits``: the head's last hidden
layer, what the redshift output reads; ``features``: the backbone's flattened features before the extra
scalars join), averaged over the 8 orientations with ``--tta`` (the representation of the galaxy, not of
how it lies on the detector). Written to Parquet: ``id``, ``z_spec``, ``fold``, ``embedding`` (a
fixed-size float32 list) and ``pca_1``, ``pca_2`` (the first two principal components over all the
written galaxies: a 2-D map). ``--figure map.png`` draws that map coloured by z_spec and by the
reference-band magnitude (when the store has measured fluxes).

One network embeds: a model file, or the first member of the first fold of a run (``--member`` picks
another); every galaxy gets the same network's representation, so distances compare across the store.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from deepdip.errors import DeepdipError

LAYERS = ("pre_logits", "features")
FORMAT = "deepdip-embedding"


def embed_store(run, store, out, *, rows="all", layer: str = "pre_logits", member: int = 0, tta: bool = False,
                batch_size: int = 512, figure=None, overwrite: bool = False) -> Path:
    """Write the embeddings of ``rows`` (``"all"``, ``"test"``: fold 0, or indices) of ``store`` to ``out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from sklearn.decomposition import PCA

    from deepdip.atomic import atomic_path, check_output
    from deepdip.models.dihedral import allowed_symmetries, dihedral
    from deepdip.predict.core import find_model_files, load_members
    from deepdip.store import CutoutStore
    from deepdip.store.checks import check_rows

    if layer not in LAYERS:
        raise DeepdipError(f"--layer must be one of {', '.join(LAYERS)}, got {layer!r}")
    store = store if isinstance(store, CutoutStore) else CutoutStore(store)
    check_output(out, inputs=(store.path, run), overwrite=overwrite)
    if figure:
        check_output(figure, inputs=(store.path, run, out), overwrite=overwrite)
    paths = [p for ps in find_model_files(run).values() for p in ps]
    if not 0 <= member < len(paths):
        raise DeepdipError(f"--member {member}: {run} holds {len(paths)} model file(s)")
    model = load_members([paths[member]], store)[0]        # checks bands, stamp size and flux unit
    net = model.net.eval()
    if isinstance(rows, str):
        if rows not in ("all", "test"):
            raise DeepdipError(f"--rows must be all or test, got {rows!r}")
        sel = np.arange(len(store)) if rows == "all" else np.flatnonzero(store.column("fold") == 0)
    else:
        sel = np.asarray(rows, dtype=np.int64)
    check_rows(store, sel, what="the rows to embed")
    syms = allowed_symmetries(*store.image_shape) if tta else (0,)
    chunks = []
    with torch.no_grad():
        for start in range(0, len(sel), batch_size):
            rr = sel[start:start + batch_size]
            x = torch.as_tensor(store.images(rr), dtype=torch.float32)
            e = torch.as_tensor(store.column("ebv", rr)[:, None].astype(np.float32))
            acc = None
            for k in syms:
                xn, en = net.normalizer(dihedral(x, k), e)
                feats = net.backbone.forward_features(xn)
                rep = feats if layer == "features" else net.backbone.forward_head(feats, en, pre_logits=True)
                acc = rep if acc is None else acc + rep
            assert acc is not None
            chunks.append((acc / len(syms)).float().numpy())
    emb = np.concatenate(chunks) if chunks else np.zeros((0, 1), np.float32)
    if len(emb) >= 2:
        pcs = PCA(n_components=min(2, emb.shape[1]), random_state=0).fit_transform(emb)
        pcs = np.column_stack([pcs, np.zeros((len(pcs), 2 - pcs.shape[1]))])
    else:
        pcs = np.zeros((len(emb), 2))
    cat = store.catalog(["id", "z_spec", "fold"], rows=sel)
    dim = emb.shape[1]
    table = pa.table({
        "id": cat["id"].astype(np.int64), "z_spec": cat["z_spec"].astype(np.float32),
        "fold": cat["fold"].astype(np.int8),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.astype(np.float32).ravel()), dim),
        "pca_1": pcs[:, 0].astype(np.float32), "pca_2": pcs[:, 1].astype(np.float32)})
    meta = {"format": FORMAT, "run": str(run), "model": str(paths[member]), "layer": layer, "tta": bool(tta),
            "dim": int(dim), "store": str(store.path)}
    table = table.replace_schema_metadata({b"deepdip": json.dumps(meta).encode()})
    with atomic_path(out, suffix=".parquet", overwrite=overwrite, inputs=(store.path,)) as tmp:
        pq.write_table(table, tmp)
    if figure:
        _map_figure(store, sel, pcs, cat["z_spec"], figure, overwrite)
    return Path(out)


def _map_figure(store, rows, pcs, z, path, overwrite: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepdip.atomic import atomic_path

    panels = [("z_spec", np.asarray(z, dtype=np.float64))]
    ref = "r" if "r" in store.bands else store.bands[len(store.bands) // 2]
    if f"flux_{ref}" in store.columns:
        flux = store.column(f"flux_{ref}", rows).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            panels.append((f"{ref} (measured, AB)", np.where(flux > 0, 22.5 - 2.5 * np.log10(flux), np.nan)))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False)
    for ax, (label, values) in zip(axes[0], panels, strict=True):
        ok = np.isfinite(values)
        art = ax.scatter(pcs[ok, 0], pcs[ok, 1], c=values[ok], s=3, cmap="viridis", rasterized=True)
        fig.colorbar(art, ax=ax, label=label)
        ax.set_xlabel("PCA 1")
        ax.set_ylabel("PCA 2")
        ax.set_title(f"CNN representation, coloured by {label.split(' ')[0]}")
    fig.tight_layout()
    with atomic_path(path, suffix=".png", overwrite=overwrite, inputs=(store.path,)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[1].replace("\n", " ")
    parser.add_argument("run", help="run directory written by the train command (or a single model.pt)")
    parser.add_argument("store", help="cutout store (.h5 file or folder of shards)")
    parser.add_argument("--out", required=True, help="embeddings to write (.parquet)")
    parser.add_argument("--rows", default="all", choices=("all", "test"), help="all galaxies, or fold 0 [all]")
    parser.add_argument("--layer", default="pre_logits", choices=LAYERS,
                        help="pre_logits: the head's last hidden layer; features: the backbone's [pre_logits]")
    parser.add_argument("--member", type=int, default=0, help="which model file of the run embeds [0]")
    parser.add_argument("--tta", action="store_true", help="average the representation over the 8 orientations")
    parser.add_argument("--batch-size", type=int, default=512, help="galaxies per forward pass [512]")
    parser.add_argument("--figure", default=None, help="also draw the 2-D PCA map (.png)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args) -> int:
    from deepdip.errors import check_number

    check_number("--batch-size", args.batch_size, minimum=1, integer=True, allow_none=False)
    check_number("--member", args.member, minimum=0, integer=True, allow_none=False)
    out = embed_store(args.run, args.store, args.out, rows=args.rows, layer=args.layer, member=args.member,
                      tta=args.tta, batch_size=args.batch_size, figure=args.figure, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
