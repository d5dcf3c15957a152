"""Peak memory of streamed training does not grow with the dataset: train on shards whose decoded size is many
times the process's peak RSS, and on a quarter of them, and compare the peaks.

Writes `--images` JPEGs (smooth random pictures, `--source-size` px) as ImageNet-layout TFRecord shards, then runs
`reszoo train MODEL --data 'train-*.tfrecord' --val-data ...` twice as child processes (all shards; a quarter of
them) for `--steps` steps at `--image-size`, and reads each child's peak RSS (getrusage, Linux kB). Also times the
input pipeline alone (`reszoo bench-input`) on the same shards. Prints one JSON report.

Example:
    $ python tools/stream_memory_bench.py --images 12000 --work /tmp/streams --steps 30
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time

import numpy as np

from export.core.files import remove_created

DECODED_BYTES = 4  # float32 per channel value: what an in-memory pipeline would hold


def smooth_image(rng, size):
    """A random low-frequency picture (JPEG-compressible like a photo, unlike white noise)."""
    coarse = rng.uniform(0, 255, (8, 8, 3)).astype("float32")
    return np.clip(np.kron(coarse, np.ones((size // 8, size // 8, 1))) + rng.normal(0, 8, (size, size, 3)), 0, 255)


def write_shards(folder, images, size, shards, classes=10, seed=0):
    """`images` JPEG records in `shards` train files plus one small validation file; returns the bytes written."""
    import tensorflow as tf

    from export.data.tfrecord import imagenet_example

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    writers = [tf.io.TFRecordWriter(os.path.join(folder, f"train-{i:05d}-of-{shards:05d}.tfrecord"))
               for i in range(shards)]
    with tf.io.TFRecordWriter(os.path.join(folder, "validation-00000-of-00001.tfrecord")) as validation:
        for index in range(images + 64):
            label = index % classes
            encoded = tf.io.encode_jpeg(smooth_image(rng, size).astype("uint8"), quality=90).numpy()
            target = validation if index >= images else writers[index % shards]
            target.write(imagenet_example(encoded, label, str(label)))
    for writer in writers:
        writer.close()
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(folder, "*.tfrecord")))


def peak_rss_of(command, log_path):
    """(exit code, peak RSS in bytes, seconds) of one child process (os.wait4 gives that child's own rusage)."""
    started = time.perf_counter()
    with open(log_path, "w") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss * 1024, time.perf_counter() - started


def train_command(args, pattern, output):
    return [sys.executable, "-m", "reszoo", "train", args.model, "--width", str(args.width), "--data", pattern,
            "--val-data", os.path.join(args.work, "validation-*.tfrecord"), "--image-size", str(args.image_size),
            "--epochs", "1", "--steps-per-epoch", str(args.steps), "--batch-size", str(args.batch_size),
            "--output", output]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12000)
    parser.add_argument("--source-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--work", default="/tmp/reszoo-stream-bench")
    args = parser.parse_args()
    if not glob.glob(os.path.join(args.work, "train-*.tfrecord")):
        write_shards(args.work, args.images, args.source_size, args.shards)
    files = sorted(glob.glob(os.path.join(args.work, "train-*.tfrecord")))
    report = {"images": args.images, "shard_bytes": sum(map(os.path.getsize, files)),
              "decoded_bytes": args.images * args.image_size ** 2 * 3 * DECODED_BYTES, "runs": {}}
    quarter = os.path.join(args.work, "train-0000[0-3]-*.tfrecord")
    for name, pattern in (("all shards", os.path.join(args.work, "train-*.tfrecord")), ("a quarter", quarter)):
        output = os.path.join(args.work, f"run-{name.replace(' ', '-')}")
        remove_created(output)  # the previous run of this benchmark (the project's one safe delete)
        code, peak, seconds = peak_rss_of(train_command(args, pattern, output), output + ".log")
        report["runs"][name] = {"exit": code, "peak_rss_bytes": peak, "seconds": round(seconds, 1)}
    bench = subprocess.run([sys.executable, "-m", "reszoo", "bench-input", os.path.join(args.work, "train-*.tfrecord"),
                            "--image-size", str(args.image_size), "--batch-size", str(args.batch_size), "--batches",
                            "20"], capture_output=True, text=True)
    report["bench_input"] = bench.stdout.strip()
    peak = report["runs"]["all shards"]["peak_rss_bytes"]
    report["decoded_over_peak_rss"] = round(report["decoded_bytes"] / peak, 2)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
