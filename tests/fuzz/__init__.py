"""Property-based tests (hypothesis) and the fuzzing checks of what clients send."""
