"""Shared fixtures: tiny stores made on the fly, and the path of the real data (tests skip without it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepdip.store import create_store

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def real_data(*parts) -> Path:
    """Path under ../shared/data/real, or skip the test with the reason when it is absent."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available at {path} (a fresh clone has no ../shared)")
    return path


def make_catalog(n: int, rng: np.random.Generator, first_id: int = 1000) -> dict:
    return {
        "id": np.arange(first_id, first_id + n, dtype=np.int64),
        "z_spec": rng.uniform(0.01, 0.39, n).astype(np.float32),
        "ebv": rng.uniform(0.01, 0.1, n).astype(np.float32),
    }


@pytest.fixture
def tiny_store(tmp_path) -> Path:
    """A valid 5-band 8x8 store of 60 galaxies."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(60, 5, 8, 8)).astype(np.float32)
    return create_store(tmp_path / "tiny.h5", images, make_catalog(60, rng), bands="ugriz", survey="sdss",
                        pixel_scale=0.396, seed=3)
