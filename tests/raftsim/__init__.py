"""Deterministic in-process simulation of Raft clusters built on uhaha.raft."""
