#!/usr/bin/env bash
# Builds the C library's libFuzzer harnesses (vendor/libvfio-user/fuzz/) with
# AddressSanitizer and UBSan into build-fuzz/ and runs each for SECONDS
# (default 60), starting from the seed corpus in fuzz/corpus/<name>/.
#   scripts/fuzz.sh [SECONDS]
# Any crash, sanitizer report, leak or timeout fails the script; the input
# that caused it is kept as build-fuzz/<name>-crash-* (or leak-*, timeout-*)
# and can be replayed with build-fuzz/fuzz_<name> FILE. Inputs that found
# new coverage collect in build-fuzz/corpus/<name>/.
# Needs clang with libFuzzer (Debian: clang and libclang-rt-14-dev).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
src=vendor/libvfio-user
out=build-fuzz
cc=${CC:-clang}
harnesses=(requests config json)

flags=(-std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
       -fsanitize=address,undefined -fno-sanitize-recover=undefined
       -Wall -Wextra -Wno-unused-parameter
       -I "$src/include" -I "$src/src" -I "$src/fuzz")

# The library and the shared device once, instrumented for coverage.
mkdir -p "$out/obj"
objs=()
pids=()
for file in "$src"/src/*.c "$src/fuzz/fuzz_device.c"; do
    obj="$out/obj/$(basename "${file%.c}").o"
    objs+=("$obj")
    "$cc" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$file" -o "$obj" &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
pids=()
for name in "${harnesses[@]}"; do
    "$cc" "${flags[@]}" -fsanitize=fuzzer "$src/fuzz/fuzz_$name.c" "${objs[@]}" \
        -o "$out/fuzz_$name" &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

# Longest input per harness: a stream of several requests, one config
# access script, one capabilities text.
declare -A max_len=([requests]=16384 [config]=4096 [json]=4096)
status=0
for name in "${harnesses[@]}"; do
    mkdir -p "$out/corpus/$name"
    log="$out/$name.log"
    if "$out/fuzz_$name" -max_total_time="$seconds" -max_len="${max_len[$name]}" \
        -timeout=25 -print_final_stats=1 -artifact_prefix="$out/$name-" \
        "$out/corpus/$name" "$src/fuzz/corpus/$name" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        echo "fuzz_$name: $runs executions in ${seconds}s ($rate/s), no failure"
    else
        echo "fuzz_$name: FAILED, see $log" >&2
        tail -n 40 "$log" >&2
        status=1
    fi
done
exit $status
