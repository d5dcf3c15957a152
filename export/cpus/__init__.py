"""Run exported TFLite/ONNX artifacts on other CPU kinds (AVX2, SSE4-only, arm64 with and without dotprod),
emulated with QEMU user mode, so an export can be checked per CPU: `kinds` (the table), `install` (the
emulators, an arm64 Debian root and aarch64 wheels in a cache folder), `run` (`run_on`), and `worker` (the
standalone script that runs inside the emulated CPU)."""
