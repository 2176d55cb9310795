# adlab recipes. Arguments pass through intact: `just run 'optimizer.lr=choice(0.1, 0.01)'`.
set positional-arguments

# List the recipes.
default:
    @just --list

# Run the main job (overrides pass through).
run *args:
    cargo run --release -- run "$@"

# Print the composed config (overrides pass through).
config *args:
    cargo run --release -- config "$@"

# Build or reuse the learning-history cache of a task.
generate *args:
    cargo run --release -- generate "$@"

# The whole test suite (what CI runs).
test:
    cargo test

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Benchmarks: environment steps/s per source algorithm.
bench-generate:
    cargo bench --bench generate

# The default sweep: quickstart (extra overrides pass through: `just sweep seed=0,1`).
sweep *args:
    cargo run --release -- sweep quickstart "$@"

# Any sweep by name: `just sweep-named quickstart --dry-run`.
sweep-named name *args:
    cargo run --release -- sweep "$@"

# Benchmarks: training step time, tokens/s and peak memory per model.
bench-train:
    cargo bench --bench train
