"""Real survey data in: per-galaxy FITS cutouts, numpy arrays or survey frames -> a cutout store.

```python
from deepdip.ingest import IngestOptions, ingest_arrays, ingest_cutouts, ingest_frames

opts = IngestOptions(survey="legacy", columns={"z_spec": "z"},
                     ebv_from_transmission="mw_transmission", dereddened_input=True,
                     keep=("primary",), size=32)
ingest_arrays("piczl_train_griz.npz", "real.h5", options=opts)         # catalogue = same .npz
ingest_cutouts("stamps/{id}_{band}.fits", "cat.csv", "real.h5",
               IngestOptions(bands=("g", "r"), pixel_scale=0.262, centre="wcs", size=48))
ingest_frames({"g": "g.fits", "r": "r.fits"}, "pos.parquet", "real.h5",
              IngestOptions(bands=("g", "r"), size=48))
```

Every bad galaxy stops the run with a one-line :class:`~deepdip.errors.DeepdipError`, or with
``skip_bad=True`` is listed in a rejects CSV (id, reason); galaxies too near a frame edge are
always skipped and listed. The store is renamed into place only when the run succeeds.
"""

from deepdip.extinction import DECAM_EXTINCTION, ebv_from_transmission
from deepdip.ingest.catalog import Catalog, build_catalog, read_table
from deepdip.ingest.options import IngestOptions, load_config
from deepdip.ingest.pipeline import IngestResult, ingest_arrays, ingest_cutouts, ingest_frames
from deepdip.ingest.rejects import IngestWarning
from deepdip.photometry.units import flux_factors

__all__ = [
           "DECAM_EXTINCTION",
           "Catalog",
           "IngestOptions",
           "IngestResult",
           "IngestWarning",
           "build_catalog",
           "ebv_from_transmission",
           "flux_factors",
           "ingest_arrays",
           "ingest_cutouts",
           "ingest_frames",
           "load_config",
           "read_table",
]
