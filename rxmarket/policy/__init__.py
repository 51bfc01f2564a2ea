"""Pure decision code: no I/O, no clocks of its own; time is always an argument."""
