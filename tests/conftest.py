"""Shared fixtures live in tests/fixtures/, one module per stand-in."""

pytest_plugins = [
    "tests.fixtures.kubernetes",
    "tests.fixtures.clickhouse",
    "tests.fixtures.aws",
]
