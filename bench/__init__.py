"""backpain-cds performance tooling (not shipped in the production wheel): the benchmark against a no-op floor, a
bounded load generator that runs the production server as a subprocess, and the load/durability test."""
