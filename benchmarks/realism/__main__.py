"""How realistic are deepdip's mock surveys? Compare them with real data; write docs/realism.md and .json.

Sections (all by default; ``--sections`` runs some and keeps the others' numbers from the JSON):

- ``pixels`` (``pixels.py``): sky noise and PSF of the sdss and legacy presets against real pixels
  (SDSS frames and psField of one Stripe 82 field; Legacy DR10 cutouts), calibration and
  validation apart; optimal flux errors on the new pixels;
- ``sdss`` (``catalogue.py``): measured mock photometry against the validation half of
  ``sdss_main_gst10k`` (C2ST, random-forest sigma_MAD, n(z), colours, flux-error relation);
- ``deep`` (``catalogue.py``): the cfhtls-wide preset against HSC PDR2 spec-z galaxies.

Usage: python benchmarks/realism [--sections pixels sdss deep] [--n 6000] [--workers 2] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import catalogue  # noqa: E402  (siblings of this file, found through the line above)
import pixels  # noqa: E402
import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("pixels", "sdss", "deep")


def _plain(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON: {type(x).__name__}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--n", type=int, default=6000, help="mock SDSS galaxies (default 6000)")
    p.add_argument("--deep-n", type=int, default=3000, help="mock cfhtls-wide galaxies (default 3000)")
    p.add_argument("--pixel-n", type=int, default=400, help="mock stamps per pixel statistic (default 400)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--store", default="/tmp/deepdip_realism_sdss.h5")
    p.add_argument("--deep-store", default="/tmp/deepdip_realism_deep.h5")
    p.add_argument("--reuse", action="store_true", help="reuse mock stores already simulated")
    p.add_argument("--json", default=str(ROOT / "docs" / "realism.json"))
    p.add_argument("--report-only", action="store_true", help="rewrite docs/realism.md from the JSON")
    args = p.parse_args()
    path = Path(args.json)
    res = json.loads(path.read_text()) if path.exists() else {}
    if not args.report_only:
        command = "python benchmarks/realism " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        res.setdefault("commands", {})
        for section in args.sections:
            print(f"section {section} ...", file=sys.stderr, flush=True)
            if section == "pixels":
                res["pixels"] = pixels.run(args.pixel_n)
            elif section == "sdss":
                res["sdss"] = catalogue.sdss_section(args)
            else:
                res["deep"] = catalogue.deep_section(args)
            res["commands"][section] = command
        path.write_text(json.dumps(res, indent=1, default=_plain))
    doc = ROOT / "docs" / "realism.md"
    text = report.report(res)
    old = doc.read_text() if doc.exists() else ""
    # sections that belong to other scripts (benchmarks/realism_colour_structure.py,
    # benchmarks/realism_legacy_structure.py): kept as they are
    for block in ("colour-structure", "legacy-structure"):
        begin, end = f"<!-- {block}: begin -->", f"<!-- {block}: end -->"
        if begin in old and end in old:
            text = text.rstrip("\n") + "\n\n" + begin + old.split(begin, 1)[1].split(end, 1)[0] + end + "\n"
    doc.write_text(text)
    if "sdss" in res:
        print(json.dumps({k: res["sdss"][k] for k in ("c2st_measured", "c2st_true_mags", "rf_sigma_mad")}, indent=1))
    if "pixels" in res:
        print(json.dumps({"sdss_sky_ratio": res["pixels"]["sdss"]["ratio_median"],
                          "legacy_sky_ratio": res["pixels"]["legacy"]["ratio_sky"]}, default=_plain))


if __name__ == "__main__":
    main()
