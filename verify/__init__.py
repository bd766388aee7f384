"""Verification of hand-built transformers (``tfconstruct.verify``): the public interface a family is written with.

A family (shipped or a user's plugin) registers a :class:`Family`; its studies are :class:`Study` objects with
declared :class:`Param` grids, :class:`BoundColumn` claims and :class:`Fit` rates; its report section returns a
:class:`SectionResult` of :class:`Check` s; its tests use :func:`check_bound`, :func:`assert_exact`,
:func:`assert_rate` and the hypothesis profiles of :func:`load_profile`, and :func:`check_family` exercises every
part of a family. Its construction variants (:class:`Variant`) enter the resource table.
"""

from .bound_check import (
    BoundCheck as BoundCheck,
    BoundViolation as BoundViolation,
    check_bound as check_bound,
    slack_table as slack_table,
)
from .conformance import FamilyCheckFailed as FamilyCheckFailed, check_family as check_family
from .explore.timeline import count_numbered as count_numbered
from .family import BenchmarkCase as BenchmarkCase, Family as Family
from .plots import (
    plot_error_vs_depth as plot_error_vs_depth,
    plot_error_vs_width as plot_error_vs_width,
    plot_errors as plot_errors,
    weight_heatmap as weight_heatmap,
)
from .rates import assert_rate as assert_rate, fit_slope as fit_slope
from .resources import Variant as Variant
from .results import Check as Check, ReportContext as ReportContext, SectionResult as SectionResult
from .study import (
    NOT_APPLICABLE as NOT_APPLICABLE,
    BoundColumn as BoundColumn,
    Fit as Fit,
    Param as Param,
    Study as Study,
    depth_param as depth_param,
    interval as interval,
    positive_int as positive_int,
    prefix_values as prefix_values,
    width_param as width_param,
)
from .testing import (
    assert_exact as assert_exact,
    load_profile as load_profile,
    round_off_allowance as round_off_allowance,
)
