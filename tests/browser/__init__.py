"""Browser tests in headless Debian Chromium (a package: its conftest must not shadow ours)."""
