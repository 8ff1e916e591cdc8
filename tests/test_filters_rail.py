"""deepdip.filters: speclite names unchanged, RAIL's ``rail:<curve>`` curves, and one-line errors.

Tests marked ``needs_rail`` skip where pz-rail-base is not installed (the README's test command
installs ``.[test]`` only; ``.ci/run`` lints with ``.[rail]``). ``pytest.importorskip("rail")`` would
not skip: ``rail`` is a namespace package that deepdip's own plugin provides too.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepdip import filters
from deepdip.errors import DeepdipValueError

needs_rail = pytest.mark.skipif(filters.rail_data_dir() is None, reason="RAIL not installed: pip install deepdip[rail]")


@pytest.fixture
def no_rail(monkeypatch):
    """deepdip.filters as it behaves without RAIL installed."""
    filters.load_filter.cache_clear()
    monkeypatch.setattr(filters, "rail_data_dir", lambda: None)
    yield
    filters.load_filter.cache_clear()


def test_speclite_names_resolve_unchanged():
    import speclite.filters

    ours = filters.load_filter("sdss2010-r")
    assert ours.name == "sdss2010-r"
    assert ours.effective_wavelength == speclite.filters.load_filter("sdss2010-r").effective_wavelength
    assert filters.speclite_names(["sdss2010-u", "decamDR1-g"]) == ["sdss2010-u", "decamDR1-g"]


@pytest.mark.parametrize("name", ["sdss2010-q", "nonsense", "rail:roman_H999"])
def test_an_unknown_filter_name_is_one_clear_line(name):
    with pytest.raises(DeepdipValueError) as info:
        filters.load_filter(name)
    msg = str(info.value)
    assert repr(name) in msg and "pip install deepdip[rail]" in msg and "\n" not in msg


def test_a_rail_name_without_rail_says_how_to_install(no_rail):
    with pytest.raises(DeepdipValueError, match=r"'rail:roman_H158' is a RAIL curve but RAIL is not installed: "
                                                r"pip install deepdip\[rail\]"):
        filters.load_filter("rail:roman_H158")


@needs_rail
def test_rail_roman_h158_has_its_effective_wavelength():
    f = filters.load_filter("rail:roman_H158")
    assert f.name == "rail-roman_H158"
    assert filters.effective_wavelengths(["rail:roman_H158"])[0] == pytest.approx(15800.0, rel=0.01)  # H158: 1.58 um
    wave, resp = filters.curve("rail:roman_H158")
    assert wave[0] > 13000 and wave[-1] < 19000 and resp[0] == resp[-1] == 0 and 0.7 < resp.max() <= 1.0


@needs_rail
@pytest.mark.parametrize("rail_name, speclite_name", [
    ("rail:euclid_H", "Euclid-H"),  # Euclid's curves have noise below zero and non-zero ends: cleaned
    ("rail:hsc_z", "hsc2017-z"),
    ("rail:lsstcam_r", "lsst2023-r"),  # throughput in percent: rescaled
])
def test_rail_curves_agree_with_speclites_curves_of_the_same_filters(rail_name, speclite_name):
    ours, theirs = filters.effective_wavelengths([rail_name, speclite_name])
    assert ours == pytest.approx(theirs, rel=0.01)
    assert filters.curve(rail_name)[1].max() <= 1.0


@needs_rail
def test_an_unknown_rail_curve_lists_the_known_ones():
    with pytest.raises(DeepdipValueError, match="RAIL ships no curve 'roman_K213' .*roman_H158"):
        filters.load_filter("rail:roman_K213")


@needs_rail
def test_rail_filters_reach_the_simulator_and_the_extinction_law():
    from deepdip.extinction import extinction_coefficients
    from deepdip.simulate.templates import template_table

    table = template_table(("rail:euclid_H", "Euclid-H"), 0.5, nz=10)  # skypy's mag_ab, through speclite's cache
    assert np.all(np.isfinite(table.log_maggies))
    assert np.allclose(table.log_maggies[..., 0], table.log_maggies[..., 1], atol=0.02)  # 0.05 mag
    a_h158, a_j129 = extinction_coefficients(("rail:roman_H158", "rail:roman_J129"))
    assert 0 < a_h158 < a_j129 < 1.0
