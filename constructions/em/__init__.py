"""EM for isotropic Gaussian mixtures (soft EM and Lloyd) over data tokens and centroid tokens."""

from .construction import EMConstruction as EMConstruction, EMReadout as EMReadout
from .two_block import TwoBlockEM as TwoBlockEM, TwoBlockReadout as TwoBlockReadout
