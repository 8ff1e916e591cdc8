"""Evaluation and reports: score photo-z catalogues against each other and write what people read.

- :mod:`.comparison`: match catalogues by id, score them (``metrics.json``) and write the HTML
  report with its figures (:func:`evaluate`, what ``deepdip evaluate`` runs);
- :mod:`.floor`: the information floor of a mock, the best any estimator could do from its
  galaxies (uses the mock's truths: a reference line, never an estimator);
- :mod:`.figures`, :mod:`.html`: the report's building blocks; :mod:`.output`: the report folder
  (built aside, moved in, never deleting what the user had).
"""

from deepdip.report.comparison import Matched, evaluate, make_figures, match_catalogs, report_sections, score

__all__ = ["Matched", "evaluate", "make_figures", "match_catalogs", "report_sections", "score"]
