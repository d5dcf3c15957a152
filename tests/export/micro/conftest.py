"""One export of the trained tiny model to TFLite int8 (int8 I/O) and `--format micro`, shared by the micro tests."""
import os

import pytest


@pytest.fixture(scope="session")
def micro_export(tiny_keras_path, tmp_path_factory):
    """ExportResult with tiny_int8.tflite and tiny_model_data.cc/.h (the same int8 flatbuffer), verified on
    120 held-out digits."""
    from export.pipeline import export_model

    output_dir = os.path.join(tmp_path_factory.mktemp("micro"), "tiny")
    return export_model(tiny_keras_path, formats=["tflite", "micro"], precisions=["int8"], int8_io=True,
                        data="digits", output_dir=output_dir, verify_samples=120, latency_runs=0,
                        show_progress=False)


@pytest.fixture(scope="session")
def micro_files(micro_export):
    """{"cc", "h", "tflite"}: paths of the export's micro source, its header and the int8 .tflite."""
    root = micro_export.output_dir
    return {"cc": os.path.join(root, "tiny_model_data.cc"), "h": os.path.join(root, "tiny_model_data.h"),
            "tflite": os.path.join(root, "tiny_int8.tflite")}
