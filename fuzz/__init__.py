"""Coverage-guided fuzzing (atheris) of what clients send: see fuzz/README.md."""
