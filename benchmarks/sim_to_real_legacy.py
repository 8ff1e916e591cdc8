"""Sim-to-real study: a CNN trained on a mock survey, tested on real ingested cutouts (docs/real-data.md).

Three numbers tell the story:

1. the mock-trained ensemble applied as is to the real labelled galaxies;
2. the same models fine-tuned on real galaxies, evaluated by leave-out cross-validation (each
   galaxy predicted by models fine-tuned without it), so the small real sample is never both
   training and test data;
3. a figure of real cutouts beside the mock galaxies nearest in (redshift, r magnitude), to see
   what the network was not shown.

    python benchmarks/sim_to_real_legacy.py --run RUN --real real.h5 --mock mock.h5 --select primary --out DIR

Fine-tuning updates the backbone only: the normaliser learnt on the mock stays, so real pixels
are scaled exactly as the mock ones were. The fine-tuning loop is the study's own (a plain AdamW
loop over a few dozen galaxies); it is not part of the library, whose training is ``deepdip.train``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np

from deepdip.atomic import write_json_atomic
from deepdip.errors import DeepdipError
from deepdip.gallery import save_figure
from deepdip.photometry import flux_to_mag


def _members(run, store):
    from deepdip.predict.core import find_model_files, load_members

    paths = [p for ps in find_model_files(run).values() for p in ps]
    return load_members(paths, store)


def mock_test_metrics(run, mock, n_max: int = 3000, seed: int = 0) -> dict:
    """The same models on held-out mock galaxies (their test folds): the number to compare with."""
    from deepdip.predict.core import find_model_files, load_members

    z_all, pdf_all, zgrid = [], [], None
    for fold, paths in find_model_files(run).items():
        members = load_members(paths, mock)
        zgrid = members[0].zgrid
        rows = mock.split_rows("test", fold=fold)
        rows = np.sort(np.random.default_rng(seed).permutation(rows)[:n_max])
        pdf_all.append(predict_pdfs([m.net for m in members], mock.images(rows), mock.column("ebv", rows)))
        z_all.append(mock.column("z_spec", rows))
    out = metrics_of(np.concatenate(pdf_all), np.concatenate(z_all).astype(np.float64), zgrid)
    return {k: v for k, v in out.items() if k not in ("pit", "z_phot")}


def predict_pdfs(nets, images, ebv, tta: bool = True) -> np.ndarray:
    from deepdip.predict.core import predict_chunk

    return predict_chunk(nets, images, ebv[:, None].astype(np.float32), tta=tta)


def finetune(net, images, ebv, z, zgrid, *, epochs: int = 40, lr: float = 1e-4, weight_decay: float = 1e-4,
             batch_size: int = 32, seed: int = 0, freeze_bn: bool = False, rehearsal=None,
             rehearsal_per_batch: int = 32, l2sp: float = 0.0):
    """A copy of ``net`` trained further on (images, ebv, z) with random dihedral orientations.

    ``freeze_bn`` keeps batch-norm layers in inference mode (running statistics from the mock),
    the usual choice when fine-tuning on a few dozen images whose batch statistics are noisy.
    Two regularisers against forgetting what the mock taught, for a few dozen real galaxies:
    ``rehearsal`` = (images, ebv, z) of mock galaxies, ``rehearsal_per_batch`` of them drawn into every
    batch (their cross-entropy and the real galaxies' weigh half each: the network keeps solving the mock
    while it adapts); ``l2sp`` > 0 adds l2sp * ||w - w_mock||^2 (L2-SP, Li et al. 2018: decay towards the
    starting weights instead of towards zero).
    """
    import torch
    import torch.nn.functional as F

    from deepdip.models.dihedral import random_dihedral

    batch_norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)
    torch.manual_seed(seed)
    net = copy.deepcopy(net)
    net.train()
    if freeze_bn:
        for module in net.modules():
            if isinstance(module, batch_norms):
                module.eval()
    for p in net.normalizer.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in net.backbone.parameters() if p.requires_grad], lr=lr,
                            weight_decay=weight_decay)
    x_all = torch.as_tensor(np.ascontiguousarray(images, dtype=np.float32))
    e_all = torch.as_tensor(np.asarray(ebv, dtype=np.float32)[:, None])
    y_all = torch.as_tensor(zgrid.bin_index(z))
    if rehearsal is not None:
        x_mock = torch.as_tensor(np.ascontiguousarray(rehearsal[0], dtype=np.float32))
        e_mock = torch.as_tensor(np.asarray(rehearsal[1], dtype=np.float32)[:, None])
        y_mock = torch.as_tensor(zgrid.bin_index(rehearsal[2]))
    start_weights = {n: p.detach().clone() for n, p in net.backbone.named_parameters()} if l2sp > 0 else None
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x_all), generator=gen)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:  # batch-norm needs two samples
                continue
            if rehearsal is None:
                logits = net(random_dihedral(x_all[idx], gen), e_all[idx])
                loss = F.cross_entropy(logits.float(), y_all[idx])
            else:
                m = torch.randint(len(x_mock), (rehearsal_per_batch,), generator=gen)
                logits = net(random_dihedral(torch.cat([x_all[idx], x_mock[m]]), gen),
                             torch.cat([e_all[idx], e_mock[m]])).float()
                loss = 0.5 * (F.cross_entropy(logits[:len(idx)], y_all[idx])
                              + F.cross_entropy(logits[len(idx):], y_mock[m]))
            if start_weights is not None:
                loss = loss + l2sp * sum(((p - start_weights[n]) ** 2).sum()
                                         for n, p in net.backbone.named_parameters() if p.requires_grad)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return net


def adapt_batch_norm(net, images, ebv, batch: int = 4096):
    """AdaBN (Li et al. 2016): a copy of ``net`` whose batch-norm statistics are re-estimated on
    ``images`` (labels unused), in their 8 dihedral orientations, one pass; no weight changes.

    The unsupervised domain adaptation that fits a few dozen *unlabelled* real cutouts: the
    convolutions stay as the mock taught them, only the per-channel scale of their inputs follows the
    real pixels. Up to ``batch`` views (images x 8 orientations) go in one forward pass and give the
    exact statistics; more images are split into near-equal chunks, each with its 8 orientations, whose
    statistics are averaged (the mean stays exact, the variance misses the spread between the chunks'
    means); only one chunk's views are in memory at a time.
    """
    import torch

    from deepdip.models.dihedral import dihedral

    net = copy.deepcopy(net).eval()
    norms = [m for m in net.backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise DeepdipError(f"--adabn: the {type(net.backbone).__name__} backbone has no batch-norm layer to adapt")
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
        m.train()
    x = torch.as_tensor(np.ascontiguousarray(images, dtype=np.float32))
    e = torch.as_tensor(np.asarray(ebv, dtype=np.float32)[:, None])
    per_chunk = max(1, batch // 8)  # images per forward pass
    with torch.no_grad():
        for rows in np.array_split(np.arange(len(x)), -(-len(x) // per_chunk)):
            net(torch.cat([dihedral(x[rows], k) for k in range(8)]), e[rows].repeat(8, 1))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum  # as before, should the copy be fine-tuned
        m.eval()
    return net


def leave_out_cv(nets, images, ebv, z, zgrid, n_groups: int | None = None, seed: int = 0, **kw) -> np.ndarray:
    """PDFs where each galaxy comes from models fine-tuned without it (leave-one-out by default)."""
    n = len(z)
    groups = np.arange(n) if n_groups is None else np.random.default_rng(seed).permutation(n) % n_groups
    pdf = None
    for g in np.unique(groups):
        test, train = groups == g, groups != g
        tuned = [finetune(net, images[train], ebv[train], z[train], zgrid, seed=seed + 7 * i + 1000 * int(g), **kw)
                 for i, net in enumerate(nets)]
        p = predict_pdfs(tuned, images[test], ebv[test])
        pdf = np.zeros((n, p.shape[1]), np.float32) if pdf is None else pdf
        pdf[test] = p
    return pdf


def fresh_like(model_file):
    """An untrained network of the same architecture, with the mock model's input normalisation."""
    from deepdip.models.net import PhotozNet

    net = PhotozNet(**model_file.config["net"])
    net.normalizer.load_state_dict(model_file.net.normalizer.state_dict())
    return net.eval()


def constant_cv(z, zgrid) -> np.ndarray:
    """Leave-one-out 'PDF' of a know-nothing estimator: the histogram of the other galaxies' z."""
    idx = zgrid.bin_index(z)
    pdf = np.zeros((len(z), zgrid.nbins), np.float32)
    for i in range(len(z)):
        others = np.delete(idx, i)
        pdf[i] = np.bincount(others, minlength=zgrid.nbins) / len(others)
    return pdf


def metrics_of(pdf, z, zgrid) -> dict:
    from deepdip.metrics import compute_metrics, pit_values, point_estimates

    zphot = point_estimates(pdf, zgrid)["z_mean"]
    out = compute_metrics(zphot, z, pdf, zgrid)
    # With a few dozen galaxies the sampling error is large: 68 % bootstrap intervals.
    rng = np.random.default_rng(0)
    boot = [compute_metrics(zphot[i], z[i]) for i in rng.integers(0, len(z), (1000, len(z)))]
    for key in ("sigma_mad", "outlier_frac", "bias"):
        out[f"{key}_ci68"] = np.percentile([b[key] for b in boot], [16, 84]).tolist()
    out["pit"] = pit_values(pdf, zgrid, z).tolist()
    out["z_phot"] = zphot.tolist()
    return out


def _mag(flux):
    return flux_to_mag(np.clip(flux, 1e-3, None))


def comparison_figure(real, mock, rows, out_png, n: int = 8, seed: int = 0, real_label: str = "real") -> Path:
    """Real cutouts (top) above the mock galaxies closest in (z, r magnitude) (bottom).

    ``real_label`` names the real data in the title (e.g. "Legacy DR10").
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepdip.gallery import rgb_composite

    pick = np.sort(np.random.default_rng(seed).choice(rows, size=min(n, len(rows)), replace=False))
    r = list(real.bands).index("r")
    # Magnitudes of the flux inside the same central box in both stores: like for like, whatever
    # the stamp sizes and whatever the mock's truth columns mean (total, dereddened...).
    box = min(real.image_shape[0], mock.image_shape[0])

    def stamp_mag(images):
        h = images.shape[-1]
        lo = (h - box) // 2
        return _mag(images[:, r, lo:lo + box, lo:lo + box].sum(axis=(1, 2)))

    real_mag = stamp_mag(real.images(pick))
    real_z = real.column("z_spec", pick)
    mock_z = mock.column("z_spec")
    mock_mag = np.concatenate([stamp_mag(im) for _, im in mock.iter_chunks(None, 4096)])
    fig, axes = plt.subplots(2, len(pick), figsize=(1.9 * len(pick), 4.8), squeeze=False)
    for j, (zr, mr, row) in enumerate(zip(real_z, real_mag, pick)):
        dist = ((mock_z - zr) / 0.02) ** 2 + ((mock_mag - mr) / 0.25) ** 2
        m = int(np.nanargmin(dist))
        for ax, store, i, label in ((axes[0, j], real, int(row), f"real z={zr:.3f} r={mr:.1f}"),
                                    (axes[1, j], mock, m, f"mock z={mock_z[m]:.3f} r={mock_mag[m]:.1f}")):
            ax.imshow(rgb_composite(store.images(np.array([i]))[0], list(store.bands)), origin="lower")
            ax.set_xlabel(label, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{real_label} real cutouts (top) and nearest {mock.survey}-mock galaxies in (z, r) (bottom); "
                 f"{_composite_bands(real.bands)} asinh", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_png)


def _composite_bands(bands) -> str:
    """The bands :func:`deepdip.gallery.rgb_composite` shows, blue to red (its choice, for titles)."""
    bands = list(bands)
    picks = [b for b in ("g", "r", "i") if b in bands]
    return "".join(picks) if len(picks) == 3 else "".join(bands[i] for i in (0, len(bands) // 2, len(bands) - 1))


def results_figure(results: dict, out_png) -> Path:
    """z_phot against z_spec, and the PIT histogram, for the zero-shot and fine-tuned CNN."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = np.asarray(results["z_spec"])
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    lim = (0, max(0.7, float(z.max()) + 0.05))
    for name, colour, label in (("zero_shot", "C0", "mock-trained"), ("finetuned_cv", "C3", "fine-tuned (CV)")):
        r = results[name]
        axes[0].scatter(z, r["z_phot"], s=14, c=colour,
                        label=f"{label}: $\\sigma_{{MAD}}$={r['sigma_mad']:.3f}, $\\eta$={r['outlier_frac']:.2f}")
        axes[1 if name == "zero_shot" else 2].hist(r["pit"], bins=10, range=(0, 1), color=colour)
        axes[1 if name == "zero_shot" else 2].set_title(f"PIT, {label} (KS {r['pit_ks']:.2f})", fontsize=9)
    if "scratch_cv" in results:
        r = results["scratch_cv"]
        axes[0].scatter(z, r["z_phot"], s=10, marker="x", c="0.5",
                        label=f"real only, from scratch (CV): $\\sigma_{{MAD}}$={r['sigma_mad']:.3f}")
    axes[0].plot(lim, lim, "k-", lw=0.8)
    for sign in (-1, 1):
        axes[0].plot(lim, [lim[0] + sign * 0.05 * (1 + lim[0]), lim[1] + sign * 0.05 * (1 + lim[1])], "k:", lw=0.8)
    axes[0].set(xlim=lim, ylim=lim, xlabel="z_spec", ylabel="z_phot (PDF mean)")
    axes[0].legend(fontsize=7, loc="upper left")
    for ax in axes[1:]:
        ax.axhline(len(z) / 10, color="k", lw=0.8)
        ax.set_xlabel("PIT")
    fig.tight_layout()
    return save_figure(fig, out_png)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/sim_to_real_legacy.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="run directory of the mock-trained CNN")
    parser.add_argument("--real", required=True, help="store of ingested real cutouts with z_spec")
    parser.add_argument("--mock", help="mock store for the comparison figure")
    parser.add_argument("--real-label", default="Legacy DR10",
                        help="name of the real data in the comparison figure's title [Legacy DR10]")
    parser.add_argument("--select", default=None, help="boolean catalogue column selecting the rows to score")
    parser.add_argument("--epochs", type=int, default=40, help="fine-tuning epochs [40]")
    parser.add_argument("--lr", type=float, default=1e-4, help="fine-tuning learning rate [1e-4]")
    parser.add_argument("--groups", type=int, default=None, help="CV groups (default: leave-one-out)")
    parser.add_argument("--scratch-lr", type=float, default=1e-3,
                        help="learning rate of the control trained from scratch on the real galaxies only [1e-3]")
    parser.add_argument("--freeze-bn", action="store_true", help="fine-tune with batch-norm statistics frozen")
    parser.add_argument("--rehearsal", type=int, default=0,
                        help="mock galaxies (of --mock's training folds) drawn into every fine-tuning batch [0: none]")
    parser.add_argument("--rehearsal-pool", type=int, default=3000,
                        help="how many mock galaxies the rehearsal draws from [3000]")
    parser.add_argument("--l2sp", type=float, default=0.0,
                        help="L2-SP: weight of ||w - w_mock||^2 in the fine-tuning loss [0: off]")
    parser.add_argument("--adabn", action="store_true",
                        help="also score AdaBN: batch-norm statistics re-estimated on every real cutout of "
                             "--real (labels unused), then zero-shot; and fine-tune from that network")
    parser.add_argument("--no-controls", dest="controls", action="store_false",
                        help="skip the from-scratch and constant controls")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output folder (metrics.json, PNGs)")
    args = parser.parse_args(argv)

    from deepdip.store import CutoutStore

    real = CutoutStore(args.real)
    rows = np.arange(len(real))
    if args.select:
        rows = np.flatnonzero(real.column(args.select).astype(bool))
    z = real.column("z_spec", rows).astype(np.float64)
    if not np.all(np.isfinite(z)):
        raise DeepdipError("every selected real galaxy needs a z_spec")
    members = _members(args.run, real)
    nets, zgrid = [m.net for m in members], members[0].zgrid
    images, ebv = real.images(rows), real.column("ebv", rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"n": len(rows), "zero_shot": metrics_of(predict_pdfs(nets, images, ebv), z, zgrid)}
    if args.adabn:
        # Every cutout of the store, the unselected ones too: their labels are never read.
        every = np.arange(len(real))
        nets = [adapt_batch_norm(net, real.images(every), real.column("ebv", every)) for net in nets]
        results["adabn_zero_shot"] = metrics_of(predict_pdfs(nets, images, ebv), z, zgrid)
    regularise: dict = {"l2sp": args.l2sp}
    if args.rehearsal:
        if not args.mock:
            raise DeepdipError("--rehearsal draws mock galaxies: give --mock")
        mock = CutoutStore(args.mock)
        pool = mock.split_rows("train", fold=0)
        pool = np.sort(np.random.default_rng(args.seed).permutation(pool)[:args.rehearsal_pool])
        regularise.update(rehearsal=(mock.images(pool), mock.column("ebv", pool),
                                     mock.column("z_spec", pool).astype(np.float64)),
                          rehearsal_per_batch=args.rehearsal)
    results["finetuned_cv"] = metrics_of(
        leave_out_cv(nets, images, ebv, z, zgrid, n_groups=args.groups, seed=args.seed, epochs=args.epochs,
                     lr=args.lr, freeze_bn=args.freeze_bn, **regularise), z, zgrid)
    if args.controls:
        # Controls: the same CV from an untrained network (does the mock pre-training help?) and a
        # know-nothing estimator (the other galaxies' n(z)), to put the numbers on a scale.
        results["scratch_cv"] = metrics_of(
            leave_out_cv([fresh_like(m) for m in members], images, ebv, z, zgrid, n_groups=args.groups,
                         seed=args.seed, epochs=args.epochs, lr=args.scratch_lr), z, zgrid)
        results["constant_cv"] = metrics_of(constant_cv(z, zgrid), z, zgrid)
    results["config"] = {k: v for k, v in vars(args).items()}
    results["z_spec"] = z.tolist()
    if args.mock:
        mock = CutoutStore(args.mock)
        results["mock_test"] = mock_test_metrics(args.run, mock, seed=args.seed)
        comparison_figure(real, mock, rows, out / "real_vs_mock.png", seed=args.seed, real_label=args.real_label)
    write_json_atomic(out / "metrics.json", results)
    results_figure(results, out / "real_photoz.png")
    for name in ("mock_test", "zero_shot", "adabn_zero_shot", "finetuned_cv", "scratch_cv", "constant_cv"):
        if name not in results:
            continue
        r = results[name]
        ci = "".join(f" {k}_ci68=[{r[k + '_ci68'][0]:.4f}, {r[k + '_ci68'][1]:.4f}]"
                     for k in ("sigma_mad", "outlier_frac") if k + "_ci68" in r)
        print(f"{name}: n={r['n']} sigma_mad={r['sigma_mad']:.4f} eta={r['outlier_frac']:.3f} bias={r['bias']:+.4f} "
              f"pit_ks={r['pit_ks']:.3f} cov68={r['coverage_68']:.2f} cov95={r['coverage_95']:.2f}{ci}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
