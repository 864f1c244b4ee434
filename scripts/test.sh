#!/bin/sh
# Install dependencies, build, and run the whole test suite: every ctest in a
# normal build, the libFuzzer targets for a bounded time in a clang build,
# then the unit tests again under ASan+UBSan (the freestanding test guest is
# built in neither). Exits non-zero if anything fails.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

scripts/install-deps.sh
# Debian's stock kernel for the boot-path test, cached across runs
scripts/fetch-debian-kernel.sh >/dev/null

scripts/build.sh "$top/build"
ctest --test-dir "$top/build" --output-on-failure --timeout 600

CC=clang scripts/build.sh "$top/build-fuzz" -DPV_FUZZ=ON \
	-DPV_FUZZ_SECONDS="${PV_FUZZ_SECONDS:-30}"
ctest --test-dir "$top/build-fuzz" --output-on-failure -L fuzz

scripts/build.sh "$top/build-asan" -DPV_SANITIZE=ON
ctest --test-dir "$top/build-asan" --output-on-failure -L unit --timeout 600
