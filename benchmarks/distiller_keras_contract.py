"""Does the Distiller behave like any Keras model? One line per contract, beside plain Keras.

Mixed precision, ModelCheckpoint, MirroredStrategy with a short last batch, batch-size
independence of the logged loss, regularization in the logged loss, summary(),
get_config/from_config, the teacher's trainable flag, save/load_model (issue 14).

Usage: python benchmarks/distiller_keras_contract.py
(for another checkout: PYTHONPATH=/path/to/checkout python benchmarks/distiller_keras_contract.py)
"""
import os, tempfile, traceback
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import tfkd
from tfkd._keras import keras
print("tfkd from", os.path.dirname(tfkd.__file__))

def models(reg=None, seed=0):
    keras.utils.set_random_seed(seed)
    t = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    s = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(4, activation="relu", kernel_regularizer=reg),
                          keras.layers.Dense(3, kernel_regularizer=reg)])
    return t, s

rng = np.random.default_rng(0)
x = rng.normal(size=(40, 8)).astype("float32"); y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > .5).astype("int32")
CE = lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True)

def row(name, fn):
    try:
        print(f"{name}: {fn()}")
    except Exception as e:
        print(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:150]}")

# 1 mixed precision
def mp_update():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        t, s = models(); p = keras.models.clone_model(s); p.set_weights(s.get_weights())
        w0 = s.get_weights()[0].copy()
        p.compile(optimizer=keras.optimizers.SGD(1.0), loss=CE()); p.fit(x * 1e-7, y, batch_size=40, epochs=1, verbose=0)
        d = tfkd.Distiller(student=s, teacher=t, alpha=1.0); d.compile(optimizer=keras.optimizers.SGD(1.0))
        d.fit(x * 1e-7, y, batch_size=40, epochs=1, verbose=0)
        return f"max|dW| plain Keras {np.abs(p.get_weights()[0]-w0).max():.3g}, Distiller {np.abs(s.get_weights()[0]-w0).max():.3g}"
    finally:
        keras.mixed_precision.set_global_policy("float32")
def mp_reg():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        t, s = models(keras.regularizers.L2(0.1))
        d = tfkd.Distiller(student=s, teacher=t); d.compile(optimizer="sgd")
        return "fit loss %.4f" % d.fit(x, y, batch_size=8, epochs=1, verbose=0).history["loss"][0]
    finally:
        keras.mixed_precision.set_global_policy("float32")
row("1a mixed_float16, inputs x1e-7, SGD(1), alpha=1", mp_update)
row("1b mixed_float16, float16 logits + L2", mp_reg)

# 2 checkpoints
def ckpt(ext):
    t, s = models(); d = tfkd.Distiller(student=s, teacher=t); d.compile(optimizer="adam")
    with tempfile.TemporaryDirectory() as tmp:
        f = os.path.join(tmp, "ckpt" + ext)
        d.fit(x, y, epochs=1, verbose=0, callbacks=[keras.callbacks.ModelCheckpoint(f)])
        return f"wrote {os.path.getsize(f)} bytes"
def plain_h5():
    class Sub(keras.Model):
        def __init__(self): super().__init__(); self.d = keras.layers.Dense(3)
        def call(self, x): return self.d(x)
    m = Sub(); m.compile(optimizer="adam", loss=CE())
    with tempfile.TemporaryDirectory() as tmp:
        m.fit(x, y, epochs=1, verbose=0, callbacks=[keras.callbacks.ModelCheckpoint(os.path.join(tmp, "c.h5"))])
    return "ok"
row("2a ModelCheckpoint('ckpt.keras')", lambda: ckpt(".keras"))
row("2b ModelCheckpoint('ckpt.h5')", lambda: ckpt(".h5"))
row("2c plain Keras subclassed model, ModelCheckpoint('c.h5')", plain_h5)

# 3 logs
def mirrored():
    x1, y1 = x[:33], y[:33]  # batch 16: 16, 16, 1 -> last batch smaller than 2 replicas
    st = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    ds = tf.data.Dataset.from_tensor_slices((x1, y1)).batch(16)
    with st.scope():
        t, s = models(); p = keras.models.clone_model(s); p.set_weights(s.get_weights())
        d = tfkd.Distiller(student=s, teacher=t, alpha=1.0); d.compile(optimizer=keras.optimizers.SGD(0.1))
        p.compile(optimizer=keras.optimizers.SGD(0.1), loss=CE())
    hd = d.fit(ds, epochs=1, verbose=0).history["loss"][0]; hp = p.fit(ds, epochs=1, verbose=0).history["loss"][0]
    dw = max(np.abs(a - b).max() for a, b in zip(p.get_weights(), s.get_weights()))
    return f"loss Distiller {hd:.4f}, plain Keras {hp:.4f}; max weight diff {dw:.2g}"
row("3a MirroredStrategy x2, 33 samples, batch 16, alpha=1", mirrored)
def val_bs():
    t, s = models(); d = tfkd.Distiller(student=s, teacher=t); d.compile(optimizer="sgd")
    return " ".join(f"bs{b}={d.evaluate(x, y, batch_size=b, verbose=0, return_dict=True)['loss']:.4f}" for b in (8, 32, 40))
row("3b evaluate loss, 40 samples", val_bs)
def reg_loss():
    t, s = models(keras.regularizers.L2(0.1)); p = keras.models.clone_model(s); p.set_weights(s.get_weights())
    p.compile(optimizer="sgd", loss=CE())
    d = tfkd.Distiller(student=s, teacher=t, alpha=1.0); d.compile(optimizer="sgd")
    return (f"evaluate loss Distiller(alpha=1) {d.evaluate(x, y, verbose=0, return_dict=True)['loss']:.4f}, "
            f"plain Keras {p.evaluate(x, y, verbose=0):.4f}")
row("3c L2(0.1) student", reg_loss)

# 4 plumbing
def summary_after_fit():
    t, s = models(); d = tfkd.Distiller(student=s, teacher=t); d.compile(optimizer="adam"); d.fit(x, y, epochs=1, verbose=0)
    lines = []; d.summary(print_fn=lines.append); return f"ok, {lines[-4].strip()}"
row("4a summary() after fit", summary_after_fit)
def roundtrip():
    t, s = models(); d = tfkd.Distiller(student=s, teacher=t, loss="dkd")
    d2 = tfkd.Distiller.from_config(d.get_config()); return f"ok, T={d2.temperature} alpha={d2.alpha}"
row("4b Distiller.from_config(get_config())", roundtrip)
def teacher_flag():
    t, s = models(); tfkd.Distiller(student=s, teacher=t); return f"teacher.trainable after Distiller(...) = {t.trainable}"
row("4c", teacher_flag)
def save_load():
    t, s = models(); d = tfkd.Distiller(student=s, teacher=t, temperature=3.0, loss="dist"); d.compile(optimizer="adam")
    d.fit(x, y, epochs=1, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        f = os.path.join(tmp, "d.keras"); d.save(f); d2 = keras.models.load_model(f)
        diff = np.abs(d2.student.predict(x, verbose=0) - s.predict(x, verbose=0)).max()
        return f"{type(d2).__name__}, T={d2.temperature}, loss={d2.distillation_loss_fn.get_config()}, max|pred diff|={diff}"
row("5 save d.keras + load_model", save_load)
