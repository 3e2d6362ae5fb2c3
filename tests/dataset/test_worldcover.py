import numpy as np
import pytest

from sarssl.dataset.worldcover import CODES, IGNORE_INDEX, codes_to_indices, unknown_codes


def test_each_worldcover_code_maps_to_its_index_and_nodata_to_ignore():
    codes = np.array([10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100, 0], dtype=np.uint8)
    assert codes_to_indices(codes).tolist() == [*range(11), IGNORE_INDEX]
    assert len(CODES) == 11


def test_codes_outside_the_worldcover_set_are_named():
    codes = np.array([[10, 33], [-1, 300]], dtype=np.int16)
    assert unknown_codes(codes) == [-1, 33, 300]
    with pytest.raises(ValueError, match=r"label codes \[-1, 33, 300\] are not ESA WorldCover"):
        codes_to_indices(codes)
