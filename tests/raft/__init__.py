"""Scripted scenarios for the sans-I/O Raft core, one rule of the paper or thesis each."""
