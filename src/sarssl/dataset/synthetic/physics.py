"""Acquisition geometry and radiometry of Sentinel-1 IW GRD as Earth Engine serves it.

- Incidence angle. IW covers 29.1-46.0 degrees over a 250 km swath (ESA Sentinel-1 User
  Guide, "Interferometric Wide swath"). A satellite repeats 175 relative orbits, so the
  ascending ground tracks are 360/175 degrees of longitude apart (about 170 km at 42 N) and
  neighbouring swaths overlap; a point in an overlap is seen by both tracks and its seasonal
  mean mixes both angles. Tracks are taken as north-south lines (the real ascending heading
  is about 12 degrees west of north) with the swath east of the track: the sensor looks
  right, i.e. east, and sits to the west of what it sees.
- Terrain. Earth Engine's COPERNICUS/S1_GRD is orthorectified but not radiometrically
  terrain-flattened: sigma0 is referenced to the ellipsoid. A slope facing the sensor is seen
  at a smaller local incidence angle and gathers a larger area per pixel, so it is brighter;
  one facing away is darker (Small 2011, "Flattening Gamma: Radiometric Terrain Correction for
  SAR Imagery", IEEE TGRS 49(8)). The area factor is sin(theta) / sin(theta_local). A slope
  facing the sensor steeper than theta is in layover (folded and very bright); one facing away
  steeper than 90 - theta is in radar shadow (the noise floor).
- Speckle. An Earth Engine seasonal mean averages the dB values of n acquisitions, each with
  multiplicative Gamma(L, 1/L) speckle (L = 4.4, the ENL of IW GRD high resolution). The mean
  of n log-Gamma variables is close to normal with
      bias = 10/ln(10) * (digamma(L) - ln L)        (about -0.51 dB)
      std  = 10/ln(10) * sqrt(trigamma(L) / n)      (about 0.63 dB for n = 12).
  GRD-HR has a resolution of about 20 x 22 m on a 10 m pixel grid, so speckle is correlated
  between neighbouring pixels. In the real chip tests/data/sen1floods11 (VV after
  removing a 9 x 9 local mean) the correlation is 0.72-0.76 at one pixel and 0.28-0.43 at
  two; white noise smoothed by a Gaussian of 1 pixel has 0.78 and 0.37.
"""

from functools import cache

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import digamma, polygamma

DB = 10.0 / np.log(10.0)
IW_NEAR_DEG, IW_FAR_DEG = 29.1, 46.0
IW_SWATH_M = 250_000.0
RELATIVE_ORBITS = 175
REFERENCE_INCIDENCE_DEG = 37.5  # the middle of the IW swath: where class levels are given
METRES_PER_DEGREE_LON_EQUATOR = 111_320.0
METRES_PER_DEGREE_LAT = 110_574.0
GRD_LOOKS = 4.4
SPECKLE_CORRELATION_PX = 1.0
LAYOVER_MIN_DEG = 3.0  # sin(theta_local) is held here: layover is bright, never infinite
NOISE_FLOOR_DB = -24.0  # radar shadow: thermal noise only (IW NESZ is -22 dB or lower)


def incidence_angle(lon: np.ndarray, lat: np.ndarray, track_offset_deg: float) -> np.ndarray:
    """Mean incidence angle (degrees) of the ascending acquisitions of each point: the angle
    grows linearly across each 250 km swath that covers it, and overlaps average."""
    spacing = 360.0 / RELATIVE_ORBITS
    metres_per_degree = METRES_PER_DEGREE_LON_EQUATOR * np.cos(np.radians(lat))
    # Distance east of the nearest track to the west, then of the one before it, ...
    east_of_track = np.mod(lon - track_offset_deg, spacing) * metres_per_degree
    total = np.zeros_like(east_of_track)
    tracks = np.zeros_like(east_of_track)
    for k in range(int(np.ceil(IW_SWATH_M / (spacing * metres_per_degree.min()))) + 1):
        distance = east_of_track + k * spacing * metres_per_degree
        covered = distance < IW_SWATH_M
        total += np.where(
            covered, IW_NEAR_DEG + (IW_FAR_DEG - IW_NEAR_DEG) * distance / IW_SWATH_M, 0
        )
        tracks += covered
    return total / tracks


def local_incidence(theta_deg: np.ndarray, dz_dx: np.ndarray, dz_dy: np.ndarray) -> np.ndarray:
    """Local incidence angle (degrees) on a surface of gradient (dz/dx east, dz/dy north), for
    a sensor to the west looking east at incidence theta: the angle between the surface
    normal and the direction to the sensor, negative where a slope facing the sensor is
    steeper than theta (layover)."""
    theta = np.radians(theta_deg)
    normal_norm = np.sqrt(dz_dx**2 + dz_dy**2 + 1.0)
    # n = (-dz/dx, -dz/dy, 1) / |n|, towards the sensor s = (-sin theta, 0, cos theta).
    cosine = (dz_dx * np.sin(theta) + np.cos(theta)) / normal_norm
    angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    return np.where(np.arctan(dz_dx) > theta, -angle, angle)


def terrain_db(
    theta_deg: np.ndarray, theta_local_deg: np.ndarray, incidence_slope: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """dB to add to a class level given at REFERENCE_INCIDENCE_DEG, and the shadow mask.

    The scatterer sees the local angle (class slope times its departure from the reference);
    the ellipsoid-referenced pixel gathers sin(theta) / sin(theta_local) of its area."""
    local = np.maximum(theta_local_deg, LAYOVER_MIN_DEG)
    angular = incidence_slope * (local - REFERENCE_INCIDENCE_DEG)
    area = DB * np.log(np.sin(np.radians(theta_deg)) / np.sin(np.radians(local)))
    return angular + area, theta_local_deg >= 90.0


def speckle_of_seasonal_mean(
    shape: tuple[int, ...], acquisitions: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """dB error of a seasonal mean of `acquisitions` speckled images, per season: shape
    (season, pol, row, col), `acquisitions` broadcast against it. Spatially correlated as
    GRD-HR speckle is, with the mean and std of the formula above."""
    white = rng.standard_normal(shape, dtype=np.float32)
    correlated = gaussian_filter(
        white, sigma=(0, 0, SPECKLE_CORRELATION_PX, SPECKLE_CORRELATION_PX)
    )
    # The smoothing shrinks the variance by sum(kernel^2); restore unit variance.
    correlated /= np.float32(smoothed_unit_std(SPECKLE_CORRELATION_PX))
    bias = DB * (digamma(GRD_LOOKS) - np.log(GRD_LOOKS))
    std = DB * np.sqrt(polygamma(1, GRD_LOOKS) / acquisitions)
    return (bias + std * correlated).astype(np.float32)


@cache
def smoothed_unit_std(sigma_px: float) -> float:
    """Std of unit white noise after scipy's 2-d Gaussian filter of `sigma_px`."""
    impulse = np.zeros((33, 33))
    impulse[16, 16] = 1.0
    kernel = gaussian_filter(impulse, sigma=sigma_px)
    return float(np.sqrt((kernel**2).sum()))
