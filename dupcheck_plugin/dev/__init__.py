"""Throwaway services for tests, benchmarks and local trials: a PostgreSQL
cluster and a Temporal dev server, each on a free loopback port in a temp
folder, started and stopped by the caller. Not used in production."""
