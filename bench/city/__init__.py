"""A synthetic Hue at real size, for benchmarks and capacity planning (see bench/README.md, "The city")."""
