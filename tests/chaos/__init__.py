"""Fault-injection tests of real clusters and the linearizability checker."""
