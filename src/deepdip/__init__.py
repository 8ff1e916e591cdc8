"""deepdip: pixel-level deep-learning photometric redshifts for galaxy surveys.

Data flow (see DESIGN.md): survey preset -> simulate / ingest -> cutout store (HDF5)
-> CNN train / baselines -> photo-z catalogue (Parquet) -> evaluate.
"""

__version__ = "0.1.0"

from deepdip.errors import DeepdipError  # noqa: F401
