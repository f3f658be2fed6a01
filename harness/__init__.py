"""Process, browser and database helpers shared by the tests, the benchmarks and the scripts."""
