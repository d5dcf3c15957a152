"""mixed_float16 with 2 replicas: a float16 overflow on ONE replica skips the step on all of them (as one device
with the whole batch skips it), instead of letting the others apply it (LossScaleOptimizer judges each replica's
own gradients before the all-reduce; without `loop.agree_on_overflow` the weights turned non-finite, and two
workers hung on each other's all-reduce)."""
import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from reszoo.train.loop import make_train_step
    from reszoo.train.optim import make_optimizer

    # replica 0 gets inputs 1.0, replica 1 inputs 300: only replica 1's loss-scaled float16 gradient overflows
    x = np.array([[1.0] * 4] * 2 + [[300.0] * 4] * 2, "float32")
    y = np.zeros(4, "int32")
    report = {}
    for name in ("default", "mirrored"):
        strategy = (tf.distribute.get_strategy() if name == "default"
                    else tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
        keras.config.set_dtype_policy("mixed_float16")
        with strategy.scope():
            inputs = keras.Input((4,))
            hidden = keras.layers.Dense(2, kernel_initializer="zeros", name="dense")(inputs)
            statistics = keras.layers.BatchNormalization()(hidden)
            outputs = keras.layers.Activation("softmax", dtype="float32")(hidden + 0 * statistics)
            model = keras.Model(inputs, outputs)
            optimizer = make_optimizer("sgd", lr=0.1, schedule="cosine", total_steps=10, mixed_float16=True)
            optimizer.build(model.trainable_variables)
        keras.config.set_dtype_policy("float32")
        step = make_train_step(strategy, model, optimizer, num_classes=2, global_batch=4)
        batch = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((x, y)).batch(4))))
        step(batch, tf.constant(0, tf.int32))
        report[name] = {"scale": float(optimizer.dynamic_scale.numpy()), "applied": int(optimizer.iterations.numpy()),
                        "finite": bool(np.isfinite(model.get_layer("dense").kernel.numpy()).all())}
    print(json.dumps(report))
""")


def test_an_overflow_on_one_replica_skips_the_step_everywhere():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["default"] == {"scale": 16384.0, "applied": 0, "finite": True}  # one device skips and halves
    assert report["mirrored"] == report["default"]
