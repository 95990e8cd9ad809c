//! Shared helpers for the rdkafka compatibility tests and the benchmark.
