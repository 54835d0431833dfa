#!/usr/bin/env bash
# Builds what an installation of segwatch needs (see the README's Installation section):
#
#   OUT/segwatch          the release binary without its debug info (~36 MB instead of ~156 MB);
#                         its symbol table stays, so a backtrace names every function anyway
#   OUT/segwatch.debug    that debug info (line tables, zlib-compressed, ~34 MB), optional: when
#                         it sits beside the binary, a backtrace (RUST_BACKTRACE=1) also shows
#                         file:line. The binary names it in a .gnu_debuglink section; the Rust
#                         standard library looks for it beside the binary, in .debug/ beside it,
#                         and in /usr/lib/debug/<the binary's folder>/ (the search order of GDB:
#                         https://sourceware.org/gdb/onlinedocs/gdb/Separate-Debug-Files.html,
#                         implemented by backtrace-rs in src/symbolize/gimli/elf.rs)
#   OUT/completions/      segwatch.bash, _segwatch (zsh), segwatch.fish
#   OUT/man/man1/         segwatch.1 and one page per command
#
# Usage: scripts/package.sh [OUT]                  build (cargo build --release --locked), then package
#        scripts/package.sh --binary PATH OUT      package an already built binary
# OUT defaults to target/package. Needs objcopy (GNU binutils, which the Rust linker uses too).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--binary" ]; then
    binary=$2
    out=$3
else
    out=${1:-target/package}
    cargo build --release --locked
    binary=${CARGO_TARGET_DIR:-target}/release/segwatch
fi

mkdir -p "$out/completions" "$out/man/man1"
# The debug file first, then the stripped binary pointing at it (by file name and CRC).
objcopy --only-keep-debug --compress-debug-sections=zlib "$binary" "$out/segwatch.debug"
objcopy --strip-debug --add-gnu-debuglink="$out/segwatch.debug" "$binary" "$out/segwatch.tmp"
mv "$out/segwatch.tmp" "$out/segwatch"

"$out/segwatch" completions bash > "$out/completions/segwatch.bash"
"$out/segwatch" completions zsh > "$out/completions/_segwatch"
"$out/segwatch" completions fish > "$out/completions/segwatch.fish"
"$out/segwatch" man --dir "$out/man/man1" > /dev/null

ls -l "$out/segwatch" "$out/segwatch.debug"
