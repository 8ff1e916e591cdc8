"""Run the notebooks of ``examples/`` as tests whenever pytest collects this folder (``testpaths`` in
pyproject.toml), so the README's test command, ``python -m pytest -q``, executes them without a flag.

nbmake (the ``test`` extra) executes each notebook top to bottom in a fresh kernel; a cell that raises
fails the test. ``pytest --nbmake examples/`` works too (nbmake then collects them itself). Without
nbmake installed the notebooks are not collected.
"""

from __future__ import annotations


def pytest_collect_file(file_path, parent):
    if file_path.suffix != ".ipynb" or getattr(parent.config.option, "nbmake", True):
        return None  # not a notebook, or nbmake is absent / collecting it already (--nbmake)
    from nbmake.pytest_items import NotebookFile

    return NotebookFile.from_parent(parent, path=file_path)
