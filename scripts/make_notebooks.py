"""Writes the notebooks in notebooks/ from the cell texts below (outputs stripped).

Usage: python scripts/make_notebooks.py
"""

import os

import nbformat as nbf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
REPO = "https://github.com/tfkd/tfkd"


def badge(name):
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/tfkd/tfkd/blob/main/notebooks/{name})")


SETUP = '''import os, sys
# Heavy settings in one place: CI sets TFKD_QUICK=1 for a short run.
QUICK = os.environ.get("TFKD_QUICK") == "1"
REPO_URL = "{repo}"
IN_COLAB = "google.colab" in sys.modules
{extra}'''

INSTALL = '''# Install tfkd (Colab only; locally and in CI the checkout is used as it is).
if IN_COLAB:
    get_ipython().run_line_magic("pip", f"install -q git+{REPO_URL}")
    REPO_DIR = "/content/tfkd"
    if not os.path.isdir(REPO_DIR):
        get_ipython().system(f"git clone -q {REPO_URL} {REPO_DIR}")
else:  # a local checkout: TFKD_REPO_DIR, or the folder above notebooks/
    REPO_DIR = os.environ.get("TFKD_REPO_DIR") or (
        os.path.abspath("..") if os.path.basename(os.getcwd()) == "notebooks" else os.getcwd())
print("repository:", REPO_DIR)'''


def nb1():
    cells = [
        nbf.v4.new_markdown_cell(
            "# Distillation with `model.fit`, then prune, int8 and a C array\n\n" + badge("01_distill_with_model_fit.ipynb") +
            "\n\nA teacher and a student built with plain Keras layers, `tfkd.Distiller` trained with "
            "`model.fit`, a comparison with the same student trained without a teacher, then the student "
            "pruned, quantized to full int8, checked in TensorFlow Lite Micro and exported as a C array."),
        nbf.v4.new_code_cell(SETUP.format(repo=REPO, extra=(
            'DATA_PATH = None          # a Speech Commands folder; None uses the clips bundled with tfkd\n'
            'EPOCHS = 3 if QUICK else 30\nVIEWS = 2 if QUICK else 8  # augmented views per clip'))),
        nbf.v4.new_code_cell(INSTALL),
        nbf.v4.new_markdown_cell(
            "## Why `tf_keras`\n\ntfmot (pruning, quantization-aware training) works only with Keras 2. In Colab "
            "`tf.keras` is Keras 3 once TensorFlow is imported, and `TF_USE_LEGACY_KERAS` no longer helps then, so "
            "build models with the `tf_keras` package: `from tfkd import keras` is exactly that. A Keras 3 model "
            "handed to tfkd is refused with a one-line message."),
        nbf.v4.new_code_cell(
            "import numpy as np\nimport tfkd\nfrom tfkd import keras  # tf_keras\n"
            "from tfkd.config import DataConfig\n"
            "from tfkd.data import augment, frontend, speech\n"
            "from tfkd.pipeline.stages import build_data  # the pipeline's own data step\n\n"
            "path = DATA_PATH or os.path.join(REPO_DIR, 'tfkd', 'assets', 'speech_commands_yes_no')\n"
            "LABELS = ['yes', 'no', '_silence_', '_unknown_']  # micro_speech's task\n"
            "fp = frontend.FeatureParams()  # TFLite Micro's microfrontend, 49x40\n"
            "# Training clips get K augmented views (shift + background noise), fixed by the seed.\n"
            "data, _ = build_data(DataConfig(path=path, labels=LABELS, augment=augment.AugmentParams(views=VIEWS)), fp, seed=0)\n"
            "x_views, y_clips = data.train_arrays()  # [N, K, 49, 40, 1]: plain model.fit sees every view\n"
            "x_train, y_train = x_views.reshape((-1,) + x_views.shape[2:]), np.repeat(y_clips, x_views.shape[1])\n"
            "(x_val, y_val), (x_test, y_test) = data.arrays('validation'), data.arrays('test')\n"
            "labels = list(data.labels)\n"
            "print(x_train.shape, x_val.shape, x_test.shape, labels)"),
        nbf.v4.new_markdown_cell("## A teacher and a student, with plain Keras layers\n\nBoth return **logits** (no softmax)."),
        nbf.v4.new_code_cell(
            "def cnn(width, name):\n"
            "    inp = keras.Input((49, 40, 1))\n"
            "    x = keras.layers.Conv2D(width, (10, 4), strides=2, padding='same', use_bias=False)(inp)\n"
            "    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))\n"
            "    for i in range(2):\n"
            "        x = keras.layers.DepthwiseConv2D(3, padding='same', use_bias=False)(x)\n"
            "        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))\n"
            "        x = keras.layers.Conv2D(width, 1, use_bias=False)(x)\n"
            "        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))\n"
            "    x = keras.layers.GlobalAveragePooling2D()(x)\n"
            "    return keras.Model(inp, keras.layers.Dense(len(labels))(x), name=name)\n\n"
            "keras.utils.set_random_seed(0)\n"
            "teacher = cnn(128, 'teacher')\n"
            "teacher.compile('adam', keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=['accuracy'])\n"
            "teacher.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=EPOCHS, batch_size=32, verbose=2)\n"
            "print('teacher params', teacher.count_params())"),
        nbf.v4.new_markdown_cell(
            "## Distill with `model.fit`\n\n`loss = alpha * student_loss + (1 - alpha) * T² · KL(softmax(teacher/T) ‖ softmax(student/T))`. "
            "The teacher runs in inference mode and never changes; `call`/`predict` use the student."),
        nbf.v4.new_code_cell(
            "keras.utils.set_random_seed(1)\n"
            "student = cnn(32, 'student')\n"
            "distiller = tfkd.Distiller(student=student, teacher=teacher, temperature=4.0, alpha=0.1)\n"
            "distiller.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=['sparse_categorical_accuracy'])\n"
            "history = distiller.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=EPOCHS, batch_size=32, verbose=2)\n"
            "print(sorted(history.history))"),
        nbf.v4.new_code_cell(
            "keras.utils.set_random_seed(1)\n"
            "scratch = cnn(32, 'scratch')\n"
            "scratch.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=['accuracy'])\n"
            "scratch.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=EPOCHS, batch_size=32, verbose=2)\n"
            "acc = lambda m: float(np.mean(m.predict(x_test, verbose=0).argmax(-1) == y_test))\n"
            "print(f'teacher {acc(teacher):.3f}  distilled student {acc(student):.3f}  student without teacher {acc(scratch):.3f}')"),
        nbf.v4.new_markdown_cell(
            "## Prune, quantize to int8, run in TensorFlow Lite Micro\n\nMagnitude pruning (tfmot) fine-tunes "
            "**with the teacher still teaching**; then full-int8 post-training quantization with a representative "
            "set from the training split, and the int8 model scored in LiteRT and in the TFLite Micro interpreter."),
        nbf.v4.new_code_cell(
            "from tfkd.compress import prune, quantize\n\n"
            "def train_with_teacher(model, callbacks):\n"
            "    d = tfkd.Distiller(student=model, teacher=teacher, temperature=4.0, alpha=0.1)\n"
            "    d.compile(optimizer=keras.optimizers.Adam(1e-3))\n"
            "    d.fit(x_train, y_train, epochs=max(1, EPOCHS // 3), batch_size=32, callbacks=callbacks, verbose=0)\n\n"
            "steps = max(1, EPOCHS // 3) * int(np.ceil(len(y_train) / 32))\n"
            "pruned = prune.magnitude_prune(student, train_with_teacher, target_sparsity=0.5, end_step=max(1, steps * 3 // 4), frequency=1)\n"
            "print('sparsity per layer', prune.kernel_sparsity(pruned)[0])\n"
            "flat = quantize.convert_int8(pruned, data.representative(200, seed=0))\n"
            "scores, _ = tfkd.verify.score_int8(flat, x_test, y_test)\n"
            "scores"),
        nbf.v4.new_code_cell(
            "import matplotlib.pyplot as plt\n"
            "rows = {'float (distilled)': acc(student), 'pruned (float)': acc(pruned),\n"
            "        'int8 LiteRT': scores['accuracy_int8'], 'int8 TFLite Micro': scores['accuracy_tflm']}\n"
            "for k, v in rows.items():\n"
            "    print(f'{k:20s} {v:.3f}')\n"
            "plt.barh(list(rows)[::-1], list(rows.values())[::-1]); plt.xlim(0, 1); plt.xlabel('test accuracy'); plt.show()"),
        nbf.v4.new_markdown_cell("## Export `.tflite` and a C array\n\n`student.cc` holds the 16-byte aligned array; "
                                 "`student.h` declares it with the input quantization, the arena size and `FeatureToInt8`, "
                                 "the saturating conversion of a microfrontend value to the int8 input; `student_ops.h` is "
                                 "the op resolver; `main.cc` and `Makefile` build a host check against a tflite-micro checkout. "
                                 "Everything goes under `runs/` (ignored by git)."),
        nbf.v4.new_code_cell(
            "from tfkd.export import micro\n"
            "from tfkd.export import carray\n"
            "(in_scale, in_zp), _ = micro.io_quantization(flat)\n"
            "arena = micro.measure_arena(flat)\n"
            "constants = {'InputScale': in_scale, 'InputZeroPoint': in_zp, 'FeatureKind': fp.kind,\n"
            "             'FeatureScale': float(fp.feature_scale), 'FeatureFrames': fp.num_frames,\n"
            "             'FeatureChannels': fp.num_channels, 'TensorArenaSize': int(arena * 1.25)}\n"
            "paths = carray.write_firmware_files(flat, os.path.join('runs', 'notebook_01', 'export'), 'student',\n"
            "                                    list(labels), constants, micro.model_ops(flat))\n"
            "print(paths, len(flat), 'bytes of flash,', arena, 'bytes of arena (host)')\n"
            "print(open(paths['ops']).read())"),
    ]
    return cells


def nb2():
    return [
        nbf.v4.new_markdown_cell(
            "# The keyword-spotting pipeline from Python\n\n" + badge("02_kws_micro_pipeline.ipynb") +
            "\n\n`pipelines/kws_quickstart.yaml` loaded and tweaked in code, run stage by stage "
            "(data → teacher → distill → prune → quantize → export → report), with the report's plots, the "
            "per-stage metrics, one clip and its microfrontend features, and where the generated files go in firmware."),
        nbf.v4.new_code_cell(SETUP.format(repo=REPO, extra=(
            'DATA_PATH = None   # a Speech Commands folder; None uses the bundled clips\n'
            'EPOCH_SCALE = 0.25 if QUICK else 1.0'))),
        nbf.v4.new_code_cell(INSTALL),
        nbf.v4.new_markdown_cell("## Load the quick-start config and tweak it\n\nThe config is a tree of frozen "
                                 "dataclasses; `dataclasses.replace` makes a changed copy, and every value is checked."),
        nbf.v4.new_code_cell(
            "import dataclasses, json, shutil\nimport tfkd\n\n"
            "cfg = tfkd.load_config(os.path.join(REPO_DIR, 'pipelines', 'kws_quickstart.yaml'),\n"
            "                       [f'data.path={DATA_PATH}'] if DATA_PATH else [])\n"
            "scale = lambda n: max(1, int(round(n * EPOCH_SCALE)))\n"
            "cfg = dataclasses.replace(cfg,\n"
            "    teacher=dataclasses.replace(cfg.teacher, epochs=scale(cfg.teacher.epochs)),\n"
            "    distill=dataclasses.replace(cfg.distill, epochs=scale(cfg.distill.epochs), temperature=4.0),\n"
            "    prune=dataclasses.replace(cfg.prune, epochs=scale(cfg.prune.epochs)))\n"
            "print(cfg.distill)"),
        nbf.v4.new_markdown_cell("## Run it\n\nEach stage writes its folder atomically; `resume=True` would skip finished stages."),
        nbf.v4.new_code_cell(
            "out = 'runs/notebook_kws'\nshutil.rmtree(out, ignore_errors=True)\n"
            "metrics = tfkd.run_pipeline(cfg, out, tty=False)\n"
            "from tfkd.pipeline.report import format_table, summary_rows\nprint(format_table(summary_rows(metrics)))"),
        nbf.v4.new_code_cell(
            "from IPython.display import Image, display, Audio\n"
            "from tfkd.pipeline import artifacts  # knows every file of a run folder\n"
            "run = artifacts.RunFolder(out)\n"
            "for name in ('training_curves', 'accuracy_per_stage', 'confusion_int8'):\n"
            "    display(Image(run.plot(name + '.png')))"),
        nbf.v4.new_code_cell("print(json.dumps({k: {kk: vv for kk, vv in v.items() if not isinstance(vv, (dict, list))} for k, v in metrics.items()}, indent=1))"),
        nbf.v4.new_markdown_cell("## One clip and its features\n\nThe model sees TFLite Micro's microfrontend "
                                 "features (49 frames × 40 channels), computed with the settings saved in the run."),
        nbf.v4.new_code_cell(
            "import matplotlib.pyplot as plt\nfrom tfkd.data import frontend, speech, wav\n"
            "fp = artifacts.load_feature_params(run.stage('data'))\n"
            "clip_path = sorted(e.path for e in speech.scan(cfg.data.path, cfg.data.labels).entries if e.path and '/yes/' in e.path)[0]\n"
            "clip = wav.load_clip(clip_path, fp.sample_rate, fp.clip_samples)\n"
            "display(Audio(clip, rate=fp.sample_rate))\n"
            "feats = frontend.compute(clip[None], fp)[0, ..., 0]\n"
            "fig, ax = plt.subplots(1, 2, figsize=(10, 3))\n"
            "ax[0].plot(clip); ax[0].set_title(os.path.basename(clip_path))\n"
            "ax[1].imshow(feats.T, origin='lower', aspect='auto'); ax[1].set_title('microfrontend features')\nplt.show()"),
        nbf.v4.new_markdown_cell(
            "## Into a firmware build\n\nThe export folder is ready to drop into a project: `<name>.cc`, `<name>.h` "
            "and `<name>_ops.h`, plus a host `main.cc` that runs the golden vectors in TensorFlow Lite Micro and a "
            "`Makefile` that builds it against a tflite-micro checkout (`make TFLM=/path/to/tflite-micro`; it adds "
            "the microfrontend sources, which `libtensorflow-microlite.a` does not contain). On a device, feed each "
            "frontend value through `<name>::FeatureToInt8`, which saturates instead of wrapping around."),
        nbf.v4.new_code_cell(
            "export = run.stage('export')\n"
            "print(sorted(os.listdir(export)))\n"
            "print(open(os.path.join(export, 'main.cc')).read())"),
    ]


def write(name, cells):
    nb = nbf.v4.new_notebook()
    nb.cells = cells
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}, "colab": {"provenance": []}}
    nbf.write(nb, os.path.join(ROOT, "notebooks", name))


if __name__ == "__main__":
    write("01_distill_with_model_fit.ipynb", nb1())
    write("02_kws_micro_pipeline.ipynb", nb2())
