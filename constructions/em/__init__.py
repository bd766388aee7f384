"""EM for spherical Gaussian mixtures over data tokens and centroid tokens: soft EM and Lloyd with a fixed variance,
TGMM Theorem 1's two-block shape, and soft EM with spherical or tied variance updates."""

from .construction import EMConstruction as EMConstruction, EMReadout as EMReadout
from .spherical import SphericalEM as SphericalEM, SphericalReadout as SphericalReadout
from .two_block import TwoBlockEM as TwoBlockEM, TwoBlockReadout as TwoBlockReadout
