"""Issue 13's study: spectroscopic selections of the training set, and remedies.

On a mock store (``deepdip demo``'s: every galaxy's redshift is known), for each selection rule
(``deepdip select``: applied to every galaxy; training uses the labelled ones of the training folds)
and each remedy (``--reweight none|lima|zbalance``, and ``generated``: the galaxies of a second mock,
``--generated STORE``, that the rule's cuts leave out join the training set, ``--augment-store`` with
``--augment-labelled`` a selection ``!<cut>`` of that mock), fit a baseline (``deepdip baseline``,
``--labelled``) or the compact CNN (``--methods cnn``: ``deepdip train`` with the same options) and
evaluate it on the whole test fold: the photometric sample the selection is not.
The generated galaxies come from the same population model as the test galaxies: on a mock this remedy is
an upper bound (a perfect generator); on the sky it is as good as the simulator is real. Remedy ``refit``
(``--refit-generated SELECTION=STORE``): the gap drawn instead from a mock of the population refitted on
that selection's labelled galaxies only (``benchmarks/refit_generator.py``): what a survey can do. Remedy
``prior``: the unremedied catalogue's PDFs moved to the target's n(z) estimated from those PDFs alone
(label-shift EM, ``deepdip.selection.prior_shift``, against the estimator's stacked PDF on held-out
labelled galaxies; no target redshift used).
Metrics (``deepdip.metrics``): σ_MAD, η (|Δz|/(1+z) > 0.05), bias, PIT KS; the mean redshift of 4
tomographic bins in z_phot (edges: the target's z_spec quartiles, the same for every estimator),
|Δ<z>| of the stacked PDFs against the LSST DESC Y10 requirement 0.002 (1+z); and, for each
selection, the same inside and outside the region it leaves out (test galaxies the rule would not
label, e.g. the non-LRGs of ``colour:lrg``, the galaxies fainter than r = 17 of ``mag:r<17.0``).

Usage: python benchmarks/training_sets.py STORE --out DIR [--seeds 1 2] [--methods boost rf cnn]
       [--generated GEN.h5] [--selections all mag:r<17.0 ...] [--remedies none lima zbalance prior generated refit]
       [--refit-generated mag:r<17.0=REFIT/generated.h5] [--cnn-epochs 15]
       (GEN.h5: e.g. deepdip simulate --survey sdss --n 8000 --seed 77 --out GEN.h5)
Selections and catalogues in DIR are reused (rerun to tabulate); results in DIR/results.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SELECTIONS = {
    "all": None,                                  # every training galaxy: the representative upper bound
    "random-matched": "random:MATCH",             # random, as many as mag:r<17.0 labels: representative
    "mag:r<17.0": "mag:r<17.0",
    "colour:lrg": "colour:lrg",
    "success:r50=17.2": "success:r50=17.2,width=0.25",
    "small:random:1000": "random:1000",
    "small:mag:r<17.0&max:3000": "mag:r<17.0&max:3000",
}
REMEDIES = ("none", "lima", "zbalance", "prior")


def make_selection(store_path: Path, name: str, rule: str, seed: int, out: Path) -> Path:
    from deepdip.selection import select, write_selection
    from deepdip.store import CutoutStore

    if not out.exists():
        store = CutoutStore(store_path)
        if "MATCH" in rule:
            rule = rule.replace("MATCH", str(int(select(store, "mag:r<17.0", seed).sum())))
        write_selection(store, select(store, rule, seed), out, rule=rule, seed=seed)
    return out


def fit(store: Path, method: str, selection: Path | None, remedy: str, seed: int, out: Path,
        augment: tuple[Path, Path] | None = None, cnn_epochs: int = 15) -> Path:
    if method == "cnn":
        return fit_cnn(store, selection, remedy, seed, out, augment, cnn_epochs)
    if not out.exists():
        cmd = [sys.executable, "-m", "deepdip", "baseline", str(store), "--method", method, "--fold", "0",
               "--out", str(out), "--seed", str(seed), "--n-jobs", "1",
               "--reweight", "none" if remedy in ("generated", "refit") else remedy]
        if selection is not None:
            cmd += ["--labelled", str(selection)]
        if augment is not None:
            cmd += ["--augment-store", str(augment[0]), "--augment-labelled", str(augment[1])]
        subprocess.run(cmd, check=True, capture_output=True)
    return out


def fit_cnn(store: Path, selection: Path | None, remedy: str, seed: int, out: Path,
            augment: tuple[Path, Path] | None, epochs: int) -> Path:
    """The compact CNN (``deepdip train`` with the same options), its test fold predicted into ``out``."""
    from deepdip.predict import predict_store
    from deepdip.train import train

    if not out.exists():
        run = out.with_suffix("")
        extra = dict(augment_store=str(augment[0]), augment_labelled=str(augment[1])) if augment else {}
        train(store, fold=0, epochs=epochs, seed=seed, out=run, progress=False, tensorboard=False,
              labelled=None if selection is None else str(selection),
              reweight="none" if remedy in ("generated", "refit") else remedy, **extra)
        predict_store(run, store, out, rows="test", progress=False)
    return out


def prior_catalog(none_cat: Path, store_path: Path, selection: Path, out: Path) -> Path:
    """Remedy ``prior``: the unremedied catalogue's PDFs moved to the target's own n(z) (label-shift EM,
    ``deepdip.selection.prior_shift``). The estimator's prior is its stacked PDF over held-out labelled
    galaxies: those of the test fold the selection labels (their PDFs only, not their z_spec; a survey's
    held-out spectroscopic validation set). No target redshift is used."""
    from deepdip.catalog import read_catalog
    from deepdip.selection import prior_shift_catalog, read_selection
    from deepdip.store import CutoutStore

    if not out.exists():
        store = CutoutStore(store_path)
        cat = read_catalog(none_cat)
        ids = store.column("id")
        order = np.argsort(ids)
        rows = order[np.searchsorted(ids[order], cat.table["id"].to_numpy())]  # catalogue row -> store row
        labelled = read_selection(selection, store)[rows]
        prior_shift_catalog(cat, out, cat.pdf[labelled],
                            provenance={"reference": "the test fold's galaxies labelled by the selection"})
    return out


def scores(cat_path: Path, left_out: np.ndarray | None, edges: np.ndarray) -> dict:
    from deepdip.catalog import read_catalog
    from deepdip.metrics import compute_metrics, tomographic_mean_bias

    cat = read_catalog(cat_path)
    zp, zs = cat.table["z_mean"].to_numpy(), cat.table["z_spec"].to_numpy()

    def summary(sel):
        m = compute_metrics(zp[sel], zs[sel], cat.pdf[sel], cat.zgrid)
        return {"n": int(sel.sum()), "sigma_mad": float(m["sigma_mad"]), "eta": float(m["outlier_frac"]),
                "bias": float(m["bias"]), "pit_ks": float(m["pit_ks"])}

    everything = np.ones(len(zs), dtype=bool)
    res = {"target": summary(everything)}
    tomo = tomographic_mean_bias(zp, zs, cat.pdf, cat.zgrid, edges)
    res["tomo"] = tomo
    res["tomo_worst_over_requirement"] = max(abs(b["dz_mean"]) / b["requirement"] for b in tomo if b["n"])
    if left_out is not None and 0 < left_out.sum() < len(zs):
        res["left_out"], res["covered"] = summary(left_out), summary(~left_out)
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--methods", nargs="+", default=["boost"])
    p.add_argument("--selections", nargs="+", default=list(SELECTIONS), choices=list(SELECTIONS))
    p.add_argument("--remedies", nargs="+", default=[*REMEDIES, "generated", "refit"],
                   choices=[*REMEDIES, "generated", "refit"])
    p.add_argument("--cnn-epochs", type=int, default=15, help="epochs of the cnn method (compact CNN)")
    p.add_argument("--generated", default=None, help="a second mock of the same survey (other seed) to draw "
                                                     "generated galaxies from")
    p.add_argument("--refit-generated", nargs="+", default=[], metavar="SELECTION=STORE",
                   help="remedy 'refit' for SELECTION: the gap drawn from STORE, a mock of the population "
                        "refitted on that selection's labelled galaxies (benchmarks/refit_generator.py)")
    p.add_argument("--figure", default=None, help="PNG: bias per z and r bin and stacked n(z), first seed")
    args = p.parse_args()
    refit = dict(item.split("=", 1) for item in args.refit_generated)
    unknown = sorted(set(refit) - set(SELECTIONS))
    if unknown:
        p.error(f"--refit-generated: unknown selection(s) {', '.join(unknown)}")
    from deepdip.selection import read_selection, select, write_selection
    from deepdip.store import CutoutStore

    store_path, out = Path(args.store), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = CutoutStore(store_path)
    test = np.flatnonzero(store.column("fold") == 0)
    edges = np.quantile(store.column("z_spec", test), [0, 0.25, 0.5, 0.75, 1.0])
    edges[0], edges[-1] = 0.0, edges[-1] + 1e-6
    results: dict = {"edges": edges.tolist(), "runs": {}}
    for seed in args.seeds:
        for name, rule in ((n, SELECTIONS[n]) for n in args.selections):
            sel = None if rule is None else make_selection(store_path, name, rule, seed,
                                                          out / f"sel_{name.replace(':', '_')}_s{seed}.parquet")
            # the region a rule leaves out, on the test fold (without its random parts: the rule's cuts)
            cut = None if rule is None or rule.startswith(("random", "success")) else rule.split("&max")[0]
            left_out = None if cut is None else ~select(store, cut, seed)[test]
            remedies = list(REMEDIES) if sel is not None else ["none"]
            augment = {}  # remedy -> (generated store, its galaxies in the gap)
            for remedy, gen_path in (("generated", args.generated), ("refit", refit.get(name))):
                if gen_path and cut is not None:
                    gap = out / f"{'gen' if remedy == 'generated' else remedy}_gap_{name.replace(':', '_')}.parquet"
                    if not gap.exists():
                        gen = CutoutStore(gen_path)
                        write_selection(gen, select(gen, f"!{cut}", seed), gap, rule=f"!{cut}", seed=seed)
                    augment[remedy] = (Path(gen_path), gap)
                    remedies.append(remedy)
            for method in args.methods:
                for remedy in (r for r in remedies if r in args.remedies):
                    key = f"{method}|{name}|{remedy}|s{seed}"
                    name_ = key.replace("|", "_").replace(":", "_")
                    if remedy == "prior":
                        none = out / (f"{method}|{name}|none|s{seed}".replace("|", "_").replace(":", "_") + ".parquet")
                        cat = prior_catalog(fit(store_path, method, sel, "none", seed, none, None, args.cnn_epochs),
                                            store_path, sel, out / f"{name_}.parquet")
                    else:
                        cat = fit(store_path, method, sel, remedy, seed, out / f"{name_}.parquet",
                                  augment.get(remedy), args.cnn_epochs)
                    results["runs"][key] = scores(cat, left_out, edges)
                    if sel is not None:
                        results["runs"][key]["n_labelled_train"] = int(read_selection(sel, store)[
                            store.split_rows("train", fold=0)].sum())
                    (out / "results.json").write_text(json.dumps(results, indent=1))
                    r = results["runs"][key]
                    print(key, f"σ {r['target']['sigma_mad']:.4f} η {100 * r['target']['eta']:.2f}% "
                               f"PIT {r['target']['pit_ks']:.3f} tomo worst/req {r['tomo_worst_over_requirement']:.2f}",
                          flush=True)

    print(tables(results, args.seeds))
    if args.figure:
        figure(store_path, out, args.seeds[0], Path(args.figure))


def figure(store_path: Path, out: Path, seed: int, path: Path) -> None:
    """Bias of the PDF mean, Δz/(1+z), in bins of z_spec and of r, and the stacked n(z) against the true one,
    for ``mag:r<17.0`` and ``colour:lrg`` (rows) and every remedy run for seed ``seed`` (boost solid, cnn
    dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepdip.catalog import read_catalog
    from deepdip.selection import _magnitudes
    from deepdip.store import CutoutStore

    store = CutoutStore(store_path)
    test = np.flatnonzero(store.column("fold") == 0)
    r_mag = _magnitudes(store, test)["r"]
    remedies = ["none", "lima", "zbalance", "prior", "refit", "generated"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for row, sel in enumerate(("mag:r<17.0", "colour:lrg")):
        ax_z, ax_r, ax_n = axes[row]
        zs = store.column("z_spec", test)
        ax_n.hist(zs, bins=60, range=(0, 0.4), density=True, histtype="stepfilled", color="0.85", label="truth")
        for k, remedy in enumerate(remedies):
            for method, style in (("boost", "-"), ("cnn", "--")):
                cat_path = out / (f"{method}|{sel}|{remedy}|s{seed}".replace("|", "_").replace(":", "_") + ".parquet")
                if not cat_path.exists():
                    continue
                cat = read_catalog(cat_path)
                zp, zt = cat.table["z_mean"].to_numpy(), cat.table["z_spec"].to_numpy()
                d = (zp - zt) / (1 + zt)
                kw = {"color": f"C{k}", "ls": style, "lw": 1.2}
                for ax, x, edges in ((ax_z, zt, np.linspace(0, 0.3, 11)), (ax_r, r_mag, np.linspace(14.5, 17.8, 12))):
                    idx = np.digitize(x, edges) - 1
                    ok = [b for b in range(len(edges) - 1) if np.sum(idx == b) >= 20]
                    ax.plot([0.5 * (edges[b] + edges[b + 1]) for b in ok], [np.mean(d[idx == b]) for b in ok],
                            label=f"{method} {remedy}", **kw)
                widths = np.diff(cat.zgrid.edges)
                ax_n.plot(cat.zgrid.centres, cat.pdf.mean(0) / widths, **kw)
        ax_z.set(xlabel="z_spec", ylabel="mean Δz/(1+z)", title=f"{sel}: bias vs redshift")
        ax_r.set(xlabel="r (dereddened)", ylabel="mean Δz/(1+z)", title=f"{sel}: bias vs magnitude")
        ax_n.set(xlabel="z", ylabel="n(z)", title=f"{sel}: stacked PDFs (seed {seed})", xlim=(0, 0.35))
        for ax in (ax_z, ax_r):
            ax.axhline(0, color="k", lw=0.5)
        ax_z.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def tables(results: dict, seeds) -> str:
    """Markdown: per (method, selection, remedy), each seed's target metrics, the worst tomographic bin and
    the region the selection leaves out."""
    keys = sorted({k.rsplit("|", 1)[0] for k in results["runs"]}, key=lambda k: list(results["runs"]).index(
        next(r for r in results["runs"] if r.startswith(k + "|"))))
    lines = ["| method | selection | remedy | labelled (train) | σ_MAD | η | PIT KS "
             "| worst tomographic \\|Δ<z>\\| / 0.002(1+z) | left-out region: η | covered region: σ_MAD |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def cell(runs, get, fmt):
        vals = [get(r) for r in runs]
        return " / ".join("—" if v is None else fmt.format(v) for v in vals)

    for key in keys:
        method, sel, remedy = key.split("|")
        runs = [results["runs"].get(f"{key}|s{s}", {}) for s in seeds]
        lines.append("| " + " | ".join([
            method, sel, remedy, cell(runs, lambda r: r.get("n_labelled_train"), "{}"),
            cell(runs, lambda r: r.get("target", {}).get("sigma_mad"), "{:.4f}"),
            cell(runs, lambda r: 100 * r["target"]["eta"] if "target" in r else None, "{:.2f} %"),
            cell(runs, lambda r: r.get("target", {}).get("pit_ks"), "{:.3f}"),
            cell(runs, lambda r: r.get("tomo_worst_over_requirement"), "{:.2f}"),
            cell(runs, lambda r: 100 * r["left_out"]["eta"] if "left_out" in r else None, "{:.2f} %"),
            cell(runs, lambda r: r["covered"]["sigma_mad"] if "covered" in r else None, "{:.4f}")]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
