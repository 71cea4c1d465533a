"""A pipeline of tiny models on the bundled clips, for tests that run whole pipelines."""

import copy
import os

MINI = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "tfkd", "assets",
                                    "speech_commands_mini"))
KWS12 = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_silence_", "_unknown_"]

_TINY = {
    "name": "tiny",
    "seed": 3,
    "data": {"path": MINI, "labels": KWS12, "augment": {"views": 2}},
    "teacher": {"model": "ds_cnn", "params": {"channels": 16, "blocks": 1}, "epochs": 2, "batch_size": 16},
    "student": {"model": "ds_cnn", "params": {"channels": 8, "blocks": 1}},
    "distill": {"epochs": 2, "batch_size": 16},
    "prune": {"method": "structured", "ratio": 0.5, "epochs": 1},
    "quantize": {"representative_samples": 20, "min_agreement": 0.5},
    "export": {"golden_vectors": 1},
}


def tiny(**sections):
    """The tiny pipeline as plain data (a fresh copy), with ``sections`` replaced."""
    return {**copy.deepcopy(_TINY), **sections}
