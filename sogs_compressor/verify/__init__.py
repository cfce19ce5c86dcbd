"""Verify and measure: decode our own output and say, per attribute, what was lost."""
