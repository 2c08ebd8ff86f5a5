"""Checking gradients: numerical gradient checks, verification of hand-written gradients
(claims, sampling away from kinks, numeric evaluation)."""
