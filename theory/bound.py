"""A named error bound: a sympy expression with its symbols, evaluable and printable as LaTeX."""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp


@dataclass(frozen=True)
class Bound:
    """``expression`` bounds ``quantity`` for the symbols' values in ``assumptions``.

    ``rate`` is the leading-order behaviour in the width symbol (for rate tests),
    e.g. ``M**-2``.
    """

    name: str
    quantity: str
    expression: sp.Expr
    assumptions: str
    rate: sp.Expr | None = None
    symbols: tuple[sp.Symbol, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.symbols:
            object.__setattr__(self, "symbols", tuple(sorted(self.expression.free_symbols, key=str)))

    def __call__(self, **values: float) -> float:
        """Evaluate at numeric values given by symbol name."""
        names = {str(s) for s in self.expression.free_symbols}
        missing = names - set(values)
        if missing:
            raise ValueError(f"bound {self.name!r} needs values for {sorted(missing)}")
        subs = {s: values[str(s)] for s in self.expression.free_symbols}
        return float(self.expression.evalf(subs=subs))

    def latex(self) -> str:
        return rf"{self.quantity} \le {sp.latex(self.expression)}"

    def width_for(self, target: float, width: str = "M", max_width: int = 10**7, **values: float) -> int:
        """The smallest integer ``width`` at which the bound is <= ``target`` (bounds decrease in width)."""
        if not target > 0:
            raise ValueError(f"target error must be > 0, got {target}")
        low, high = 1, 1
        while self(**{width: high}, **values) > target:
            low, high = high, high * 2
            if high > max_width:
                raise ValueError(f"bound {self.name!r} stays above {target:g} up to {width}={max_width}")
        while low < high:
            mid = (low + high) // 2
            if self(**{width: mid}, **values) <= target:
                high = mid
            else:
                low = mid + 1
        return high
