"""Spectroscopic selections (deepdip select) and the training-set remedies of the baselines (issue 13)."""

import subprocess
import sys

import numpy as np
import pytest

from deepdip.errors import DeepdipValueError
from deepdip.selection import prior_shift, read_selection, select, training_weights, write_selection
from deepdip.store import CutoutStore, create_store

from .conftest import cli_env


@pytest.fixture(scope="module")
def phot_store(tmp_path_factory):
    """3,000 galaxies whose redshift grows with magnitude and reddens g-r: brighter is nearer, as in a
    flux-limited survey. Tiny blank stamps: the baselines read only the catalogue photometry."""
    return _make_phot_store(tmp_path_factory.mktemp("sel") / "phot.h5", seed=3)


def _make_phot_store(path, seed: int, n: int = 3000):
    rng = np.random.default_rng(seed)
    r = rng.uniform(14.0, 18.0, n)
    z = np.clip(0.02 + 0.06 * (r - 14.0) + rng.normal(0, 0.02, n), 0.005, 0.39)
    colours = {"u": 1.2 + 3 * z, "g": 0.5 + 4 * z, "r": 0.0, "i": -0.3 - 2 * z, "z": -0.5 - 3 * z}
    cat = {"id": np.arange(n, dtype=np.int64) + 1, "z_spec": z.astype(np.float32),
           "ebv": np.full(n, 0.02, np.float32), "hlr_meas": rng.uniform(0.5, 3.0, n).astype(np.float32)}
    for band, c in colours.items():
        mag = r + c
        cat[f"flux_{band}"] = (10 ** (-0.4 * (mag - 22.5)) * (1 + rng.normal(0, 0.02, n))).astype(np.float32)
        cat[f"flux_err_{band}"] = (0.02 * 10 ** (-0.4 * (mag - 22.5))).astype(np.float32)
    images = rng.normal(0, 0.01, (n, 5, 4, 4)).astype(np.float32)
    return create_store(path, images, cat, bands="ugriz", survey="sdss", pixel_scale=0.396, flux_unit="nanomaggy",
                        seed=5)


def _mag_r(store):
    """Dereddened r (the extinction coefficient of the store's r filter, as every baseline uses it)."""
    from deepdip.photometry import Photometry

    flux, _ = Photometry.from_store(store).dereddened()
    return 22.5 - 2.5 * np.log10(flux[:, 2])


def test_rules_select_what_they_say_and_are_reproducible(phot_store):
    store = CutoutStore(phot_store)
    r = _mag_r(store)
    bright = select(store, "mag:r<16.0")
    assert bright.any() and (r[bright] < 16.0 + 1e-4).all() and (r[~bright] > 16.0 - 1e-4).all()
    red = select(store, "colour:g-r>0.9")
    gr = 2.5 * np.log10(store.column("flux_r") / store.column("flux_g"))
    assert (gr[red] > 0.85).all() and red.sum() < len(store)
    capped = select(store, "mag:r<17&max:500", seed=1)
    assert capped.sum() == 500 and not (capped & ~select(store, "mag:r<17")).any()
    assert np.array_equal(capped, select(store, "mag:r<17&max:500", seed=1))       # same seed, same set
    assert not np.array_equal(capped, select(store, "mag:r<17&max:500", seed=2))
    assert select(store, "random:1000", seed=0).sum() == 1000
    frac = select(store, "random:0.25", seed=0).mean()
    assert 0.22 < frac < 0.28
    success = select(store, "success:r50=16,width=0.3", seed=0)
    assert success[r < 15].mean() > 0.9 and success[r > 17].mean() < 0.05       # falls with magnitude
    sb = select(store, "success:r50=30,width=0.3,sb50=19,sbwidth=0.3", seed=0)
    hlr = store.column("hlr_meas")
    mu = r + 2.5 * np.log10(2 * np.pi * hlr ** 2)
    assert sb[mu < 18].mean() > 0.9 and sb[mu > 20.5].mean() < 0.05              # and with surface brightness


@pytest.mark.parametrize("rule, message", [
    ("", "a selection rule is needed"),
    ("magic:3", "unknown selection clause"),
    ("mag:q<3", "no band q"),
    ("mag:r<<3", "expected mag:"),
    ("colour:g-r<1.2.3", "not a number"),
    ("colour:g-r<x", "expected colour:lrg"),
    ("random:1.5", "a fraction in (0, 1)"),
    ("max:0", "max:N needs"),
    ("success:width=0.3", "expected success:"),
    ("success:r50=17,width=-1", "width must be positive"),
])
def test_bad_rules_are_refused_naming_the_clause(phot_store, rule, message):
    with pytest.raises(DeepdipValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        select(CutoutStore(phot_store), rule)


def test_selection_file_round_trip_and_guards(phot_store, tmp_path):
    store = CutoutStore(phot_store)
    labelled = select(store, "mag:r<16.5")
    path = write_selection(store, labelled, tmp_path / "sel.parquet", rule="mag:r<16.5", seed=0)
    assert np.array_equal(read_selection(path, store), labelled)
    with pytest.raises(Exception, match="exists"):
        write_selection(store, labelled, path, rule="mag:r<16.5", seed=0)
    other = create_store(tmp_path / "other.h5", np.zeros((3, 5, 4, 4), np.float32),
                         {"id": np.array([7, 8, 9]), "z_spec": np.zeros(3, np.float32), "ebv": np.zeros(3, np.float32)},
                         bands="ugriz", survey="sdss", pixel_scale=0.396, flux_unit="nanomaggy")
    with pytest.raises(DeepdipValueError, match="another store"):
        read_selection(path, CutoutStore(other))
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DeepdipValueError, match="not a readable selection file"):
        read_selection(tmp_path / "junk.parquet", store)


def test_cli_writes_a_selection_and_fails_in_one_line(phot_store, tmp_path):
    out = tmp_path / "sel.parquet"
    ok = subprocess.run([sys.executable, "-m", "deepdip", "select", str(phot_store), "--rule", "mag:r<16",
                         "--out", str(out)], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "galaxies labelled" in ok.stdout and out.exists()
    bad = subprocess.run([sys.executable, "-m", "deepdip", "select", str(phot_store), "--rule", "mag:q<16",
                          "--out", str(tmp_path / "x.parquet")], env=cli_env(), capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "no band q" in bad.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_weights_are_finite_positive_and_upweight_the_under_labelled(phot_store):
    store = CutoutStore(phot_store)
    rows = store.split_rows("train", fold=0)
    labelled = rows[select(store, "success:r50=16,width=0.5", seed=0)[rows]]
    w = training_weights("lima", store, labelled, rows)
    assert w.shape == labelled.shape and np.isfinite(w).all() and (w > 0).all() and abs(w.mean() - 1) < 1e-9
    r = _mag_r(store)[labelled]
    assert np.median(w[r > 16.5]) > 3 * np.median(w[r < 15.5])   # faint galaxies are rarer among the labelled
    from deepdip.zgrid import ZGrid
    zb = training_weights("zbalance", store, labelled, rows, store.column("z_spec", labelled), ZGrid(0, 0.4, 20))
    assert np.isfinite(zb).all() and (zb > 0).all()
    with pytest.raises(DeepdipValueError, match="--reweight must be one of"):
        training_weights("magic", store, labelled, rows)


def test_baselines_train_on_the_labelled_galaxies_and_weights_repair_the_tomographic_means(phot_store, tmp_path):
    """A selection whose success falls with magnitude (spectra fail for faint galaxies) biases the mean
    redshift of the faint, high-z_phot galaxies; the density-ratio weights take most of that bias away."""
    from deepdip.baselines import make_baseline
    from deepdip.metrics import tomographic_mean_bias

    store = CutoutStore(phot_store)
    labelled = select(store, "success:r50=15.5,width=0.4", seed=0)
    sel = write_selection(store, labelled, tmp_path / "sel.parquet", rule="success", seed=0)
    test = store.split_rows("test", fold=0)
    z = store.column("z_spec", test)
    edges = np.quantile(z, [0, 0.25, 0.5, 0.75, 1.0]) + np.array([0, 0, 0, 0, 1e-6])
    worst = {}
    for reweight in ("none", "lima"):
        est = make_baseline("knn", labelled=str(sel), reweight=reweight).fit(store, fold=0)
        in_train = labelled[store.split_rows("train", fold=0)].sum()
        assert est.n_train_ == in_train
        pdf = est.predict_pdf(store, test)
        zp = pdf @ est.zgrid_.centres
        worst[reweight] = max(abs(b["dz_mean"]) for b in tomographic_mean_bias(zp, z, pdf, est.zgrid_, edges)
                              if b["n"])
    assert worst["lima"] < 0.7 * worst["none"], worst
    # the weights travel with a saved model
    est.save(tmp_path / "knn.npz")
    from deepdip.baselines import load_baseline
    again = load_baseline(tmp_path / "knn.npz")
    assert np.allclose(again.predict_pdf(store, test), est.predict_pdf(store, test))
    with pytest.raises(DeepdipValueError, match="fits no training set"):
        make_baseline("bpz", reweight="lima").fit(store, fold=0)


def test_cnn_trains_on_the_labelled_galaxies_with_weights_in_its_loss(photometry_store, tmp_path):
    import json

    import torch

    from deepdip.models.modelfile import ModelFile
    from deepdip.train import train
    from deepdip.train.run import split_train_val

    from .conftest import TINY_MODEL

    store = CutoutStore(photometry_store)
    labelled = select(store, "random:0.6", seed=4)
    sel = write_selection(store, labelled, tmp_path / "sel.parquet", rule="random:0.6", seed=4)
    common = dict(fold=0, epochs=1, batch_size=16, seed=1, model_kwargs=TINY_MODEL, threads=1, progress=False,
                  num_workers=0, tensorboard=False, labelled=str(sel))
    plain = train(store, out=tmp_path / "plain", **common)
    weighted = train(store, out=tmp_path / "lima", reweight="lima", **common)
    config = json.loads((weighted / "run.json").read_text())
    assert config["reweight"] == "lima" and config["labelled_n"] == int(labelled.sum())
    train_rows, val_rows = split_train_val(store, 0, 1, labelled=str(sel))
    assert labelled[train_rows].all() and labelled[val_rows].all()
    info = ModelFile(plain / "fold0" / "member0" / "model.pt").info
    assert info["n_train"] == len(train_rows) and info["n_val"] == len(val_rows)
    a = ModelFile(plain / "fold0" / "member0" / "model.pt").net.state_dict()
    b = ModelFile(weighted / "fold0" / "member0" / "model.pt").net.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)      # same seed and rows: only the loss weights differ


def test_generated_galaxies_fill_the_gap_a_magnitude_limit_leaves(phot_store, tmp_path):
    """Trained on r < 16 only, the trees cannot know the faint galaxies' redshifts (their colours run
    on beyond the training range); a second store of generated galaxies, of which only those fainter
    than r = 16 join the training set (--augment, --augment-labelled '!mag:r<16'), brings the bias of
    the faint test galaxies down, and the rule's negation marks exactly the complement."""
    from deepdip.baselines import make_baseline
    from deepdip.metrics import bias

    store = CutoutStore(phot_store)
    bright = write_selection(store, select(store, "mag:r<16"), tmp_path / "bright.parquet", rule="mag:r<16", seed=0)
    generated = CutoutStore(_make_phot_store(tmp_path / "generated.h5", seed=9, n=1500))
    faint = select(generated, "!mag:r<16")
    assert np.array_equal(faint, ~select(generated, "mag:r<16"))
    gap = write_selection(generated, faint, tmp_path / "gap.parquet", rule="!mag:r<16", seed=0)
    test = store.split_rows("test", fold=0)
    r, z = _mag_r(store)[test], store.column("z_spec", test)
    dim = r > 17
    results = {}
    for name, extra in {"bright": {}, "bright+generated": {"augment_store": str(generated.path),
                                                          "augment_labelled": str(gap)}}.items():
        est = make_baseline("boost", labelled=str(bright), n_rounds=200, **extra).fit(store, fold=0)
        zp = est.predict_pdf(store, test) @ est.zgrid_.centres
        results[name] = abs(bias(zp[dim], z[dim]))
    assert est.n_augmented_ == int(faint.sum())
    assert results["bright+generated"] < 0.3 * results["bright"], results


def _toy_store(path, n: int, seed: int, first_id: int, size: int = 16):
    from deepdip.train.toydata import toy_images

    from .conftest import make_catalog

    rng = np.random.default_rng(seed)
    catalog = make_catalog(n, rng, first_id=first_id)
    images = toy_images(catalog["z_spec"], catalog["ebv"], size=size, seed=seed + 1, noise=0.05)
    return CutoutStore(create_store(path, images, catalog, bands="ugriz", survey="sdss", pixel_scale=0.396,
                                    flux_unit="nanomaggy", seed=5))


def test_concatenated_datasets_read_each_galaxy_from_its_own_store(photometry_store, tmp_path):
    from deepdip.train.data import ConcatStoreDataset, StoreDataset
    from deepdip.zgrid import ZGrid

    main, other = CutoutStore(photometry_store), _toy_store(tmp_path / "gen.h5", 90, seed=21, first_id=10**6)
    grid = ZGrid(0.0, 0.4, 40)
    rows_a, rows_b = np.arange(5, 150, 2), np.arange(3, 90)
    both = ConcatStoreDataset([StoreDataset(main, rows_a, grid), StoreDataset(other, rows_b, grid)])
    assert len(both) == len(rows_a) + len(rows_b)
    idx = np.random.default_rng(0).permutation(len(both))[:50]
    images, extra, zbin, z, labels, weight = both.__getitems__(idx.tolist())
    for k, i in enumerate(idx):
        store, row = (main, rows_a[i]) if i < len(rows_a) else (other, rows_b[i - len(rows_a)])
        assert np.array_equal(images[k].numpy(), store.images(np.array([row]))[0])
        assert z[k].item() == pytest.approx(float(store.column("z_spec", np.array([row]))[0]))
    assert bool((weight == 1).all()) and extra.shape == (50, 1) and labels.shape == (50, 0)
    assert np.array_equal(zbin.numpy(), grid.bin_index(z.numpy()))


def test_cnn_trains_on_labelled_plus_generated_galaxies(photometry_store, tmp_path):
    import json

    from deepdip.models.modelfile import ModelFile
    from deepdip.train import train
    from deepdip.train.run import split_train_val

    from .conftest import TINY_MODEL

    store = CutoutStore(photometry_store)
    near = store.column("z_spec") < 0.2
    sel = write_selection(store, near, tmp_path / "near.parquet", rule="z<0.2 (test)", seed=0)
    generated = _toy_store(tmp_path / "gen.h5", 120, seed=31, first_id=10**6)
    far = generated.column("z_spec") >= 0.2
    gap = write_selection(generated, far, tmp_path / "gap.parquet", rule="z>=0.2 (test)", seed=0)
    common = dict(fold=0, epochs=1, batch_size=16, seed=1, model_kwargs=TINY_MODEL, threads=1, progress=False,
                  num_workers=0, tensorboard=False, labelled=str(sel))
    run = train(store, out=tmp_path / "aug", augment_store=str(generated.path), augment_labelled=str(gap), **common)
    config = json.loads((run / "run.json").read_text())
    assert config["augment_n"] == int(far.sum()) and config["augment_store"] == str(generated.path.absolute())
    info = ModelFile(run / "fold0" / "member0" / "model.pt").info
    train_rows, _ = split_train_val(store, 0, 1, labelled=str(sel))
    assert info["n_augmented"] == int(far.sum()) and info["n_train"] == len(train_rows)   # validation: the store's

    small = _toy_store(tmp_path / "small.h5", 40, seed=41, first_id=10**7, size=8)
    with pytest.raises(DeepdipValueError, match="stamps of 8 px"):
        train(store, out=tmp_path / "bad", augment_store=str(small.path), **common)
    with pytest.raises(DeepdipValueError, match="--augment-labelled"):
        train(store, out=tmp_path / "bad2", augment_labelled=str(gap), **common)
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").glob("fold*/member*/model.pt"))


def _label_shift_pdfs(rng, z, prior_made_with, prior_drawn_from, n=4000):
    """PDFs p(z|x) ∝ L(x|z) prior_made_with(z) of galaxies whose z follow ``prior_drawn_from``; their z."""
    z_true = rng.choice(z, size=n, p=prior_drawn_from / prior_drawn_from.sum())
    x = z_true + rng.normal(0, 0.08, n)
    like = np.exp(-0.5 * ((x[:, None] - z[None]) / 0.08) ** 2)
    pdf = like * prior_made_with
    return pdf / pdf.sum(1, keepdims=True), z_true, like


def test_prior_shift_recovers_the_target_redshift_distribution_from_its_pdfs_alone():
    """Label shift: PDFs made with the training prior, galaxies drawn from another n(z); the EM
    correction moves the stacked n(z) and each PDF to the target's prior without any target label."""
    rng = np.random.default_rng(0)
    z = np.linspace(0.005, 0.995, 100)
    pi_s, pi_t = np.exp(-0.5 * ((z - 0.35) / 0.15) ** 2), np.exp(-0.5 * ((z - 0.5) / 0.1) ** 2)
    biased, z_true, like = _label_shift_pdfs(rng, z, pi_s, pi_t)
    exact = like * pi_t
    exact /= exact.sum(1, keepdims=True)
    fixed, est = prior_shift(biased, pi_s * 123.0)  # counts or fractions alike
    assert np.allclose(fixed.sum(1), 1) and np.all(fixed >= 0)
    mean = lambda p: float((p.mean(0) * z).sum())  # noqa: E731
    assert abs(mean(biased) - z_true.mean()) > 0.03           # the uncorrected stack is far off
    assert abs(mean(fixed) - z_true.mean()) < 0.01            # the corrected one is not
    assert abs(float((est * z).sum()) - 0.5) < 0.01
    assert np.abs(fixed @ z - exact @ z).mean() < 0.01        # per galaxy, near the exact posterior mean
    with pytest.raises(DeepdipValueError, match="training prior"):
        prior_shift(biased, pi_s[:-1])
    with pytest.raises(DeepdipValueError, match="non-negative"):
        prior_shift(biased, -pi_s)


def test_prior_shift_cli_uses_held_out_labelled_pdfs_and_never_overwrites(tmp_path):
    from deepdip.catalog import read_catalog, write_catalog
    from deepdip.cli import main as cli_main
    from deepdip.zgrid import ZGrid

    rng = np.random.default_rng(1)
    grid = ZGrid(0.0, 1.0, 100)
    z = grid.centres
    pi_s, pi_t = np.exp(-0.5 * ((z - 0.35) / 0.15) ** 2), np.exp(-0.5 * ((z - 0.5) / 0.1) ** 2)
    target, z_true, _ = _label_shift_pdfs(rng, z, pi_s, pi_t)
    held_out, _, _ = _label_shift_pdfs(rng, z, pi_s, pi_s, n=2000)   # labelled galaxies: drawn from pi_s
    write_catalog(tmp_path / "target.parquet", np.arange(4000), target, grid, z_spec=z_true, method="knn")
    write_catalog(tmp_path / "ref.parquet", np.arange(4000, 6000), held_out, grid, method="knn")
    out = tmp_path / "shifted.parquet"
    args = ["prior-shift", str(tmp_path / "target.parquet"), "--reference", str(tmp_path / "ref.parquet"),
            "--out", str(out)]
    assert cli_main(args) == 0
    cat = read_catalog(out)
    assert cat.method == "knn+prior" and np.array_equal(cat.ids, np.arange(4000))
    assert abs(cat.table["z_mean"].mean() - z_true.mean()) < 0.01 < abs((target @ z).mean() - z_true.mean())
    before = out.read_bytes()
    assert cli_main(args) != 0 and out.read_bytes() == before      # an existing --out is kept
    bad = subprocess.run([sys.executable, "-m", "deepdip", *args[:4], "--reference-labelled",
                          str(tmp_path / "none.parquet"), "--out", str(tmp_path / "x.parquet")],
                         env=cli_env(), capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "selection file" in bad.stderr
    # the library call: the catalogue's own file is refused as the output even with overwrite
    from deepdip.errors import DeepdipError
    from deepdip.selection import prior_shift_catalog
    source = tmp_path / "target.parquet"
    kept = source.read_bytes()
    with pytest.raises(DeepdipError):
        prior_shift_catalog(read_catalog(source), source, held_out, overwrite=True, inputs=(source,))
    assert source.read_bytes() == kept
    with pytest.raises(DeepdipError, match=r"\[galaxies, bins\]"):
        prior_shift_catalog(read_catalog(source), tmp_path / "y.parquet", held_out[0])
