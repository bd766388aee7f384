"""In-context linear regression by gradient descent with linear attention (the first family shipped as a plugin)."""

from .regression import InContextRegression as InContextRegression, RegressionReadout as RegressionReadout
