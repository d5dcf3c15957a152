"""How each TFLite precision configures a TFLiteConverter: one function per precision in `SETTINGS`.

Read by `export.converters.tflite` (float input) and `export.converters.tflite_raw` (uint8 pixel input), which
adds its own input type on top.

Example:
    >>> sorted(SETTINGS)
    ['dynamic', 'fp16', 'fp32', 'int16x8', 'int8']
"""
import numpy as np


def _representative(calibration):
    def samples():
        for sample in calibration:
            yield [np.asarray(sample[None], dtype="float32")]

    return samples


def _fp32(converter, tf, calibration, int8_io):
    return converter


def _fp16(converter, tf, calibration, int8_io):
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return converter


def _dynamic(converter, tf, calibration, int8_io):
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter


def _int8(converter, tf, calibration, int8_io):
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter


def _int16x8(converter, tf, calibration, int8_io):
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return converter


SETTINGS = {"fp32": _fp32, "fp16": _fp16, "dynamic": _dynamic, "int8": _int8, "int16x8": _int16x8}
