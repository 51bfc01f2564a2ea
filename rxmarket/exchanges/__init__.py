"""Exchange adapters. Each one pairs a sans-I/O protocol (bytes <-> models) with the shared transports.

Only Upbit so far: :mod:`rxmarket.exchanges.upbit`. :mod:`rxmarket.exchanges.base` states what the facade
needs from an adapter.
"""
