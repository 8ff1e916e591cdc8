"""Moved to :mod:`deepdip.models.modelfile` and :mod:`deepdip.models.net` (inference needs them;
``predict`` must not import ``train``)."""

from deepdip.models.modelfile import (  # noqa: F401  (moved)
    FORMAT,
    FORMAT_VERSION,
    ModelFile,
    net_config,
    save_model_file,
)
from deepdip.models.net import PhotozNet  # noqa: F401  (moved)
