"""Conformance of the Upbit simulator against captured Upbit payloads."""
