"""Tests of the web dashboard (``/ui/``): its event stream, its command proxy,
its packaging, and the page itself in headless Chromium."""
