"""The chaos campaign: faults a user's cluster will have, injected for real into real runs, and what survived.

``benchmarks/chaos.py`` runs the long campaign and prints the table; ``tests/reliability`` runs one short trial of
each fault. A trial's rows are checked against a clean run of the same recipe (``rows``): same fingerprints, and
the same rows by key in every table of every artifact.
"""
