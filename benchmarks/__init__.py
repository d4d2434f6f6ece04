"""Speed and memory benchmarks, printing ratios measured side by side (not run by the tests)."""
