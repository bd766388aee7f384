"""Verification of in-context gradient descent: reference, strategies, sweep, report section and the family record."""
